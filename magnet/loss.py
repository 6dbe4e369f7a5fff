"""OHEM cross-entropy used to train MagNet's refiner (magnet.md §2.1, HRNet's OhemCrossEntropy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

REFERENCE_MIN_KEPT = 100_000  # released value, for 256x128 inputs in batches of 8
REFERENCE_AREA = 256 * 128


def scaled_min_kept(min_kept: int, input_size: tuple[int, int]) -> int:
    """``min_kept`` if given (> 0), else 100000 scaled down by the input area over 256x128 (never up)."""
    if min_kept > 0:
        return int(min_kept)
    area = input_size[0] * input_size[1]
    return int(round(REFERENCE_MIN_KEPT * min(1.0, area / REFERENCE_AREA)))


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int, thresh: float = 0.7,
                       min_kept: int = REFERENCE_MIN_KEPT) -> torch.Tensor:
    """Mean cross-entropy over the hard pixels of a batch.

    Over the non-ignored pixels, p is the softmax probability of the true class; with p sorted
    ascending, ``threshold = max(p[min(min_kept, N - 1)], thresh)`` and the loss is the mean
    per-pixel cross-entropy of the pixels with ``p < threshold``.

    Args:
        logits: (N, C, h, w) float.
        target: (N, h, w) int64 class ids, ``ignore_index`` where unlabelled.
        ignore_index: label value excluded from the loss.
        thresh: probability below which a pixel always counts as hard.
        min_kept: the threshold is raised so that about this many pixels are kept.

    Returns:
        Scalar loss (0, still attached to the graph, when no pixel qualifies).
    """
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (N, C, h, w) and target (N, h, w), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    pixel_loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none").reshape(-1)
    valid = target.reshape(-1) != ignore_index
    safe_target = target.masked_fill(target == ignore_index, 0)
    prob = F.softmax(logits, dim=1).gather(1, safe_target[:, None]).reshape(-1)
    prob, pixel_loss = prob[valid], pixel_loss[valid]
    if prob.numel() == 0:
        return logits.sum() * 0.0
    sorted_prob, order = prob.detach().sort()
    threshold = max(float(sorted_prob[min(min_kept, prob.numel() - 1)]), thresh)
    kept = pixel_loss[order][sorted_prob < threshold]
    if kept.numel() == 0:
        return logits.sum() * 0.0
    return kept.mean()
