"""MagNet's refinement module (magnet.md §1.6), with the released checkpoints' key names.

Input: two (N, C, h, w) probability maps, concatenated in the **test-time order** of the released
code: channels ``0..C-1`` are the current-scale backbone prediction (``fine``), channels
``C..2C-1`` the crop of the previous cumulative map (``coarse``). Output: (N, C, h, w) logits at
the same size (no upsampling). 60 state-dict entries; 103,500 parameters for C=19, 88,092 for C=7.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

BN_MOMENTUM = 0.01  # every BN of the module (released: momentum 0.01); matters for training only


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4): 1x1 -> 3x3 -> 1x1, BN after each conv, residual add, ReLU.

    Args:
        inplanes: input channels.
        planes: bottleneck width; output channels are ``4 * planes``.
        downsample: projection shortcut (needed when ``inplanes != 4 * planes``), or None.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, inplanes, h, w) -> (N, 4 * planes, h, w)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y += shortcut  # in place: a fresh 128-channel map per block costs page faults on CPU
        return self.relu(y)


class RefinementModule(nn.Module):
    """Refiner: (fine, coarse) probabilities -> refined logits, each (N, C, h, w) float32.

    Args:
        num_classes: C.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"RefinementModule needs num_classes >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.bn0 = nn.BatchNorm2d(2 * num_classes, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(2 * num_classes, 64, 3, padding=1, bias=False)
        # nn.Module: FusedRefiner folds these BNs into the convs and puts Identity in their place
        self.bn1: nn.Module = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        projection = nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128, momentum=BN_MOMENTUM))
        self.residual = nn.Sequential(Bottleneck(64, 32, projection), Bottleneck(128, 32))
        self.seg_conv = nn.Conv2d(128, num_classes, 1, bias=False)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Refined logits.

        Args:
            fine: (N, C, h, w) softmax of the backbone on the current-scale patch (first half of
                the input channels, as the released test code feeds it).
            coarse: (N, C, h, w) crop of the previous cumulative map (second half).

        Returns:
            (N, C, h, w) logits.
        """
        if fine.shape != coarse.shape or fine.dim() != 4 or fine.shape[1] != self.num_classes:
            raise ValueError(f"expected two (N, {self.num_classes}, h, w) maps, got {tuple(fine.shape)} and "
                             f"{tuple(coarse.shape)}")
        x = self.bn0(torch.cat([fine, coarse], dim=1))
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.seg_conv(self.residual(x))


def load_refiner(path: str | Path, num_classes: int, device: torch.device | str = "cpu") -> RefinementModule:
    """A refiner in eval mode on ``device`` from a plain state dict (released or ours), loaded strictly.

    A leading ``module.``/``model.`` is stripped (bench.models.state_dict.clean_state_dict); any other key
    difference is an error listing the missing and unexpected keys.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: the keys or shapes do not match.
    """
    from bench.models.state_dict import load_checkpoint

    module = RefinementModule(num_classes)
    load_checkpoint(module, path)
    return module.to(device).eval()


def _fold(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    """One conv with the eval-mode BN after it folded in (torch's ``fuse_conv_bn_eval``).

    Raises:
        TypeError: the pair is not a Conv2d followed by a BatchNorm2d.
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"expected a Conv2d -> BatchNorm2d pair, got {type(conv).__name__} -> {type(bn).__name__}")
    return fuse_conv_bn_eval(conv, bn)


class FusedRefiner(nn.Module):
    """Inference-only copy of a refiner: every conv -> BN pair folded into one conv, channels_last.

    About 1.5x faster on CPU; outputs differ from the plain eval module by float rounding only
    (about 1e-8 on probabilities). ``bn0`` stays a BN because zero padding follows it. Same
    ``forward(fine, coarse)`` as :class:`RefinementModule`.

    Args:
        module: a trained :class:`RefinementModule` (not modified).
    """

    def __init__(self, module: RefinementModule) -> None:
        super().__init__()
        net = copy.deepcopy(module).eval()
        net.conv1, net.bn1 = _fold(net.conv1, net.bn1), nn.Identity()
        net.conv2, net.bn2 = _fold(net.conv2, net.bn2), nn.Identity()
        for block in net.residual:
            assert isinstance(block, Bottleneck)  # RefinementModule.residual holds Bottlenecks only
            for i in (1, 2, 3):
                conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                setattr(block, f"conv{i}", _fold(conv, bn))
                setattr(block, f"bn{i}", nn.Identity())
            if block.downsample is not None:  # the projection shortcut, Sequential(conv, BN)
                block.downsample = _fold(*block.downsample.children())
        # torch's stubs list no memory_format keyword for Module.to, which takes it (torch docs)
        self.net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.num_classes = module.num_classes

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) fine and coarse probabilities -> (N, C, h, w) logits (channels_last)."""
        cl = torch.channels_last
        return self.net(fine.contiguous(memory_format=cl), coarse.contiguous(memory_format=cl))
