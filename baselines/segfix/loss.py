"""SegFix loss (spec §6.3, ``loss_helper.SegFixLoss``).

``CE(boundary, w = 1 - class frequency in the batch) + CE(direction, w = 1 - bin frequency over the
supervised pixels)``, each weight 1, after bilinear upsampling (align_corners=True) of the
predictions to the target size. The direction is supervised only where the *predicted* boundary
probability exceeds the threshold (0.5) and the label is not ignored.

Departure from the reference, for empty cases only: where a term has no supervised pixel (no
predicted boundary yet, or a batch whose only boundary class has weight 0) the reference's
``F.cross_entropy`` returns NaN (0 / 0); here that term is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frequency_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``1 - count_i / total`` over the non-negative entries of ``target``.

    Args:
        target: integer labels, -1 = ignored.
        num_classes: K.

    Returns:
        (K,) float32 weights (all ones when nothing is labelled).
    """
    valid = target[target >= 0]
    counts = torch.bincount(valid.reshape(-1), minlength=num_classes)[:num_classes].float()
    total = counts.sum()
    if total == 0:
        return torch.ones(num_classes, device=target.device)
    return 1.0 - counts / total


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, target, weight, ignore_index=-1)``, but 0 instead of 0/0.

    Args:
        logits: (N, K, H, W).
        target: (N, H, W) int64, -1 ignored.
        weight: (K,) class weights.

    Returns:
        Scalar: ``sum(w[y] * ce) / sum(w[y])`` over non-ignored pixels.
    """
    valid = target >= 0
    safe = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, safe, reduction="none")
    w = weight[safe] * valid
    denom = w.sum()
    if denom <= 0:
        return logits.sum() * 0.0
    return (w * ce).sum() / denom


def segfix_loss(
    boundary_logits: torch.Tensor,
    direction_logits: torch.Tensor,
    boundary_gt: torch.Tensor,
    direction_gt: torch.Tensor,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SegFix training loss.

    Args:
        boundary_logits: (N, 2, h, w) predicted boundary logits.
        direction_logits: (N, D, h, w) predicted direction logits.
        boundary_gt: (N, H, W) int64 in {-1, 0, 1}.
        direction_gt: (N, H, W) int64 in {-1, 0..D-1}.
        threshold: boundary probability above which the direction is supervised.

    Returns:
        ``(loss, parts)`` with ``parts = {"boundary": ..., "direction": ..., "supervised": n}``.
    """
    size = boundary_gt.shape[-2:]
    b = F.interpolate(boundary_logits, size=size, mode="bilinear", align_corners=True)
    d = F.interpolate(direction_logits, size=size, mode="bilinear", align_corners=True)
    mask_loss = weighted_ce(b, boundary_gt, frequency_weights(boundary_gt, 2))
    with torch.no_grad():
        predicted = torch.softmax(b, dim=1)[:, 1] > threshold
        dir_target = torch.where(predicted, direction_gt, torch.full_like(direction_gt, -1))
    dir_loss = weighted_ce(d, dir_target, frequency_weights(dir_target, d.shape[1]))
    parts = {
        "boundary": float(mask_loss.detach()),
        "direction": float(dir_loss.detach()),
        "supervised": int((dir_target >= 0).sum()),
    }
    return mask_loss + dir_loss, parts
