"""A generated ``folder`` dataset for the tests: blocky scenes of 3 classes plus a thin bar.

Each image is ``(h, w, 3)`` uint8: class colour * 0.7 plus Gaussian noise (sigma 20); its mask
holds the class values of ``classes.yaml`` (ids 0, 1, 2, thin bar 3, one ignored pixel 255), or
the class colours when ``colour=True``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

NAMES = ["ground", "building", "tree", "wire"]
COLOURS = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
IGNORE_COLOUR = [255, 255, 255]


def scene(index: int, size: tuple[int, int] = (64, 32)) -> tuple[np.ndarray, np.ndarray]:
    """(image (h, w, 3) uint8 RGB, label (h, w) uint8 class ids with one 255 pixel) of scene ``index``."""
    w, h = size
    rng = np.random.default_rng(1000 + index)
    blocks = rng.integers(0, 3, (max(1, h // 8), max(1, w // 8)))
    label = np.kron(blocks, np.ones((8, 8), np.int64))[:h, :w].astype(np.uint8)
    x = int(rng.integers(2, w - 3))
    label[:, x:x + 2] = 3
    label[0, 0] = 255
    colours = np.array(COLOURS, np.float64)
    image = colours[np.minimum(label, 3)] * 0.7 + rng.normal(0, 20, label.shape + (3,))
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def write_mask(path: Path, label: np.ndarray, colour: bool = False, dtype: type = np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if colour:
        table = np.array(COLOURS + [IGNORE_COLOUR] * 252, np.uint8)  # 255 -> ignore colour
        rgb = table[np.where(label == 255, 4, label)]
        assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    else:
        assert cv2.imwrite(str(path), label.astype(dtype))
    return path


def classes_yaml(colour: bool = False, **extra: str) -> str:
    lines = [f"names: [{', '.join(NAMES)}]"]
    if colour:
        lines += [f"colours: {COLOURS}", f"ignore: {IGNORE_COLOUR}"]
    else:
        lines += ["values: [0, 1, 2, 3]", "ignore: 255"]
    lines += ["excluded_from_mean: [ground]", "thin: [wire]"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def make_folder(root: Path, splits: dict[str, int] | None = None, size: tuple[int, int] = (64, 32),
                colour: bool = False, image_ext: str = ".png", mask_ext: str = ".png") -> Path:
    """Write ``root/images/<split>/``, ``root/masks/<split>/`` and ``root/classes.yaml``; returns root."""
    splits = splits or {"train": 4, "val": 3}
    index = 0
    for split, n in splits.items():
        for _ in range(n):
            image, label = scene(index, size)
            write_image(root / "images" / split / f"img{index:03d}{image_ext}", image)
            write_mask(root / "masks" / split / f"img{index:03d}{mask_ext}", label, colour)
            index += 1
    (root / "classes.yaml").write_text(classes_yaml(colour))
    return root
