"""GLNet's focal loss (``utils/loss.py:FocalLoss`` of VITA-Group/GLNet, used with gamma = 3), our code.

Per pixel: ``p_t`` = softmax probability of the target class, clamped to [eps, 1 - eps] (1e-7);
loss = ``-(1 - p_t) ** gamma * log(p_t)``; the mean over the pixels kept. The release keeps every
pixel (its ``ignore`` option unused; DeepGlobe has no void label, and class 0 "unknown" is trained
on like any class: its authors leave it out of the metric only, their issue #3). Here pixels
equal to ``ignore_index`` are dropped first (the release's ``ignore`` behaviour), since our data
sets may have a void label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 3.0, eps: float = 1e-7,
               ignore_index: int | None = None) -> torch.Tensor:
    """Args:
        logits: (N, C, h, w) float.
        target: (N, h, w) int64 class ids (``ignore_index`` on void pixels).
        gamma: focusing exponent (3 in the release's training script).
        eps: clamp of p_t.
        ignore_index: label value to drop, or None.

    Returns:
        () mean loss over the kept pixels (0 if none is kept).

    Raises:
        ValueError: logits and target sizes differ.
    """
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"focal_loss: logits (N, C, h, w) and target (N, h, w) must match; "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    C = logits.shape[1]
    flat = logits.permute(0, 2, 3, 1).reshape(-1, C)
    t = target.reshape(-1)
    if ignore_index is not None:
        keep = t != ignore_index
        flat, t = flat[keep], t[keep]
    if t.numel() == 0:
        return logits.sum() * 0.0
    if int(t.min()) < 0 or int(t.max()) >= C:
        raise ValueError(f"focal_loss: target ids must lie in 0..{C - 1} (or be ignore_index {ignore_index})")
    p = F.softmax(flat, dim=1).gather(1, t[:, None])[:, 0].clamp(eps, 1.0 - eps)
    return (-(1.0 - p) ** gamma * p.log()).mean()
