"""SegFix offset network: a small stride-4 multi-branch encoder with the two SegFix heads.

The reference (spec §6.4) uses HRNet-2x20 and concatenates all branches, upsampled to the
stride-4 branch (bilinear, align_corners=True), into two heads
``1x1 conv (no bias) -> BN -> ReLU -> 1x1 conv (no bias)`` with 2 (boundary) and 8 (direction)
outputs. Here the encoder is a small HRNet-like CNN that trains on 2 CPU cores (spec §6.6 allows
any stride-4 encoder): branches at strides 4, 8 and 16 of widths w, 2w, 4w, fused the same way,
so the heads see 7w channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _head(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 1, bias=False),
    )


class SegFixNet(nn.Module):
    """Image -> boundary and direction logits at stride 4.

    Args:
        width: channels w of the stride-4 branch (2w at stride 8, 4w at stride 16).
        head_channels: hidden width of each head (256 in the reference).
        num_directions: direction bins (8).
    """

    def __init__(self, width: int = 32, head_channels: int = 64, num_directions: int = 8) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_cbr(3, w // 2, 2), _cbr(w // 2, w, 2))
        self.branch4 = nn.Sequential(_cbr(w, w), _cbr(w, w))
        self.branch8 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w), _cbr(2 * w, 2 * w, dilation=2))
        self.branch16 = nn.Sequential(_cbr(2 * w, 4 * w, 2), _cbr(4 * w, 4 * w, dilation=2))
        self.boundary_head = _head(7 * w, head_channels, 2)
        self.direction_head = _head(7 * w, head_channels, num_directions)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict boundary and direction logits.

        Args:
            x: (N, 3, H, W) normalised float32 image batch (any H, W).

        Returns:
            ``(boundary, direction)``: (N, 2, h4, w4) and (N, 8, h4, w4) logits at stride 4
            (h4 = ceil(H / 4)).
        """
        b4 = self.branch4(self.stem(x))
        b8 = self.branch8(b4)
        b16 = self.branch16(b8)
        size = b4.shape[-2:]
        fused = torch.cat(
            [
                b4,
                F.interpolate(b8, size=size, mode="bilinear", align_corners=True),
                F.interpolate(b16, size=size, mode="bilinear", align_corners=True),
            ],
            dim=1,
        )
        return self.boundary_head(fused), self.direction_head(fused)
