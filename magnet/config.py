"""MagNet / MagNet-Fast options and the resolved per-run plan.

The dataclass defaults are the paper's Cityscapes settings and training schedule (magnet.md §1.1,
§2.1). The settings of each dataset live in one place only: its ``configs/datasets/<name>.yaml``
(``magnet.<field>: value`` lines). ``MagNetFastConfig`` extends ``MagNetConfig``, which is also what
makes ``magnet_fast`` inherit the ``magnet.*`` values of a sweep (``bench.core.config.option_parent``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.core.config import parse_size
from magnet.geometry import Size, derive_scales, grid_overlaps
from magnet.scoring import check_behaviour

TRAIN_ORDERS = ("matching", "released")


@dataclass(frozen=True)
class MagNetConfig:
    """Options of MagNet (full). Sizes are (w, h) pairs or ``"WxH"`` strings.

    Attributes:
        scales: stage scales S_1..S_m; () = from the crop size doubling up to the image size.
        crop_size: patch size c at every scale; None = the backbone input size.
        n_points: points replaced per stage: > 1 absolute (Cityscapes 32768), <= 1 a fraction of
            the stage map (DeepGlobe 0.75).
        n_patches: -1 = every patch (MagNet); > 0 = that many patches per stage (MagNet-Fast);
            0 = skip the refinement stages.
        blur_kernel: median-blur window of the point score (odd).
        n_refiners: refinement modules; stage i (1-based, i >= 2) uses module
            ``min(n_refiners, i - 1) - 1``; 0 = one per refined stage.
        behaviour: ``released`` (the released code's Fast quirks: least uncertain patches first,
            inverted mask) or ``paper`` (most uncertain patches first, points inside the
            processed patches). Identical for full MagNet.
        batch_size: patches per backbone forward at inference, the declared batch setting
            (``batch_option``; ``bench.core.batch``). 1 by default, as the released code runs its
            patches (``sub_batch_size=1``), so that time and memory compare with the other rows at
            batch 1; labels do not depend on it beyond float rounding of the batched backbone
            (the drift gate's labels are identical at 1 and 2; 1 pixel of a 2048x1024 synthetic
            image moved: tests/test_batch.py). 2 was the fastest within the released code's memory
            on 2 CPU cores (perf/magnet_profile.py).
        refiner_batch_size: patches per refiner forward, within a backbone batch; 0 = the whole
            backbone batch (for GPUs). 1 is fastest on CPU.
        mask_inset: pixels each box is shrunk by for the Fast coverage mask (released: 10).
        fuse_refiner: at inference, fold the refiners' BN into their convs and run them
            channels_last (about 1.5x faster on CPU; rounding-level differences only).
        epochs: refiner training epochs (one random pair per training image per epoch).
        iterations_per_epoch: 0 = one pass over the training set (ceil(N / train_batch_size)).
        train_batch_size: pairs per training step.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        milestones: MultiStepLR epochs; () = (10, 20, 30, 40, 45) scaled by epochs / 50.
        gamma: MultiStepLR factor.
        ohem_thresh: OHEM probability threshold.
        ohem_min_kept: OHEM minimum kept pixels per batch; 0 = 100000 scaled by the input area
            over 256x128 when smaller (so 100000 for Cityscapes and DeepGlobe).
        train_input_order: ``matching`` feeds (fine, coarse) as inference does; ``released``
            feeds (coarse, fine) as the released train.py does (mismatched with its test code).
        bn_recalibration: after training, batches over which the BN running statistics are
            recomputed as a plain average (0 = released recipe; for short schedules, where BN
            momentum 0.01 leaves them near their initial values).
        cache_mb: memory allowed for caching resized training images (and coarse probabilities).
    """

    scales: tuple[Any, ...] = ()
    crop_size: Any = None
    n_points: float = 32768
    n_patches: int = -1
    blur_kernel: int = 5
    n_refiners: int = 0
    behaviour: str = "released"
    batch_size: int = 1
    refiner_batch_size: int = 1
    mask_inset: int = 10
    fuse_refiner: bool = True
    refiner_mode: str = "learned"
    epochs: int = 50
    iterations_per_epoch: int = 0
    train_batch_size: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 0
    train_input_order: str = "matching"
    bn_recalibration: int = 0
    cache_mb: int = 2048

    batch_option: ClassVar[str] = "batch_size"  # the harness reads it (bench.core.batch)


@dataclass(frozen=True)
class MagNetFastConfig(MagNetConfig):
    """MagNet-Fast: 4 patches per stage and 90 % of their points (Cityscapes script)."""

    n_points: float = 0.9
    n_patches: int = 4


@dataclass(frozen=True)
class MagNetFastPaperConfig(MagNetFastConfig):
    """MagNet-Fast with the paper's patch order and point placement."""

    behaviour: str = "paper"


