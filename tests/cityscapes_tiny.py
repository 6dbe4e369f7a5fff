"""A tiny Cityscapes-layout folder for the tests: a few 64x32 frames, optionally one bad file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from bench.models.backbones import create_backbone

CITY = "aachen"
SIZE = (64, 32)  # (w, h)


def frame_id(i: int) -> str:
    return f"{CITY}_{i:06d}_000019"


def make_cityscapes(root: Path, n: int = 4, splits: tuple[str, ...] = ("val",), bad: dict[int, str] | None = None,
                    seed: int = 0, size: tuple[int, int] = SIZE) -> Path:
    """Write ``n`` frames of ``size`` (w, h) per split; ``bad = {index: kind}`` spoils the val frame ``index``.

    Kinds: ``value`` (a label value 200, outside labelIds), ``truncated`` (half a PNG), ``size``
    (a label of another size than its image).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    for split in splits:
        images, labels = root / "leftImg8bit" / split / CITY, root / "gtFine" / split / CITY
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = np.full((h, w), 7, np.uint8)  # road
            label[:, w // 2 + int(rng.integers(-8, 8)):] = 26  # car
            label[: h // 4] = 23  # sky
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            kind = (bad or {}).get(i) if split == "val" else None
            if kind == "value":
                label[h // 2:, : w // 4] = 200
            if kind == "size":
                label = np.full((h * 2, w * 2), 7, np.uint8)
            image_path = images / f"{frame_id(i)}_leftImg8bit.png"
            label_path = labels / f"{frame_id(i)}_gtFine_labelIds.png"
            cv2.imwrite(str(image_path), image)
            cv2.imwrite(str(label_path), label)
            if kind == "truncated":
                data = label_path.read_bytes()
                label_path.write_bytes(data[: len(data) // 2])
    return root


def random_backbone(path: Path, width: int = 8) -> Path:
    """A random-weight light backbone for 19 classes, saved as a plain state dict (no sidecar)."""
    torch.manual_seed(0)
    model = create_backbone("light", 19, width=width)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def cityscapes_flat(tmp: Path, root: Path, **extra) -> dict:
    """A two-second Cityscapes sweep config: Downsample and Patching on the tiny folder."""
    flat = {"dataset": "cityscapes", "data_root": str(root), "input_size": "32x16", "methods": ["downsample", "patching"],
            "table1_methods": ["downsample"], "table1_sizes": [], "backbone": "light",
            "backbone_options": {"width": 8}, "backbone_checkpoint": str(random_backbone(tmp / "bb" / "backbone.pt")),
            "checkpoint_dir": str(tmp / "ck"), "out_dir": str(tmp / "runs"), "warmup": 0, "threads": 1,
            "save_predictions": 0, "train": False, "bootstrap": 200, "paper": {}}
    flat.update(extra)
    return flat
