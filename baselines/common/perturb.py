"""CascadePSP's training masks: a ground-truth mask perturbed to a target IoU (our own implementation;
shared by CascadePSP and CRM, whose release trains on the same perturbation).

As the release's ``util/boundary_modification.py`` and ``util/de_transform.py``:

1. :func:`modify_boundary`: every outer/inner contour (OpenCV, no approximation) with at least 10
   vertices loses a run of 10 % of its vertices (a run whose two ends are close: chosen among
   the 10 % shortest end-to-end gaps), then keeps a random 10 % of the remaining vertices; the
   polygons are filled (the release's vertex moves have rate 0, so none is made). With no such
   contour the mask is kept.
2. :func:`perturb_seg`: rounds of four random rectangles, each dilated or eroded (probability
   0.5) with a random structuring element (rectangle or one of three ellipses, size 3..9), with
   a 25 % chance of first setting the rectangle's centre pixel to 0 or 255 (holes and islands),
   until the IoU with the step-1 mask falls below the target (at most 250 rounds).

Randomness comes from one ``numpy.random.Generator`` (the release uses the global ``random`` /
``numpy.random`` state); the structuring-element choice is the release's fixed ``randint(1, 5)``.
Masks are (H, W) uint8 with values 0 / 255.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _structure(rng: np.random.Generator, size: int) -> np.ndarray:
    choice = int(rng.integers(1, 5))
    if choice == 1:
        return cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    if choice == 2:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    if choice == 3:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size // 2))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size // 2, size))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero((a > 0) & (b > 0))
    union = np.count_nonzero((a > 0) | (b > 0))
    return (inter + 1e-6) / (union + 1e-6)


def perturb_seg(mask: np.ndarray, iou_target: float, rng: np.random.Generator, rounds: int = 250) -> np.ndarray:
    """Random local dilations/erosions of ``mask`` until IoU(result, mask) < ``iou_target``.

    Args:
        mask: (H, W) uint8, 0 / 255 (thresholded at 127 first).
        iou_target: stop once the IoU with ``mask`` drops below this.
        rng: the random source.
        rounds: most rounds of four rectangles (250).

    Returns:
        (H, W) uint8 0 / 255.
    """
    h, w = mask.shape
    seg = np.where(mask > 127, 255, 0).astype(np.uint8)
    if h <= 2 or w <= 2:
        return seg
    for _ in range(rounds):
        for _ in range(4):
            lx, ly = int(rng.integers(w)), int(rng.integers(h))
            lw, lh = int(rng.integers(lx + 1, w + 1)), int(rng.integers(ly + 1, h + 1))
            if rng.random() < 0.25:
                seg[(ly + lh) // 2, (lx + lw) // 2] = int(rng.integers(2)) * 255
            region = seg[ly:lh, lx:lw]
            op = cv2.dilate if rng.random() < 0.5 else cv2.erode
            seg[ly:lh, lx:lw] = op(region, _structure(rng, int(rng.integers(3, 10))), iterations=1)
        if _iou(seg, mask) < iou_target:
            break
    return seg


def modify_boundary(mask: np.ndarray, iou_target: float, rng: np.random.Generator, regional_rate: float = 0.1,
                    sample_rate: float = 0.1) -> np.ndarray:
    """Coarsen the contours of ``mask``, then :func:`perturb_seg` towards ``iou_target``.

    Args:
        mask: (H, W) uint8, 0 / 255.
        iou_target: target IoU of the perturbation step (drawn from U[0.8, 1) in training).
        rng: the random source.
        regional_rate: fraction of each contour's vertices removed as one run (0.1).
        sample_rate: fraction of the remaining vertices kept (0.1).

    Returns:
        (H, W) uint8 0 / 255.
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        n = contour.shape[0]
        if n < 10:
            continue
        k = int(n * regional_rate)
        gaps = [(int(np.sum((contour[i] - contour[i + k]) ** 2)), i) for i in range(n - k)]
        # the release sorts (index, gap) pairs by gap with a stable sort: ties keep index order
        gaps.sort(key=lambda g: g[0])
        start = gaps[int(rng.integers(math.ceil(0.1 * len(gaps))))][1]
        contour = np.concatenate([contour[:start], contour[start + k:]], axis=0)
        m = contour.shape[0]
        keep = np.sort(rng.choice(m, size=int(m * sample_rate), replace=False))
        if keep.size:
            polygons.append(contour[keep])
    if polygons:
        drawn = cv2.drawContours(np.zeros_like(mask), polygons, -1, 255, -1)
    else:
        drawn = mask.copy()
    return perturb_seg(drawn, iou_target, rng)
