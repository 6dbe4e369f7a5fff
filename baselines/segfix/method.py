"""SegFix (Yuan et al., ECCV 2020) as a refinement baseline (spec baselines.md §6).

SegFix is label-only and model-agnostic: a network that sees only the full-resolution image
predicts a boundary map and an 8-way direction map; each boundary pixel takes the coarse label
found ``scale`` (2) pixels further along its direction, inside the region. ``refine`` upsamples the
coarse probabilities bilinearly (align_corners=False) to the image size, takes the argmax and
applies the predicted offsets with one integer gather (labels never blend).

Targets, loss and training follow the reference (``_segfix_targets``, ``_segfix_loss``,
``_segfix_train``); the network is a small stride-4 HRNet-like CNN (``_segfix_net``) instead of
HRNet-2x20, so it trains on 2 CPU cores at the synthetic default. Distance transform:
``cv2.distanceTransform`` (exact L2), border not background (see ``_segfix_targets``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from baselines.segfix.net import SegFixNet
from baselines.segfix.offsets import apply_offsets, offsets_from_logits
from baselines.segfix.train import make_loader, train_net
from bench.training import loop, resume
from bench.models.state_dict import load_checkpoint
from bench.models.coarse import upsampled_labels
from bench.core.interface import Coarse, Dataset, Method, MethodContext, check_image, normalize

log = logging.getLogger(__name__)

CHECKPOINT = "segfix.pt"


@dataclass(frozen=True)
class SegFixConfig:
    """SegFix options (reference values unless noted).

    Attributes:
        width: encoder width w (stride-4 branch; the reference is HRNet-2x20).
        head_channels: hidden width of both heads (reference 256).
        max_distance: boundary band: depth <= this (5).
        min_distance: boundary band: depth >= this (0).
        min_class_pixels: classes smaller than this get no distance transform (100).
        kernel_size: distance-gradient kernel (5).
        scale: offset length in pixels (2, ``segfix.py --scale``).
        boundary_threshold: boundary probability threshold (0.5).
        iterations: training iterations (synthetic default; reference 80000).
        batch_size: crops per iteration (reference 16).
        crop_size: (w, h) training crop (reference 512x512 at 2048x1024).
        optimizer: ``adam`` or ``sgd`` (reference: SGD lr 0.04, poly).
        lr: base learning rate (poly decay, power 0.9).
        weight_decay: weight decay.
        hflip: random horizontal flips.
        brightness: random brightness shift in +-levels (10).
        seed: seed of crops, flips and initialisation.
        cache_targets: keep all training targets in memory (small data sets).
    """

    width: int = 24
    head_channels: int = 48
    max_distance: int = 5
    min_distance: int = 0
    min_class_pixels: int = 100
    kernel_size: int = 5
    scale: int = 2
    boundary_threshold: float = 0.5
    iterations: int = 300
    batch_size: int = 8
    crop_size: tuple[int, int] = (256, 256)
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    hflip: bool = True
    brightness: int = 10
    seed: int = 0
    cache_targets: bool = True


class SegFix(Method):
    """SegFix offsets applied to the upsampled coarse labels; see the module docstring."""

    name: ClassVar[str] = "segfix"
    display_name: ClassVar[str] = "SegFix"
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = True
    Config: ClassVar[type] = SegFixConfig
    # every option that shapes the offset network: architecture, targets, loss, schedule, augmentation
    # (scale is inference only; cache_targets only decides what is recomputed)
    train_fields: ClassVar[tuple[str, ...]] = (
        "width", "head_channels", "max_distance", "min_distance", "min_class_pixels", "kernel_size",
        "boundary_threshold", "iterations", "batch_size", "crop_size", "optimizer", "lr", "weight_decay", "hflip",
        "brightness", "seed")

    def __init__(self, cfg: SegFixConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.net = SegFixNet(cfg.width, cfg.head_channels)
        load_checkpoint(self.net, self.checkpoints(cfg, ctx)["segfix"])
        self.net.to(ctx.device).eval()

    def offsets(self, image: np.ndarray) -> torch.Tensor:
        """Predicted (2, H, W) int64 (dy, dx) offsets of one (H, W, 3) uint8 RGB image."""
        check_image(image)
        H, W = image.shape[:2]
        with torch.no_grad():
            boundary, direction = self.net(normalize(np.ascontiguousarray(image), self.device))
            return offsets_from_logits(boundary, direction, (H, W), self.cfg.boundary_threshold, self.cfg.scale)

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image.

        Args:
            image: (H, W, 3) uint8 RGB at full resolution.
            coarse: coarse probabilities (C, h, w) on ``self.device``.

        Returns:
            (H, W) int64 labels on ``self.device``.

        Raises:
            ValueError: no coarse map or a bad image.
        """
        if coarse is None:
            raise ValueError("segfix refines a coarse map; got coarse=None")
        check_image(image)
        with torch.no_grad():
            labels = upsampled_labels(coarse.probs, image.shape[:2])
            return apply_offsets(labels, self.offsets(image))

    @classmethod
    def checkpoints(cls, cfg: SegFixConfig, ctx: MethodContext) -> dict[str, Path]:
        return {"segfix": Path(ctx.checkpoint_dir) / CHECKPOINT}

    @classmethod
    def train(cls, cfg: SegFixConfig, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the offset network on ``train_set``; save a plain state dict (with the sidecar
        ``make train`` passes in ``ctx``; ``bench.training.loop.save_checkpoint``).

        Raises:
            ValueError: empty training set.
        """
        if len(train_set) == 0:
            raise ValueError("segfix training needs a non-empty training set")
        device = torch.device(ctx.device)
        path = Path(paths["segfix"])
        identity = resume.identity_of(loop.sidecar_of(ctx), cfg, steps=cfg.iterations, images=len(train_set))
        file = resume.ResumeFile(path, "segfix", identity, resume.runtime_of(ctx))
        resume.read_in_process(file.runtime, "segfix", "the targets are cached in this process (cache_targets)")
        with loop.seeded(device, cfg.seed):
            net = SegFixNet(cfg.width, cfg.head_channels).to(device)
            load = make_loader(train_set, ctx.dataset.ignore_index, cfg)
            train_net(net, load, len(train_set), cfg, device, resume_file=file)
        loop.save_checkpoint(loop.cpu_state(net), path, loop.sidecar_of(ctx))
        file.remove()
        log.info("segfix: saved %s", path)
