"""GLNet's ResNet bodies (``models/resnet.py`` of VITA-Group/GLNet, in our own code).

Key layout as the release (and torchvision): ``conv1, bn1, layer1..layer4`` with blocks
``conv1/bn1/conv2/bn2[/conv3/bn3][/downsample.0/.1]``; no ``fc`` (the release's ResNet has none).
The forward returns ``(c2, c3, c4, c5)`` at strides 4, 8, 16, 32. The stride sits on the 3x3
convolution (as the release's Bottleneck). Every BatchNorm keeps PyTorch's default momentum 0.1,
as the release (the harness's MagNet bodies use 0.01 inside the blocks; that only matters for
training, so we reset it here).

Depths: 50 (Bottleneck, (3, 4, 6, 3), the release) and 18 (BasicBlock, (2, 2, 2, 2), the light
synthetic variant). ``base_width`` scales every stage (64 = the standard ResNet; the synthetic
default uses 8).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.backbones.resnet import BasicBlock, Bottleneck, make_res_layer

DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}
RELEASE_BN_MOMENTUM = 0.1  # PyTorch's default, which the release never changes


class GLResNet(nn.Module):
    """ResNet body: (N, 3, H, W) -> (c2, c3, c4, c5).

    Shapes: c_k has ``channels[k-2]`` channels and spatial size ceil(H / 2**k) (the convolutions'
    rounding), e.g. 508 -> 127, 64, 32, 16.

    Args:
        depth: 18 or 50.
        base_width: width of the stem and of ``layer1`` before the block expansion (64 standard).
    """

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, depth: int = 50, base_width: int = 64) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"glnet resnet depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        if base_width < 1:
            raise ValueError(f"glnet resnet base_width must be >= 1, got {base_width!r}")
        block, layers = DEPTHS[depth]
        w = base_width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (w, 2 * w, 4 * w, 8 * w)
        inplanes = w
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stage = make_res_layer(block, inplanes, planes, blocks, stride=1 if i == 0 else 2)
            setattr(self, f"layer{i + 1}", stage)
            inplanes = planes * block.expansion
        self.channels = tuple(p * block.expansion for p in widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.momentum = RELEASE_BN_MOMENTUM
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5
