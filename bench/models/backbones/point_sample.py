"""A pure-torch ``point_sample`` for mmsegmentation without mmcv's compiled ops (dependencies.md Q3).

onedl-mmcv installed in one command has no ``mmcv._ext``, so ``from mmcv.ops import point_sample``
fails and mmseg leaves ``point_sample = None`` in the modules that need it (PointRend's
``point_head`` among them). :func:`install_point_sample_shim` puts :func:`point_sample` there
before a model is built. It does nothing where mmcv's own op is present.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
import torch.nn.functional as F

# mmseg modules that import ``point_sample`` from mmcv.ops inside try/except.
SHIM_TARGETS = (
    "mmseg.models.decode_heads.point_head",
    "mmseg.models.utils.point_sample",
    "mmseg.utils.mask_classification",
)


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs: Any) -> torch.Tensor:
    """Bilinearly sample ``input`` at normalised point coordinates (mmcv's semantics).

    Args:
        input: (N, C, H, W) feature map.
        points: (N, P, 2) or (N, Hg, Wg, 2) coordinates ``(x, y)`` in ``[0, 1]`` (0 = left/top
            edge of the map, 1 = right/bottom edge when ``align_corners`` is False).
        align_corners: ``grid_sample``'s convention.
        **kwargs: passed to ``F.grid_sample`` (``mode``, ``padding_mode``).

    Returns:
        (N, C, P) or (N, C, Hg, Wg) sampled features.
    """
    if points.dim() not in (3, 4) or points.shape[-1] != 2:
        raise ValueError(f"points must be (N, P, 2) or (N, Hg, Wg, 2); got {tuple(points.shape)}")
    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    out = F.grid_sample(input, 2.0 * grid - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


def install_point_sample_shim() -> list[str]:
    """Set ``point_sample`` in the mmseg modules where it is None (mmcv ops missing).

    Returns:
        The modules patched by this call (empty when mmcv's op is available or already patched).
    """
    patched = []
    for name in SHIM_TARGETS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        # by name: the module is imported by name, so its attributes are unknown to the type checker
        if hasattr(module, "point_sample") and getattr(module, "point_sample") is None:
            setattr(module, "point_sample", point_sample)
            patched.append(name)
    return patched
