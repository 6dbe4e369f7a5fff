"""A small encoder-decoder CNN that trains on 2 CPU cores: the synthetic default backbone.

About 0.2 M parameters at width 32. Encoder to stride 16 with dilated context, FPN-like decoder
back to stride 2, logits bilinearly upsampled to the input size (align_corners=False).
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


class LightSegNet(nn.Module):
    """Segmenter: (N, 3, h, w) normalised float32 -> (N, C, h, w) logits.

    Args:
        num_classes: C.
        width: channels at stride 4; stride 2 has width/2, strides 8 and 16 have 2*width.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        w = width
        self.stem = nn.Sequential(_cbr(3, w // 2, 2), _cbr(w // 2, w // 2))
        self.down4 = nn.Sequential(_cbr(w // 2, w, 2), _cbr(w, w))
        self.down8 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w))
        self.down16 = nn.Sequential(_cbr(2 * w, 2 * w, 2), _cbr(2 * w, 2 * w, dilation=2), _cbr(2 * w, 2 * w, dilation=4))
        self.lat8 = nn.Conv2d(2 * w, w, 1)
        self.lat4 = nn.Conv2d(w, w, 1)
        self.lat2 = nn.Conv2d(w // 2, w, 1)
        self.top = nn.Conv2d(2 * w, w, 1)
        self.fuse = _cbr(w, w)
        self.classifier = nn.Conv2d(w, num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at input size and features: ``fine`` (stride 2, width ch), ``c4``, ``c8``, ``c16``."""
        c2 = self.stem(x)
        c4 = self.down4(c2)
        c8 = self.down8(c4)
        c16 = self.down16(c8)
        p = self.top(c16)
        p = self.lat8(c8) + F.interpolate(p, size=c8.shape[-2:], mode="bilinear", align_corners=False)
        p = self.lat4(c4) + F.interpolate(p, size=c4.shape[-2:], mode="bilinear", align_corners=False)
        p = self.lat2(c2) + F.interpolate(p, size=c2.shape[-2:], mode="bilinear", align_corners=False)
        fine = self.fuse(p)
        logits = F.interpolate(self.classifier(fine), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, {"fine": fine, "c4": c4, "c8": c8, "c16": c16}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
