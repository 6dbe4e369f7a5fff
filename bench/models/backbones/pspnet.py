"""PSPNet ResNet-101 in MagNet's form, as used for Gleason (spec magnet.md §2.2, §3.1).

``feats``: torchvision-layout ResNet-101 without dilation (stride 32) -> ``psp``: four pooled
branches (adaptive average pooling to 1/2/3/6, 1x1 conv 2048->2048 without bias), upsampled and
concatenated with the input, ``bottleneck`` 1x1 10240->1024 with bias, ReLU -> Dropout2d 0.3 ->
``up_1/2/3``: x2 bilinear, 3x3 conv, BN, PReLU (1024->256->64->64), each followed by Dropout2d
0.15 -> ``final`` 1x1 64->C -> bilinear to the input. ``classifier`` 1x1 2048->C on the ResNet
features is the auxiliary output. Every interpolation uses ``align_corners=False``. 658 state-dict
entries, 72,319,501 parameters for C=5.

``forward`` returns ``(main + 0.4 aux) / 1.4`` as the released model does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.backbones.resnet import check_image_batch, load_imagenet_weights, resnet101

AUX_WEIGHT = 0.4
AUX_NORM = 1.4  # 1 + AUX_WEIGHT, written as the released code does


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PSPModule(nn.Module):
    """Pyramid pooling: (N, F, h, w) -> (N, out, h, w)."""

    def __init__(self, features: int, out_features: int = 1024, sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), nn.Conv2d(features, features, 1, bias=False)) for s in sizes
        )
        self.bottleneck = nn.Conv2d(features * (len(sizes) + 1), out_features, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        priors = [_resize(stage(x), size) for stage in self.stages] + [x]
        return self.relu(self.bottleneck(torch.cat(priors, 1)))


class PSPUpsample(nn.Module):
    """x2 bilinear upsampling, then 3x3 conv (with bias), BN, PReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.PReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_resize(x, (2 * x.shape[-2], 2 * x.shape[-1])))


class PSPNet(nn.Module):
    """PSPNet ResNet-101 segmenter: (N, 3, H, W) normalised -> (N, C, H, W) logits.

    Args:
        num_classes: C.
        sizes: pyramid pooling output sizes.
    """

    def __init__(self, num_classes: int, sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feats = resnet101()
        self.psp = PSPModule(2048, 1024, sizes)
        self.drop_1 = nn.Dropout2d(p=0.3)
        self.up_1 = PSPUpsample(1024, 256)
        self.up_2 = PSPUpsample(256, 64)
        self.up_3 = PSPUpsample(64, 64)
        self.drop_2 = nn.Dropout2d(p=0.15)
        self.final = nn.Conv2d(64, num_classes, 1)
        self.classifier = nn.Conv2d(2048, num_classes, 1)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        check_image_batch(x, type(self).__name__)
        c2, c3, c4, c5 = self.feats(x)
        psp = self.psp(c5)
        p = self.drop_1(psp)
        for up in (self.up_1, self.up_2, self.up_3):
            p = self.drop_2(up(p))
        size = x.shape[-2:]
        main = _resize(self.final(p), size)
        aux = _resize(self.classifier(c5), size)
        return main, aux, {"fine": c5, "c2": c2, "c3": c3, "c4": c4, "c5": c5, "psp": psp, "decoder": p}

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(main, aux) logits, each (N, C, H, W) at the input resolution."""
        main, aux, _ = self._heads(x)
        return main, aux

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits as :meth:`forward` plus features.

        Features: ``fine`` = ``c5`` (N, 2048, H/32, W/32), the ResNet-101 features the released
        model returns with ``return_feat``; ``c2..c4``; ``psp`` (N, 1024, H/32, W/32); ``decoder``
        (N, 64, H/4, W/4); ``main_logits``/``aux_logits`` (N, C, H, W).
        """
        main, aux, named = self._heads(x)
        named["main_logits"] = main
        named["aux_logits"] = aux
        return (main + AUX_WEIGHT * aux) / AUX_NORM, named

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised -> (N, C, H, W) logits ``(main + 0.4 aux) / 1.4``."""
        main, aux, _ = self._heads(x)
        return (main + AUX_WEIGHT * aux) / AUX_NORM


def pspnet_resnet101(num_classes: int, imagenet_checkpoint: str | Path | None = None) -> PSPNet:
    """Build PSPNet ResNet-101; optionally initialise ``feats`` from a local torchvision ImageNet file.

    Args:
        num_classes: C.
        imagenet_checkpoint: torchvision ``resnet101`` state dict file (``fc.*`` ignored); never
            downloaded (the released constructor downloads it).
    """
    model = PSPNet(num_classes)
    if imagenet_checkpoint is not None:
        load_imagenet_weights(model.feats, imagenet_checkpoint)
    return model
