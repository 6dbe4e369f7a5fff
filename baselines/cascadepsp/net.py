"""CascadePSP's refinement module (Cheng et al., CVPR 2020), our own implementation.

One network refines a binary mask in three cascaded iterations that share all weights. Each
iteration runs the extractor (``_cascadepsp_resnet``) and the pyramid pooling module on the image
stacked with three mask channels:

1. (image, seg, seg, seg) -> stride-8 output ``out_28``;
2. (image, seg, tanh(up8(out_28)) x2) -> stride-8 ``out_28_2`` and, through ``up_1``, the stride-4
   output ``out_56``;
3. (image, seg, tanh(up8(out_28_2)), tanh(up4(out_56))) -> ``out_28_3``, ``out_56_2`` and, through
   ``up_2`` (stem features) and ``up_3`` (the image itself), the stride-1 output ``out_224``.

Outputs are logits upsampled to the input size (bilinear, align_corners=False) under the release's
keys (``out_*``; ``pred_*`` = sigmoid). The local step passes the intermediate masks in directly
(``inter_s8`` skips iteration 1, ``inter_s4`` iteration 2), as the release's inference does.

Module and parameter names equal the released ``RefinementModule``
(``feats, psp, up_1, up_2, up_3, final_28, final_56, final_11, final_21``), so its ``model`` file
loads strictly. Channel counts are derived from the extractor and the config; the release is
``depth=50, width=64, psp_channels=1024, up_channels=(512, 256, 32), head_channels=32``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.cascadepsp.resnet import DilatedResNet

OUTPUT_KEYS = ("out_28", "out_28_2", "out_56", "out_28_3", "out_56_2", "out_224")


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """PSP module: average pools to 1, 2, 3, 6 cells, 1x1 conv each (no bias), bilinear back up,
    concatenated with the input, 1x1 conv (with bias) and ReLU."""

    def __init__(self, features: int, out_features: int, sizes: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), nn.Conv2d(features, features, 1, bias=False)) for s in sizes
        )
        self.bottleneck = nn.Conv2d(features * (len(sizes) + 1), out_features, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        priors = [F.interpolate(stage(x), size=(h, w), mode="bilinear", align_corners=False) for stage in self.stages]
        return self.relu(self.bottleneck(torch.cat(priors + [x], 1)))


def _preact(cin: int, cout: int) -> nn.Sequential:
    """BN-ReLU-conv3x3 twice (pre-activation), as the release's ``PSPUpsample`` branches."""
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
    )


class Upsample(nn.Module):
    """x2 bilinear upsampling of ``x``, fused with the skip features ``skip``.

    ``p = conv(cat(up2(x), skip)) + shortcut(up2(x)); return p + conv2(p)``.
    """

    def __init__(self, x_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = _preact(x_channels + skip_channels, out_channels)
        self.conv2 = _preact(out_channels, out_channels)
        self.shortcut = nn.Conv2d(x_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _up(x, 2)
        p = self.conv(torch.cat([x, skip], 1)) + self.shortcut(x)
        return p + self.conv2(p)


def _head(cin: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))


class RefinementModule(nn.Module):
    """CascadePSP's refinement network; see the module docstring.

    Args:
        depth: extractor ResNet depth (18, 34 or 50; the release: 50).
        width: extractor base width (64).
        psp_channels: channels after pyramid pooling (1024).
        up_channels: output channels of ``up_1``, ``up_2``, ``up_3`` (512, 256, 32).
        head_channels: hidden width of the stride-8/4 heads and of ``final_11`` (32).
    """

    def __init__(self, depth: int = 50, width: int = 64, psp_channels: int = 1024,
                 up_channels: tuple[int, int, int] = (512, 256, 32), head_channels: int = 32) -> None:
        super().__init__()
        if len(up_channels) != 3:
            raise ValueError(f"cascadepsp up_channels must have 3 entries, got {up_channels!r}")
        u1, u2, u3 = (int(c) for c in up_channels)
        self.feats = DilatedResNet(depth, width)
        self.psp = PyramidPooling(self.feats.out_channels, psp_channels)
        self.up_1 = Upsample(psp_channels, self.feats.layer1_channels, u1)
        self.up_2 = Upsample(u1, self.feats.stem_channels, u2)
        self.up_3 = Upsample(u2, 3, u3)
        self.final_28 = _head(psp_channels, head_channels)
        self.final_56 = _head(u1, head_channels)
        self.final_11 = nn.Conv2d(u3 + 3, head_channels, 1)
        self.final_21 = nn.Conv2d(head_channels, 1, 1)

    def _deep(self, x: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor,
              m3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        deep, stem, low = self.feats(torch.cat((x, m1, m2, m3), 1))
        return self.psp(deep), stem, low

    def forward(self, x: torch.Tensor, seg: torch.Tensor, inter_s8: torch.Tensor | None = None,
                inter_s4: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Refine ``seg``.

        Args:
            x: (N, 3, H, W) float32 ImageNet-normalised image, H and W multiples of 8.
            seg: (N, 1, H, W) float32 mask in [-1, 1] (``2 * mask - 1``).
            inter_s8: (N, 1, H, W) stride-8 intermediate mask in [-1, 1] (skips iteration 1).
            inter_s4: (N, 1, H, W) stride-4 intermediate mask in [-1, 1] (with ``inter_s8``,
                skips iteration 2).

        Returns:
            dict of (N, 1, H, W) float32 maps: ``out_*`` logits and ``pred_*`` = sigmoid, for
            the outputs of the iterations that ran (``out_224``, ``out_28_3``, ``out_56_2``
            always; ``out_28`` with iteration 1; ``out_28_2``, ``out_56`` with iteration 2).
        """
        out: dict[str, torch.Tensor] = {}
        if inter_s8 is None:
            p, _, _ = self._deep(x, seg, seg, seg)
            out["out_28"] = _up(self.final_28(p), 8)
            inter_s8 = torch.tanh(out["out_28"])
        if inter_s4 is None:
            p, _, low = self._deep(x, seg, inter_s8, inter_s8)
            out["out_28_2"] = _up(self.final_28(p), 8)
            out["out_56"] = _up(self.final_56(self.up_1(p, low)), 4)
            inter_s8, inter_s4 = torch.tanh(out["out_28_2"]), torch.tanh(out["out_56"])
        p, stem, low = self._deep(x, seg, inter_s8, inter_s4)
        out["out_28_3"] = _up(self.final_28(p), 8)
        p = self.up_1(p, low)
        out["out_56_2"] = _up(self.final_56(p), 4)
        p = self.up_3(self.up_2(p, stem), x)
        out["out_224"] = self.final_21(F.relu(self.final_11(torch.cat([p, x], 1))))
        for key in [k for k in OUTPUT_KEYS if k in out]:
            out["pred" + key[3:]] = torch.sigmoid(out[key])
        return out
