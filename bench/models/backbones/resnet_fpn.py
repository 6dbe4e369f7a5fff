"""ResNet-50 FPN in GLNet's form, as MagNet released it for DeepGlobe (spec magnet.md §2.2, §3.1).

``resnet_backbone`` (torchvision-layout ResNet-50, no fc) -> top-down FPN without BN/ReLU:
``toplayer`` 1x1 2048->256, ``latlayer1/2/3`` 1x1 1024/512/256->256, bilinear upsample-add;
``smooth{1..4}_1`` 3x3 256->256 then ``smooth{1..4}_2`` 3x3 256->128 (1 = P5 ... 4 = P2);
P5..P2 upsampled to P2 and concatenated (512 channels); ``classify`` 3x3 512->C; bilinear
upsampling to the input. Every interpolation uses ``align_corners=False``. 344 state-dict
entries, 28,064,839 parameters for C=7.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.backbones.resnet import check_image_batch, load_imagenet_weights, resnet50


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ResnetFPN(nn.Module):
    """ResNet-50 FPN segmenter: (N, 3, H, W) normalised -> (N, C, H, W) logits.

    Args:
        num_classes: C.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.resnet_backbone = resnet50()
        self.toplayer = nn.Conv2d(2048, 256, 1)
        self.latlayer1 = nn.Conv2d(1024, 256, 1)
        self.latlayer2 = nn.Conv2d(512, 256, 1)
        self.latlayer3 = nn.Conv2d(256, 256, 1)
        for level in range(1, 5):
            setattr(self, f"smooth{level}_1", nn.Conv2d(256, 256, 3, padding=1))
        for level in range(1, 5):
            setattr(self, f"smooth{level}_2", nn.Conv2d(256, 128, 3, padding=1))
        self.classify = nn.Conv2d(128 * 4, num_classes, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at input size and features.

        Features: ``fine`` = ``c2`` (N, 256, H/4, W/4), the stride-4 ``layer1`` output;
        ``c3``/``c4``/``c5`` (strides 8/16/32); ``fpn`` (N, 512, H/4, W/4) the concatenated
        pyramid the classifier reads.
        """
        check_image_batch(x, type(self).__name__)
        c2, c3, c4, c5 = self.resnet_backbone(x)
        p5 = self.toplayer(c5)
        p4 = _resize(p5, c4.shape[-2:]) + self.latlayer1(c4)
        p3 = _resize(p4, c3.shape[-2:]) + self.latlayer2(c3)
        p2 = _resize(p3, c2.shape[-2:]) + self.latlayer3(c2)
        pyramid = [p5, p4, p3, p2]
        smoothed = [
            getattr(self, f"smooth{k}_2")(getattr(self, f"smooth{k}_1")(p)) for k, p in enumerate(pyramid, start=1)
        ]
        size = c2.shape[-2:]
        fpn = torch.cat([_resize(p, size) for p in smoothed[:3]] + [smoothed[3]], dim=1)
        logits = _resize(self.classify(fpn), x.shape[-2:])
        return logits, {"fine": c2, "c2": c2, "c3": c3, "c4": c4, "c5": c5, "fpn": fpn}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def resnet50_fpn(num_classes: int, imagenet_checkpoint: str | Path | None = None) -> ResnetFPN:
    """Build ResNet-50 FPN; optionally initialise the ResNet from a local torchvision ImageNet file.

    Args:
        num_classes: C.
        imagenet_checkpoint: torchvision ``resnet50`` state dict file (``fc.*`` ignored). The
            released constructor downloads it; here it is never downloaded.
    """
    model = ResnetFPN(num_classes)
    if imagenet_checkpoint is not None:
        load_imagenet_weights(model.resnet_backbone, imagenet_checkpoint)
    return model
