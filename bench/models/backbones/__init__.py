"""Segmentation backbones by name: ``create_backbone(name, num_classes, **kw)``.

Names map lazily to builder functions so that mmsegmentation is imported only for ``mmseg:``
backbones. Every backbone follows the ``Segmenter`` protocol of ``bench.core.interface``.

- ``light``: the small CNN that trains on 2 CPU cores for the synthetic default.
- ``hrnet18_small_v2_ocr``: HRNetV2-W18-Small-v2 + OCR, stride-1 stem (MagNet Cityscapes).
- ``resnet50_fpn``: ResNet-50 FPN in GLNet's form (MagNet DeepGlobe).
- ``pspnet_resnet101``: PSPNet ResNet-101 in MagNet's form (MagNet Gleason).
- ``mmseg:<config>``: any mmsegmentation config (path or name under mmseg's bundled configs).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.core.registry import Registry, import_target
from bench.models.state_dict import load_checkpoint

BACKBONES = Registry("backbone", {
    "light": "bench.models.backbones.light:LightSegNet",
    "hrnet18_small_v2_ocr": "bench.models.backbones.hrnet_ocr:hrnet18_small_v2_ocr",
    "resnet50_fpn": "bench.models.backbones.resnet_fpn:resnet50_fpn",
    "pspnet_resnet101": "bench.models.backbones.pspnet:pspnet_resnet101",
})
MMSEG_ADAPTER = "bench.models.backbones.mmseg_adapter:MMSegBackbone"  # ``mmseg:<config>`` names


def list_backbones() -> list[str]:
    """Registered backbone names (``mmseg:<config>`` is accepted in addition)."""
    return sorted(BACKBONES)


def create_backbone(name: str, num_classes: int, **kw: Any) -> torch.nn.Module:
    """Build a backbone (random init unless a checkpoint is given).

    Args:
        name: a key of ``BACKBONES`` or ``mmseg:<config>``.
        num_classes: C.
        **kw: builder options; ``checkpoint=`` (path) loads weights strictly.

    Raises:
        KeyError: unknown name, listing the known ones.
    """
    checkpoint = kw.pop("checkpoint", None)
    if name.startswith("mmseg:"):  # mmsegmentation is imported here only
        return import_target(MMSEG_ADAPTER)(name.split(":", 1)[1], num_classes, checkpoint=checkpoint, **kw)
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {list_backbones()} or 'mmseg:<config>'")
    model = BACKBONES.resolve(name)(num_classes=num_classes, **kw)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