@dataclass(frozen=True)
class Plan:
    """Resolved geometry of one run.

    Attributes:
        scales: S_1..S_m, (w, h).
        crop: c, (w, h).
        input_size: n, (w, h).
        refiner_of_stage: refiner index for stages 2..m (length m - 1).
        n_refiners: number of refinement modules.
    """

    scales: tuple[Size, ...]
    crop: Size
    input_size: Size
    refiner_of_stage: tuple[int, ...]
    n_refiners: int

    def stages_of_refiner(self, index: int) -> tuple[Size, ...]:
        """Scales whose stage uses refiner ``index``."""
        return tuple(s for s, r in zip(self.scales[1:], self.refiner_of_stage) if r == index)


def _size(value: Any, what: str) -> Size:
    try:
        return parse_size(value)
    except ValueError as err:
        raise ValueError(f"magnet.{what}: {err}") from None


def resolve_plan(cfg: MagNetConfig, input_size: Size, image_size: Size) -> Plan:
    """Check the options and work out scales, crop size and the refiner of each stage.

    Raises:
        ValueError: inconsistent options, with what was expected.
    """
    check_behaviour(cfg.behaviour)
    if cfg.train_input_order not in TRAIN_ORDERS:
        raise ValueError(f"magnet.train_input_order must be one of {TRAIN_ORDERS}, got {cfg.train_input_order!r}")
    if cfg.batch_size < 1 or cfg.train_batch_size < 1 or cfg.refiner_batch_size < 0:
        raise ValueError("magnet.batch_size and magnet.train_batch_size must be >= 1, magnet.refiner_batch_size >= 0")
    input_size = _size(input_size, "input_size")
    crop = _size(cfg.crop_size, "crop_size") if cfg.crop_size else input_size
    scales = tuple(_size(s, "scales") for s in cfg.scales) or derive_scales(crop, _size(image_size, "image_size"))
    if len(scales) < 2:
        raise ValueError(f"magnet.scales needs at least two scales, got {scales}")
    if scales[0] != crop:
        raise ValueError(f"magnet.scales[0] {scales[0]} must equal the crop size {crop} (stage 1 is the whole image)")
    for s in scales:
        if s[0] < crop[0] or s[1] < crop[1]:
            raise ValueError(f"scale {s} is smaller than the crop size {crop}")
        if grid_overlaps(s, crop):
            warnings.warn(f"MagNet patch grid at {s} with crop {crop} overlaps; pasting assigns (released behaviour)",
                          stacklevel=2)
    stages = len(scales) - 1
    n_ref = cfg.n_refiners or stages
    if not 1 <= n_ref <= stages:
        raise ValueError(f"magnet.n_refiners must be 0 (one per stage) or 1..{stages}, got {cfg.n_refiners}")
    refiner_of_stage = tuple(min(n_ref, i - 1) - 1 for i in range(2, len(scales) + 1))
    return Plan(scales=scales, crop=crop, input_size=input_size, refiner_of_stage=refiner_of_stage, n_refiners=n_ref)


def check_coarse_scale(plan: Plan, coarse_scale: Any) -> None:
    """Warn when the runner's coarse pass is not MagNet's stage 1 (image -> S_1 -> n, magnet.md §1.2).

    The two differ only when S_1 differs from the input size (DeepGlobe: 2448 -> 612 -> 508), where
    the dataset config must set ``coarse_scale`` to S_1.
    """
    first, n = plan.scales[0], plan.input_size
    scale = _size(coarse_scale, "coarse_scale") if coarse_scale is not None else None
    if first != n and scale != first:
        warnings.warn(f"MagNet stage 1 resizes the image to {first} then {n}, but the coarse pass resizes "
                      f"through {scale or 'nothing'}: set coarse_scale: {first[0]}x{first[1]} for parity", stacklevel=3)
