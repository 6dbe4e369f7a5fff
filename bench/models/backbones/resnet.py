"""ResNet bodies in torchvision's key layout (``conv1, bn1, layer1..4``), as MagNet's backbones use them.

Layout facts (spec magnet.md §3.1, "ResNet details"):

- Bottleneck v1.5: the stride sits on the 3x3 conv; projection shortcut ``downsample = (1x1 conv, BN)``.
- BatchNorm momentum 0.01 inside the blocks (``bn1..bn3``); the stem BN and the shortcut BNs keep
  PyTorch's default 0.1. This only matters for training.
- No ``fc``: the forward returns ``(c2, c3, c4, c5)`` at strides 4, 8, 16, 32.

ImageNet weights come from a *local* file in torchvision's layout (never downloaded):
:func:`load_imagenet_weights` loads it strictly on the body and ignores ``fc.*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from typing import ClassVar

import torch
from torch import nn

BLOCK_BN_MOMENTUM = 0.01


def check_image_batch(x: torch.Tensor, owner: str) -> None:
    """Raise a clear error unless ``x`` is a float (N, 3, H, W) batch.

    Args:
        x: the tensor given to a backbone's forward.
        owner: the backbone's name, for the message.

    Raises:
        ValueError: wrong rank, channel count or dtype.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{owner} expects a normalised float batch of shape (N, 3, H, W); got {got}")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (HRNet branches use it). Channels: inplanes -> planes."""

    # conv -> BN pairs its forward applies in this order (bench.models.backbones.fold may fold them)
    fold_pairs: ClassVar[tuple[tuple[str, str], ...]] = (("conv1", "bn1"), ("conv2", "bn2"))

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BLOCK_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BLOCK_BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += shortcut  # in place: same values as out + shortcut, one full-size map fewer
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck. Channels: inplanes -> planes * 4."""

    # conv -> BN pairs its forward applies in this order (bench.models.backbones.fold may fold them)
    fold_pairs: ClassVar[tuple[tuple[str, str], ...]] = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BLOCK_BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BLOCK_BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BLOCK_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += shortcut  # in place: same values as out + shortcut, one full-size map fewer
        return self.relu(out)


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
    shortcut_bn_momentum: float = 0.1,
) -> nn.Sequential:
    """A stage of ``blocks`` residual blocks; the first one projects when shape changes.

    Args:
        block: block class.
        inplanes: input channels.
        planes: block width (output channels are ``planes * block.expansion``).
        blocks: number of blocks.
        stride: stride of the first block.
        shortcut_bn_momentum: momentum of the projection BN (0.1 in the ResNets, 0.01 in HRNet).
    """
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out, momentum=shortcut_bn_momentum)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet body without ``fc``: (N, 3, H, W) -> (c2, c3, c4, c5).

    Shapes for an H x W input: c2 (N, 256, H/4, W/4), c3 (N, 512, H/8, W/8), c4 (N, 1024, H/16,
    W/16), c5 (N, 2048, H/32, W/32) (sizes rounded up as the convolutions do).

    Args:
        layers: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50, (3, 4, 23, 3) for ResNet-101.
        block: the residual block (GLNet's ResNet-18 variant passes ``BasicBlock``).
        base_width: width of the stem and of ``layer1`` before the block expansion; stage k has
            ``base_width * 2**(k-1)`` (64: the standard ResNet, the channels above).
    """

    # conv -> BN pairs its forward applies in this order (bench.models.backbones.fold may fold them)
    fold_pairs: ClassVar[tuple[tuple[str, str], ...]] = (("conv1", "bn1"),)

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, layers: Sequence[int], block: type[BasicBlock] | type[Bottleneck] = Bottleneck,
                 base_width: int = 64) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet needs 4 stage depths, got {tuple(layers)}")
        w = base_width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = w
        for i, blocks in enumerate(layers):
            planes = w * 2**i
            setattr(self, f"layer{i + 1}", make_res_layer(block, inplanes, planes, blocks, stride=1 if i == 0 else 2))
            inplanes = planes * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5


def resnet50() -> ResNet:
    """ResNet-50 body (23,508,032 parameters, 318 state-dict entries)."""
    return ResNet((3, 4, 6, 3))


def resnet101() -> ResNet:
    """ResNet-101 body (42,500,160 parameters, 624 state-dict entries)."""
    return ResNet((3, 4, 23, 3))


IGNORED_IMAGENET_PREFIXES = ("fc.",)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a plain state dict (or one under ``"state_dict"``) with ``weights_only=True`` on CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        TypeError: the file does not hold a name -> tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    from bench.models.state_dict import load_weights

    state = load_weights(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f"{path} does not hold a state dict (name -> tensor)")
    return dict(state)


def load_partial_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    ignore_prefixes: Sequence[str] = (),
    source: str = "state dict",
) -> None:
    """Load ``state`` into ``module`` strictly, except for tolerated differences.

    Tolerated: keys of ``state`` under ``ignore_prefixes`` (e.g. ImageNet ``fc.*``), and missing
    ``num_batches_tracked`` buffers (torchvision's old files predate them; they keep their
    current value). Everything else must match in names and shapes.

    Raises:
        RuntimeError: listing the missing and unexpected keys and shape mismatches.
    """
    own = module.state_dict()
    given = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    missing = sorted(k for k in set(own) - set(given) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(given) - set(own))
    shape = sorted(k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape))
    if missing or unexpected or shape:
        parts = [f"missing keys ({len(missing)}): {missing}", f"unexpected keys ({len(unexpected)}): {unexpected}"]
        if shape:
            pairs = (f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}" for k in shape)
            parts.append("shape mismatch: " + ", ".join(pairs))
        raise RuntimeError(f"cannot load {source} into {type(module).__name__}: " + "; ".join(parts))
    merged = {**own, **given}
    module.load_state_dict(merged, strict=True)


def load_imagenet_weights(body: ResNet, path: str | Path) -> None:
    """Initialise a ResNet body from a local torchvision-layout ImageNet file (``fc.*`` ignored).

    Args:
        body: the ResNet body to fill in place.
        path: ``.pth`` file holding torchvision's ``resnet50``/``resnet101`` state dict.

    Raises:
        FileNotFoundError, TypeError: see :func:`read_state_dict`.
        RuntimeError: the body's keys or shapes differ (listed).
    """
    load_partial_strict(body, read_state_dict(path), IGNORED_IMAGENET_PREFIXES, source=f"ImageNet weights {path}")
