"""SegRefiner's discrete diffusion and its high-resolution inference (our own code, Apache-2.0).

Written from ``refinement_track.md`` §4.1 and §4.4 (SegRefiner @ 53419a2,
``segrefiner_base.py``, ``segrefiner_semantic.py``); nothing is copied from the release.

Schedule (:func:`schedule`)
    ``alpha[t] = linspace(0.8, 0, 6)[t]`` for t = 0..5 (0.8, 0.64, 0.48, 0.32, 0.16, 0) and
    ``alpha_prev[t] = alpha[t - 1]`` with ``alpha[-1] = 1``; ``alpha[t]`` is the chance that a pixel of
    ``x_t`` holds its ground-truth value.

Forward (:func:`q_sample`, training)
    Each pixel independently takes the GT value with probability ``alpha[t]``, else the coarse
    value: ``x_5`` *is* the coarse mask, the start state of the reverse process.

Reverse (:func:`reverse_step`, :func:`sample_loop`)
    At step t the denoiser predicts a logit map of the clean mask; its confidence is
    ``c = 2 |sigmoid(logit) - 0.5|``, the chance of turning "fine" is
    ``p = c (alpha_prev[t] - alpha[t]) / (1 - c alpha[t])`` and the per-pixel fine probability
    accumulates as ``f <- f + (1 - f) p``. Except at the last step a fresh uniform draw marks the
    pixels with ``draw < f`` fine: they take the predicted label (``logit >= 0``), every other pixel
    the **original** coarse mask (not the previous state). The last step returns
    ``sigmoid(logit)``. With constant ``c``, ``1 - f`` telescopes to
    ``(1 - c alpha[t_end - 1]) / (1 - c alpha[t_start])``: ``f = 0.8 c`` after steps 5..1, ``c`` after 0.

High-resolution inference (:func:`refine_mask`)
    1. A coarse mask with at most ``min_pixels`` foreground pixels gives zeros, without a forward.
    2. Global: image and mask resized to ``S x S`` (``S = model_size``) by nearest interpolation
       (aspect ratio not kept); steps 5..1; the probabilities resized back by nearest.
    3. Local: every ``S``-grid pixel whose fine probability is below ``fine_prob_thr`` times the
       maximum is the centre of an ``S x S`` full-resolution box (shifted inside the image), score
       ``1 - f``; greedy NMS at ``iou_thr``; boxes where the global mask is all 0 or all 1 are
       dropped; with ``max_patches > 0`` only that many remain, the most uncertain first (a
       harness option for CPU budgets; the release keeps all: 0); one step t = 0 on each kept patch (its image, its global-mask patch and fine
       probabilities), ``batch_max`` patches per forward.
    4. Paste (:func:`paste`): overlapping patch probabilities averaged where patches cover, the
       global probabilities elsewhere. Thresholded at 0.5 this is the release's output (the
       global mask outside the patches, the thresholded mean inside); the soft map is returned so
       that classes can be compared (per-class application, ``method.py``).

Randomness comes only from the ``torch.Generator`` passed in (the draws of steps 5..2), so a fixed
seed reproduces a run; the release draws from the global state, so its runs differ (its ± std).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def schedule(steps: int = 6, start: float = 0.8, stop: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, alpha_prev)``: (steps,) float64 each; ``alpha = linspace(start, stop, steps)``,
    ``alpha_prev = [1, alpha[0], ..., alpha[-2]]``."""
    alpha = np.linspace(start, stop, steps)
    return alpha, np.concatenate([[1.0], alpha[:-1]])


