"""The dilated ResNet extractor of CascadePSP's refinement module (our own implementation).

Layout follows the released model (``segmentation_refinement/models/psp/extractors.py``) so
that its state dict loads strictly: module names ``conv1, bn1, layer1..layer4`` with
``downsample.0/1`` shortcuts, a 6-channel stem (RGB + the three mask channels the refinement
module stacks), ``layer3``/``layer4`` at stride 1 with dilation 2 / 4 (output stride 8).

Two details of the released layout are reproduced on purpose:

- the first block of ``layer3`` and ``layer4`` is *not* dilated (only the following blocks are);
- ``forward`` returns the stem convolution's output *before* its batch norm (stride 2), next to
  ``layer1``'s output (stride 4) and the deepest features (stride 8); the decoder reads those two.

``width`` scales every channel count (64 in the release); ``depth`` picks ResNet-18/34
(basic blocks) or ResNet-50 (bottlenecks, the release).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# blocks per stage and block type of each supported depth
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ``expansion`` 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 x4 with a projection shortcut; ``expansion`` 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class DilatedResNet(nn.Module):
    """ResNet with output stride 8 and a 6-channel stem.

    Args:
        depth: 18, 34 or 50.
        width: channels of the stem and of ``layer1``'s inner convolutions (64 in the release).
        in_channels: input channels (6: RGB plus three mask channels).

    Attributes:
        out_channels: channels of the deepest features (``8 * width * expansion``: 2048 for R-50).
        layer1_channels: channels of ``layer1``'s output (``width * expansion``: 256 for R-50).
        stem_channels: channels of the stem convolution (``width``).
    """

    def __init__(self, depth: int = 50, width: int = 64, in_channels: int = 6) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"cascadepsp backbone depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        kind, blocks = DEPTHS[depth]
        block: type[BasicBlock] | type[Bottleneck] = Bottleneck if kind == "bottleneck" else BasicBlock
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = self._stage(block, width, blocks[0])
        self.layer2 = self._stage(block, width * 2, blocks[1], stride=2)
        self.layer3 = self._stage(block, width * 4, blocks[2], dilation=2)
        self.layer4 = self._stage(block, width * 8, blocks[3], dilation=4)
        self.out_channels = width * 8 * block.expansion
        self.layer1_channels = width * block.expansion
        self.stem_channels = width
        self._init_weights()

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, n: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # the release dilates every block but the first of a stage (its _make_layer passes no
        # dilation to the first block); kept, since the released weights were trained that way
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=dilation) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # He-normal with fan-out, as the release initialises (it then loads ImageNet weights,
        # which this harness does not download)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features of a (N, 6, H, W) input (H, W multiples of 8).

        Returns:
            ``(deep, stem, low)``: (N, out_channels, H/8, W/8) deepest features, (N, width, H/2,
            W/2) stem convolution output (before its BN), (N, layer1_channels, H/4, W/4).
        """
        stem = self.conv1(x)
        y = self.maxpool(self.relu(self.bn1(stem)))
        low = self.layer1(y)
        deep = self.layer4(self.layer3(self.layer2(low)))
        return deep, stem, low
