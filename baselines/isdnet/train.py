"""ISDNet's training (``configs/isdnet/*``, ``_base_/datasets/*``, ``_base_/schedules/*`` of
cedricgsh/ISDNet), our own code.

One loop over the whole model: SGD (momentum 0.9, weight decay 5e-4), poly decay (power 0.9) per
iteration to ``min_lr`` (1e-4), the sum of the seven loss terms (``baselines.isdnet.loss``) on
batches of random crops. A crop (``crop_size``, (w, h)) is drawn up to 10 times until no class
covers more than ``cat_max_ratio`` (0.75) of its labelled pixels (mmseg's ``RandomCrop``); then a
horizontal flip (p 0.5), a rotation by 90 or 270 degrees (p 0.5, square crops, ``rotate``), and
mmseg's photometric distortion reduced to its RGB parts (brightness +-32, contrast 0.5..1.5, each
p 0.5; the HSV saturation and hue steps are left out, ``photometric``). Images are normalised with
the ImageNet mean/std (the release's ``img_norm_cfg``).

Batch >= 2: the attention vectors' BN (on (N, C, 1, 1)) cannot train on one image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from baselines.isdnet.loss import isd_losses
from baselines.isdnet.net import ISDNet
from bench.core.interface import normalize
from bench.training import loop, resume

CROP_TRIES = 10  # mmseg RandomCrop's attempts at meeting cat_max_ratio


def random_crop(image: np.ndarray, label: np.ndarray, size_hw: tuple[int, int], cat_max_ratio: float,
                ignore_index: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8, (H, W) labels -> a crop of at most ``size_hw`` (the image's size where smaller).

    Up to :data:`CROP_TRIES` crops are drawn; the first whose most frequent labelled class covers
    less than ``cat_max_ratio`` of the labelled pixels is kept, else the last one (mmseg's rule).
    """
    H, W = label.shape
    ch, cw = min(size_hw[0], H), min(size_hw[1], W)
    y = x = 0
    for _ in range(CROP_TRIES if cat_max_ratio < 1 else 1):
        y, x = int(rng.integers(H - ch + 1)), int(rng.integers(W - cw + 1))
        lab = label[y:y + ch, x:x + cw]
        kept = lab[lab != ignore_index] if ignore_index is not None else lab.ravel()
        if kept.size == 0:
            continue
        counts = np.bincount(kept.ravel().astype(np.int64))
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


def augment(image: np.ndarray, label: np.ndarray, cfg: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flip, rotation and the RGB photometric steps on one crop; (h, w, 3) uint8, (h, w) in and out."""
    if cfg.hflip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    if cfg.rotate and label.shape[0] == label.shape[1] and rng.random() < 0.5:
        k = int(rng.choice([1, 3]))
        image, label = np.rot90(image, k), np.rot90(label, k)
    if cfg.photometric:
        img = image.astype(np.float32)
        if rng.random() < 0.5:
            img = img + float(rng.uniform(-32, 32))
        if rng.random() < 0.5:
            img = img * float(rng.uniform(0.5, 1.5))
        image = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def make_batch(samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
               rng: np.random.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.batch_size`` augmented crops: ((B, 3, h, w) normalised float32, (B, h, w) int64) on ``device``.

    Crops of one batch share a size: every image must be at least ``crop_size`` (checked by the caller).
    """
    size_hw = (int(cfg.crop_size[1]), int(cfg.crop_size[0]))
    images, labels = [], []
    for i in rng.choice(len(samples), size=cfg.batch_size, replace=len(samples) < cfg.batch_size):
        im, lab = random_crop(*samples[int(i)], size_hw, cfg.cat_max_ratio, ignore_index, rng)
        im, lab = augment(im, lab, cfg, rng)
        images.append(im)
        labels.append(lab)
    x = normalize(np.stack(images), device)
    y = torch.from_numpy(np.stack(labels).astype(np.int64)).to(device)
    return x, y


def train_net(net: ISDNet, samples: list[tuple[np.ndarray, np.ndarray]], cfg: Any, ignore_index: int | None,
              device: torch.device, resume_file: resume.ResumeFile | None = None) -> list[float]:
    """Train ``net`` in place for ``cfg.iterations`` steps; returns the total loss of each step.

    Args:
        samples: (image (H, W, 3) uint8, label (H, W) uint8) pairs, each at least ``crop_size``.
        resume_file: where the resumable state is written and read (``bench.training.resume``).
    """
    rng = np.random.default_rng(cfg.seed)
    opt = loop.make_optimizer(net.parameters(), cfg.optimizer, cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay, allowed=("sgd", "adam", "adamw"),
                              what="isdnet.optimizer")
    net.train()

    def step() -> tuple[torch.Tensor, dict[str, float]]:
        x, y = make_batch(samples, cfg, ignore_index, rng, device)
        terms = isd_losses(net.run(x, train=True), y, ignore_index, cfg.recon_weight, cfg.fa_weight,
                           cfg.fcn_weight, cfg.ce_average)
        total = sum(terms.values(), torch.zeros((), device=device))
        return total, {"fused": float(terms["refine.loss_seg"].detach()), "fa": float(terms["aux_4.fa_loss"].detach())}

    checkpoint = resume.Checkpointer(resume_file, cfg.iterations, modules={"net": net}, optimizers={"opt": opt},
                                     generators={"rng": rng}, device=device)
    with loop.Progress("isdnet", cfg.iterations) as progress:
        return loop.run_steps(opt, progress, cfg.iterations,
                              lambda it: loop.poly_lr(cfg.lr, it, cfg.iterations, 0.9, cfg.min_lr), step, checkpoint)
