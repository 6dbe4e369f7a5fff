"""Training of the SegFix offset network on full-resolution crops (spec §6.3).

Targets are computed on the whole label map (distances need the whole image) and cropped with the
image. Augmentation as the reference: horizontal flip (targets recomputed from the flipped label,
so flipped directions are exact) and brightness +-10. Random crops (the reference: 512x512 at
1024x2048); images smaller than the crop are padded (image 0, targets ignored). Optimiser SGD
(reference: lr 0.04, poly) or Adam, poly decay (power 0.9).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from baselines.segfix.loss import segfix_loss
from baselines.segfix.targets import segfix_targets
from bench.training import loop, resume
from bench.core.interface import normalize

Item = tuple[np.ndarray, np.ndarray, np.ndarray]  # image (H,W,3) u8, boundary (H,W) i8, direction (H,W) i8


def make_loader(train_set: Any, ignore_index: int | None, cfg: Any) -> Callable[[int, bool], Item]:
    """``(index, flip) -> (image, boundary, direction)``; with ``cfg.cache_targets`` each sample is
    read once and both orientations are kept in memory."""
    samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    store: dict[tuple[int, bool], Item] = {}

    def targets(image: np.ndarray, label: np.ndarray, flip: bool) -> Item:
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        label = np.ascontiguousarray(label)
        boundary, direction = segfix_targets(
            label, ignore_index, cfg.min_distance, cfg.max_distance, cfg.min_class_pixels, cfg.kernel_size
        )
        return np.ascontiguousarray(image), boundary, direction

    def load(i: int, flip: bool) -> Item:
        if (i, flip) in store:
            return store[(i, flip)]
        if i in samples:
            image, label = samples[i]
        else:
            sample = train_set[i]
            image, label = np.asarray(sample.image), np.asarray(sample.label)
            if cfg.cache_targets:
                samples[i] = (image, label)
        item = targets(image, label, flip)
        if cfg.cache_targets:
            store[(i, flip)] = item
            if (i, not flip) in store or not cfg.hflip:
                samples.pop(i, None)  # both orientations done: the label is no longer needed
        return item

    return load


def random_crop(item: Item, crop_hw: tuple[int, int], rng: np.random.Generator) -> Item:
    """A random (h, w) crop of image and targets; padded (image 0, targets -1) where too small."""
    image, boundary, direction = item
    ch, cw = crop_hw
    H, W = boundary.shape
    if H < ch or W < cw:
        ph, pw = max(0, ch - H), max(0, cw - W)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        boundary = np.pad(boundary, ((0, ph), (0, pw)), constant_values=-1)
        direction = np.pad(direction, ((0, ph), (0, pw)), constant_values=-1)
        H, W = boundary.shape
    y = int(rng.integers(0, H - ch + 1))
    x = int(rng.integers(0, W - cw + 1))
    return image[y : y + ch, x : x + cw], boundary[y : y + ch, x : x + cw], direction[y : y + ch, x : x + cw]


def make_batch(
    load: Callable[[int, bool], Item], n: int, cfg: Any, rng: np.random.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: normalised images (B,3,h,w) and int64 boundary / direction targets (B,h,w)."""
    crop_hw = (int(cfg.crop_size[1]), int(cfg.crop_size[0]))
    images, bounds, dirs = [], [], []
    for i in rng.choice(n, size=cfg.batch_size, replace=n < cfg.batch_size):
        flip = bool(cfg.hflip and rng.random() < 0.5)
        image, boundary, direction = random_crop(load(int(i), flip), crop_hw, rng)
        if cfg.brightness > 0:
            shift = int(rng.integers(-cfg.brightness, cfg.brightness + 1))
            image = np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)
        images.append(np.ascontiguousarray(image))
        bounds.append(boundary)
        dirs.append(direction)
    x = normalize(np.stack(images), device)
    b = torch.from_numpy(np.stack(bounds).astype(np.int64)).to(device)
    d = torch.from_numpy(np.stack(dirs).astype(np.int64)).to(device)
    return x, b, d


def train_net(
    net: torch.nn.Module, load: Callable[[int, bool], Item], n: int, cfg: Any, device: torch.device,
    resume_file: resume.ResumeFile | None = None,
) -> list[float]:
    """Train ``net`` in place for ``cfg.iterations`` iterations; returns the loss per iteration.

    ``resume_file``: where the resumable state is written and read (``bench.training.resume``).
    The samples are read in this process: their targets are cached there (``cache_targets``), so
    after the first pass nothing is read, and worker processes would each recompute them.

    Raises:
        ValueError: unknown optimizer.
    """
    rng = np.random.default_rng(cfg.seed)
    opt = loop.make_optimizer(net.parameters(), cfg.optimizer, cfg.lr, momentum=0.9,
                                  weight_decay=cfg.weight_decay, allowed=("sgd", "adam"), what="segfix.optimizer")
    net.train()

    def step() -> tuple[torch.Tensor, dict[str, Any]]:
        x, b, d = make_batch(load, n, cfg, rng, device)
        boundary_logits, direction_logits = net(x)
        loss, parts = segfix_loss(boundary_logits, direction_logits, b, d, cfg.boundary_threshold)
        return loss, {"boundary": parts["boundary"], "direction": parts["direction"],
                      "supervised_px": parts["supervised"]}

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng}, device=device)
    with loop.Progress("segfix", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.poly_lr(cfg.lr, it, cfg.iterations), step, checkpoint)
