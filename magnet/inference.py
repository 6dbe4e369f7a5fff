"""MagNet's progressive refinement loop for one image (magnet.md §1.2 to §1.5).

Stage 1 is the coarse map (the backbone on the whole image at the input size). At each later
stage i the cumulative map Y is upsampled to S_i, patches are scored by their mean uncertainty,
the chosen patches (all, or ``n_patches`` in Fast mode) go through the backbone and the stage's
refiner in batches, the refined patches are pasted onto a canvas, and the ``k`` points with the
highest median-smoothed error score take the canvas's class probabilities.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.core.interface import normalize
from magnet.config import Plan
from magnet.geometry import Paster, Size, patch_boxes
from magnet.roi_align import roi_align
from magnet.scoring import error_score, margin, patch_order, select_points, stage_points


class Timer:
    """Accumulates wall time per section (seconds); synchronises CUDA around each section."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[name] += time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@contextmanager
def _maybe(timer: Timer | None, name: str) -> Iterator[None]:
    if timer is None:
        yield
    else:
        with timer.section(name):
            yield


@dataclass(frozen=True)
class StageOptions:
    """Per-run options the loop needs besides the plan (see ``MagNetConfig``)."""

    n_points: float
    n_patches: int
    blur_kernel: int
    behaviour: str
    batch_size: int
    mask_inset: int
    refiner_batch_size: int = 1


def resize(image: np.ndarray, size: Size) -> np.ndarray:
    """cv2 INTER_LINEAR resize of an (H, W, 3) uint8 image to (w, h); no copy when the size is equal."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_LINEAR)


def stage_patches(scaled: np.ndarray, boxes: torch.Tensor, input_size: Size) -> np.ndarray:
    """(b, nh, nw, 3) uint8 patches: boxes sliced from the stage image, each resized to ``input_size``."""
    return np.stack([resize(scaled[y1:y2, x1:x2], input_size) for x1, y1, x2, y2 in boxes.tolist()])


def _refine_batch(backbone: torch.nn.Module, refiner: torch.nn.Module, patches: np.ndarray, y_crop: torch.Tensor,
                  refiner_batch: int, device: torch.device, timer: Timer | None) -> torch.Tensor:
    """Softmax of the refiner on (backbone softmax, previous-map crop); (b, C, nh, nw).

    The backbone sees the whole batch; the refiner sees chunks of ``refiner_batch`` patches
    (on CPU it is fastest one patch at a time: larger batches fall out of cache).
    """
    x = normalize(patches, device)
    with _maybe(timer, "backbone"):
        fine = F.softmax(backbone(x).float(), dim=1)
    with _maybe(timer, "refiner"):
        step = refiner_batch or fine.shape[0]
        return torch.cat([F.softmax(refiner(f, c), dim=1) for f, c in zip(fine.split(step), y_crop.split(step))])


def choose_patches(uncertainty: torch.Tensor, boxes: torch.Tensor, opts: StageOptions,
                   input_hw: tuple[int, int]) -> torch.Tensor:
    """Boxes to process, in processing order.

    Each patch is scored by the mean of the RoIAlign crop (at the input size) of the uncertainty
    map; full mode keeps every patch, Fast mode the first ``n_patches`` in ascending (released)
    or descending (paper) score order.

    Args:
        uncertainty: (H, W) ``1 - margin`` of the upsampled cumulative map.
        boxes: (K, 4) int64 grid boxes at this scale.
        opts: stage options.
        input_hw: (nh, nw).

    Returns:
        (K', 4) int64 boxes.
    """
    scores = roi_align(uncertainty[None], boxes, input_hw).mean(dim=(1, 2, 3))
    order = patch_order(scores, opts.behaviour)
    if opts.n_patches > 0:
        order = order[:opts.n_patches]
    return boxes[order]


def refine_stage(image: np.ndarray, y: torch.Tensor, scale: Size, plan: Plan, opts: StageOptions,
                 backbone: torch.nn.Module, refiner: torch.nn.Module, timer: Timer | None = None) -> torch.Tensor:
    """One refinement stage.

    Args:
        image: (H, W, 3) uint8 RGB at full resolution.
        y: (C, h, w) cumulative probabilities from the previous stage.
        scale: S_i, (w, h).
        plan: resolved geometry.
        opts: stage options.
        backbone: segmentation backbone in eval mode.
        refiner: this stage's refinement module in eval mode.
        timer: optional section timer (``backbone``, ``refiner``).

    Returns:
        (C, S_i.h, S_i.w) updated cumulative probabilities.
    """
    (sw, sh), (nw, nh) = scale, plan.input_size
    device = y.device
    y = F.interpolate(y[None], size=(sh, sw), mode="bilinear", align_corners=False)[0]
    boxes = patch_boxes(scale, plan.crop, device)
    uncertainty = 1.0 - margin(y)
    chosen = choose_patches(uncertainty, boxes, opts, (nh, nw))
    scaled = resize(image, scale)
    sizes = chosen[:, 2:] - chosen[:, :2]
    # Fast mode reads the canvas only inside the pasted patches when every box has one size (the
    # mask then lies inside them); otherwise the canvas is zero-filled as in the released code
    sparse = opts.n_patches > 0 and opts.mask_inset >= 0 and bool((sizes == sizes[:1]).all())
    paster = Paster(y.shape[0], scale, opts.mask_inset, device, dense=not sparse)
    for part in chosen.split(opts.batch_size):
        patches = stage_patches(scaled, part, plan.input_size)
        y_crop = roi_align(y, part, (nh, nw))
        paster.add(_refine_batch(backbone, refiner, patches, y_crop, opts.refiner_batch_size, device, timer), part)
    refined, mask = paster.finish()
    fast_mask = mask if opts.n_patches > 0 else None
    score = error_score(paster.certainty(), uncertainty, fast_mask, opts.behaviour, (nh, nw), opts.blur_kernel)
    k = stage_points(opts.n_points, sw * sh, len(chosen), len(boxes))
    idx = select_points(score, k, fast_mask)  # in Fast mode only inside the mask, where the canvas is defined
    flat_y, flat_r = y.view(y.shape[0], -1), refined.view(refined.shape[0], -1)
    flat_y[:, idx] = flat_r[:, idx]
    return y


def progressive(image: np.ndarray, coarse: torch.Tensor, plan: Plan, opts: StageOptions, backbone: torch.nn.Module,
                refiners: Sequence[torch.nn.Module], timer: Timer | None = None) -> torch.Tensor:
    """Stages 2..m on top of the stage-1 map.

    Args:
        image: (H, W, 3) uint8 RGB.
        coarse: (C, nh, nw) stage-1 probabilities (at the input size).
        plan: resolved geometry; ``plan.refiner_of_stage`` picks ``refiners[...]`` per stage.
        opts: stage options.
        backbone: segmentation backbone in eval mode.
        refiners: the refinement modules in eval mode.
        timer: optional section timer.

    Returns:
        (C, h, w) cumulative probabilities at the last stage processed (S_m unless skipped).
    """
    y = coarse
    if opts.n_patches == 0:
        return y
    for scale, ref_index in zip(plan.scales[1:], plan.refiner_of_stage):
        y = refine_stage(image, y, scale, plan, opts, backbone, refiners[ref_index], timer)
    return y
