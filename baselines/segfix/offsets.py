"""SegFix inference: predicted boundary/direction -> integer offsets -> one integer gather.

Spec §6.5: heads upsampled to the image size (bilinear, align_corners=True), boundary where
``softmax[1] > 0.5``, direction = argmax of the 8 logits mapped to the unit (dy, dx) table, offset
= scale (2) x unit vector on boundary pixels, 0 elsewhere; then
``refined[y, x] = coarse[clamp(y + dy), clamp(x + dx)]`` once. The reference's bilinear
``grid_sample`` on label ids can blend two ids into a third; this is an integer gather, so every
output label is a label of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.segfix.targets import BIN_VECTORS


def bin_vectors(device: torch.device | str) -> torch.Tensor:
    """(8, 2) int64 (dy, dx) unit offsets of the direction bins."""
    return torch.as_tensor(BIN_VECTORS, device=device)


def offsets_from_bins(boundary: torch.Tensor, direction: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Integer offsets from a boundary mask and direction bins.

    Args:
        boundary: (H, W) bool (or 0/1), pixels to move.
        direction: (H, W) int64 bins in 0..7 (other values only where ``boundary`` is False).
        scale: offset length in pixels along each axis (2).

    Returns:
        (2, H, W) int64 (dy, dx); 0 off the boundary.
    """
    move = boundary.bool()
    bins = torch.where(move, direction.long(), torch.zeros_like(direction, dtype=torch.long))
    vec = bin_vectors(direction.device)[bins] * scale  # (H, W, 2)
    vec = vec * move.unsqueeze(-1)
    return vec.permute(2, 0, 1).contiguous()


def offsets_from_logits(
    boundary_logits: torch.Tensor,
    direction_logits: torch.Tensor,
    out_hw: tuple[int, int],
    threshold: float = 0.5,
    scale: int = 2,
) -> torch.Tensor:
    """Offsets from the network's stride-4 predictions for one image.

    Args:
        boundary_logits: (1, 2, h, w).
        direction_logits: (1, D, h, w).
        out_hw: (H, W) of the image.
        threshold: boundary probability threshold (strictly greater moves).
        scale: offset length (2).

    Returns:
        (2, H, W) int64 (dy, dx).
    """
    b = F.interpolate(boundary_logits, size=out_hw, mode="bilinear", align_corners=True)
    d = F.interpolate(direction_logits, size=out_hw, mode="bilinear", align_corners=True)
    boundary = torch.softmax(b, dim=1)[0, 1] > threshold
    direction = d[0].argmax(0)
    return offsets_from_bins(boundary, direction, scale)


def apply_offsets(labels: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Shift once by integer gather with border clamping.

    Args:
        labels: (H, W) integer label map.
        offsets: (2, H, W) int64 (dy, dx).

    Returns:
        (H, W) labels, same dtype: ``labels[clamp(y + dy, 0, H-1), clamp(x + dx, 0, W-1)]``.

    Raises:
        ValueError: shapes disagree.
    """
    H, W = labels.shape
    if tuple(offsets.shape) != (2, H, W):
        raise ValueError(f"offsets must be (2, {H}, {W}) to match the labels, got {tuple(offsets.shape)}")
    ys = torch.arange(H, device=labels.device).view(H, 1)
    xs = torch.arange(W, device=labels.device).view(1, W)
    yy = (ys + offsets[0]).clamp_(0, H - 1)
    xx = (xs + offsets[1]).clamp_(0, W - 1)
    return labels[yy, xx]