def q_sample(gt: torch.Tensor, coarse: torch.Tensor, t: torch.Tensor, alpha: np.ndarray,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The forward corruption ``x_t``.

    Args:
        gt, coarse: (N, 1, H, W) float32 0/1 masks.
        t: (N,) int64 steps.
        alpha: the schedule's ``alpha``.
        generator: source of the uniform draws (None: the global one).

    Returns:
        (N, 1, H, W) float32: per pixel ``gt`` with probability ``alpha[t]``, else ``coarse``.
    """
    keep = torch.as_tensor(alpha, dtype=torch.float32, device=gt.device)[t].view(-1, 1, 1, 1)
    draw = torch.rand(gt.shape, generator=generator, device=gt.device)
    return torch.where(draw < keep, gt, coarse)


def reverse_step(logits: torch.Tensor, fine: torch.Tensor, t: int, alpha: np.ndarray,
                 alpha_prev: np.ndarray) -> torch.Tensor:
    """The fine probabilities after step ``t``: (N, 1, H, W) float32 logits and fine probabilities
    -> (N, 1, H, W) float32 ``f + (1 - f) c (alpha_prev[t] - alpha[t]) / (1 - c alpha[t])``."""
    conf = 2 * (torch.sigmoid(logits) - 0.5).abs()
    move = conf * float(alpha_prev[t] - alpha[t]) / (1 - conf * float(alpha[t]))
    return fine + (1 - fine) * move


def sample_loop(denoiser: Denoiser, image: torch.Tensor, x_last: torch.Tensor, fine: torch.Tensor | None,
                steps: Sequence[int], alpha: np.ndarray, alpha_prev: np.ndarray,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse steps ``steps`` (descending) from ``x_last``.

    Args:
        denoiser: (N, 4, H, W), (N,) int64 -> (N, 1, H, W) logits.
        image: (N, 3, H, W) float32 normalised images.
        x_last: (N, 1, H, W) float32 0/1 start masks (the coarse masks): where a pixel is not
            (yet) fine it returns to this value.
        fine: (N, 1, H, W) float32 fine probabilities to start from (None: zeros).
        steps: e.g. (5, 4, 3, 2, 1) or (0,).
        generator: source of the uniform draws.

    Returns:
        ``(prob, fine)``: (N, 1, H, W) float32 ``sigmoid`` of the last step's logits and the final
        fine probabilities.
    """
    fine = torch.zeros_like(x_last) if fine is None else fine
    x = x_last
    logits = x_last
    for i, t in enumerate(steps):
        tt = torch.full((x.shape[0],), int(t), dtype=torch.int64, device=x.device)
        logits = denoiser(torch.cat([image, x], 1), tt)
        fine = reverse_step(logits, fine, int(t), alpha, alpha_prev)
        if i < len(steps) - 1:
            draw = torch.rand(x.shape, generator=generator, device=x.device)
            x = torch.where(draw < fine, (logits >= 0).float(), x_last)
    return torch.sigmoid(logits), fine


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) float32 ``(x1, y1, x2, y2)``, areas ``(x2 - x1) (y2 - y1)`` (mmcv's offset 0).
        scores: (N,) float32; higher first, ties in input order.
        iou_thr: a box whose IoU with a kept, higher-scoring box exceeds this is dropped.

    Returns:
        (K,) int64 indices of the kept boxes, by descending score.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    b = boxes.detach().cpu().double().numpy()
    order = np.argsort(-scores.detach().cpu().double().numpy(), kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(len(b), bool)
    keep = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(b[i, 2], b[:, 2]) - np.maximum(b[i, 0], b[:, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[:, 3]) - np.maximum(b[i, 1], b[:, 1]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area - inter, 1e-12)
        alive &= ~(iou > iou_thr)
    return torch.as_tensor(np.array(keep, np.int64))


def patch_boxes(fine: torch.Tensor, size_hw: tuple[int, int], patch_hw: tuple[int, int],
                fine_prob_thr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate local boxes from the global step's fine probabilities.

    Args:
        fine: (S_h, S_w) float32 fine probabilities at the model size.
        size_hw: (H, W) of the full-resolution image.
        patch_hw: (h, w) of a box (``model_size`` each side when the image is large enough).
        fine_prob_thr: pixels below ``fine_prob_thr * fine.max()`` are centres.

    Returns:
        ``(boxes, scores)``: (N, 4) float32 ``(x1, y1, x2, y2)`` inside the image, (N,) float32
        ``1 - f``.
    """
    H, W = size_hw
    ph, pw = patch_hw
    low = fine < fine_prob_thr * fine.max()
    ys, xs = torch.nonzero(low, as_tuple=True)
    scores = 1 - fine[ys, xs]
    # the release scales grid indices by (H / S, W / S) and truncates (no half-pixel centre)
    yc = (ys.double() * (H / fine.shape[0])).floor()
    xc = (xs.double() * (W / fine.shape[1])).floor()
    y1 = (yc - ph / 2).clamp(min=0)
    y1 = torch.minimum(y1, torch.full_like(y1, H - ph))
    x1 = (xc - pw / 2).clamp(min=0)
    x1 = torch.minimum(x1, torch.full_like(x1, W - pw))
    # the release truncates the float box to int after NMS; flooring first keeps boxes pixel-aligned
    y1, x1 = y1.floor(), x1.floor()
    boxes = torch.stack([x1, y1, x1 + pw, y1 + ph], 1).float()
    return boxes, scores.float()


def paste(local: torch.Tensor, global_prob: torch.Tensor, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
    """The refined probabilities: mean of the patches where they cover, the global ones elsewhere.

    Args:
        local: (K, h, w) float32 patch probabilities.
        global_prob: (H, W) float32 global probabilities at full resolution.
        boxes: K boxes ``(x1, y1, x2, y2)`` of size (h, w) inside the image.

    Returns:
        (H, W) float32. ``>= 0.5`` of it is the release's paste: the global mask
        (``global_prob >= 0.5``) outside the boxes, the thresholded patch mean inside.
    """
    total = torch.zeros_like(global_prob)
    count = torch.zeros_like(global_prob)
    for patch, (x1, y1, x2, y2) in zip(local, boxes):
        total[y1:y2, x1:x2] += patch
        count[y1:y2, x1:x2] += 1
    covered = count > 0
    return torch.where(covered, total / count.clamp(min=1), global_prob)


@dataclass(frozen=True)
class Inference:
    """The inference settings of :func:`refine_mask` (``SegRefinerConfig`` documents each)."""

    model_size: int = 64
    fine_prob_thr: float = 0.9
    iou_thr: float = 0.3
    batch_max: int = 32
    min_pixels: int = 128
    local_step: bool = True
    max_patches: int = 0


def refine_mask(denoiser: Denoiser, image: torch.Tensor, mask: torch.Tensor, settings: Inference,
                alpha: np.ndarray, alpha_prev: np.ndarray, generator: torch.Generator | None,
                stride: int = 1) -> torch.Tensor:
    """Refine one binary mask of one image (global step, local step, paste; module docstring).

    Args:
        denoiser: the UNet (or any callable of its signature).
        image: (1, 3, H, W) float32 normalised image.
        mask: (H, W) bool (or 0/1) coarse mask at full resolution.
        settings: see :class:`Inference`.
        alpha, alpha_prev: the schedule (:func:`schedule`); its last index is the start step.
        generator: source of the sampler's draws (seed it for a reproducible result).
        stride: patch sides are rounded down to a multiple of this (the UNet's ``stride``) when
            the image is smaller than ``model_size``.

    Returns:
        (H, W) float32 probabilities; ``>= 0.5`` is the release's refined mask. All zeros when the
        mask has at most ``min_pixels`` foreground pixels (the denoiser is not called).
    """
    H, W = mask.shape
    m = mask.to(image.device, torch.float32)
    if float(m.sum()) <= settings.min_pixels:
        return torch.zeros(H, W, device=image.device)
    S = settings.model_size
    last = len(alpha) - 1
    g_img = F.interpolate(image, size=(S, S), mode="nearest")
    g_mask = (F.interpolate(m[None, None], size=(S, S), mode="nearest") >= 0.5).float()
    g_prob, fine = sample_loop(denoiser, g_img, g_mask, None, list(range(last, 0, -1)), alpha, alpha_prev, generator)
    full_prob = F.interpolate(g_prob, size=(H, W), mode="nearest")[0, 0]
    if not settings.local_step:
        return full_prob
    full_mask = (full_prob >= 0.5).float()
    ph, pw = min(S, H) // stride * stride, min(S, W) // stride * stride
    if ph == 0 or pw == 0:
        return full_prob
    boxes, scores = patch_boxes(fine[0, 0], (H, W), (ph, pw), settings.fine_prob_thr)
    kept = boxes[nms(boxes, scores, settings.iou_thr)].long().tolist()
    full_fine = F.interpolate(fine, size=(H, W), mode="nearest")[0, 0]
    chosen = []
    for x1, y1, x2, y2 in kept:
        part = full_mask[y1:y2, x1:x2]
        if bool(part.any()) and not bool(part.all()):
            chosen.append((x1, y1, x2, y2))
    if settings.max_patches > 0:  # NMS returns boxes by descending score: the most uncertain first
        chosen = chosen[:settings.max_patches]
    if not chosen:
        return full_prob
    outs = []
    for start in range(0, len(chosen), max(1, settings.batch_max)):
        group = chosen[start:start + max(1, settings.batch_max)]
        imgs = torch.cat([image[:, :, y1:y2, x1:x2] for x1, y1, x2, y2 in group])
        masks = torch.stack([full_mask[y1:y2, x1:x2] for x1, y1, x2, y2 in group])[:, None]
        fines = torch.stack([full_fine[y1:y2, x1:x2] for x1, y1, x2, y2 in group])[:, None]
        prob, _ = sample_loop(denoiser, imgs, masks, fines, [0], alpha, alpha_prev, generator)
        outs.append(prob[:, 0])
    return paste(torch.cat(outs), full_prob, chosen)
