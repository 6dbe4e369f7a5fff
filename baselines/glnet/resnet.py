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

from torch import nn

from bench.models.backbones.resnet import BasicBlock, Bottleneck, ResNet

DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}
RELEASE_BN_MOMENTUM = 0.1  # PyTorch's default, which the release never changes


class GLResNet(ResNet):
    """ResNet body: (N, 3, H, W) -> (c2, c3, c4, c5); ``bench.models.backbones.resnet.ResNet`` with GLNet's
    depths and width and the release's BN momentum.

    Shapes: c_k has ``channels[k-2]`` channels and spatial size ceil(H / 2**k) (the convolutions'
    rounding), e.g. 508 -> 127, 64, 32, 16.

    Args:
        depth: 18 or 50.
        base_width: width of the stem and of ``layer1`` before the block expansion (64 standard).
    """

    def __init__(self, depth: int = 50, base_width: int = 64) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"glnet resnet depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        if base_width < 1:
            raise ValueError(f"glnet resnet base_width must be >= 1, got {base_width!r}")
        block, layers = DEPTHS[depth]
        super().__init__(layers, block, base_width)
        self.channels = tuple(base_width * 2**i * block.expansion for i in range(4))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = RELEASE_BN_MOMENTUM
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
