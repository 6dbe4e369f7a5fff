"""Coarse logits and fine-grained features for PointRend from the shared backbone.

PointRend needs the backbone's *logits* (its uncertainty is top2 - top1 of logits, spec §5.3)
and a fine-grained feature map, which the harness's ``Coarse`` (probabilities only) does not
carry. We therefore run the backbone ourselves with the recipe of ``bench.models.coarse.compute_coarse`` (the
Downsample stage): the full image resized with ``cv2.resize(..., INTER_LINEAR)`` (through
``coarse_scale`` first where the dataset has one) to the backbone input size, normalised with
``bench.core.interface.normalize``, then ``forward_features``. softmax of these logits is the coarse
map ``compute_coarse`` gives (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.models.coarse import resize_image
from bench.core.interface import check_image, normalize


def backbone_input(
    image: np.ndarray,
    input_size: tuple[int, int],
    device: torch.device | str,
    first_scale: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The Downsample stage's backbone input.

    Args:
        image: (H, W, 3) uint8 RGB.
        input_size: (w, h) of the backbone input.
        device: where the batch lives.
        first_scale: (w, h) of an intermediate resize (DeepGlobe's 2448 -> 612 -> 508), or None.

    Returns:
        (1, 3, h, w) float32 normalised batch.

    Raises:
        ValueError: ``image`` is not (H, W, 3) uint8.
    """
    check_image(image)
    small = resize_image(image, first_scale) if first_scale else image
    small = resize_image(small, (int(input_size[0]), int(input_size[1])))
    return normalize(np.ascontiguousarray(small), device)


def coarse_and_fine(
    backbone: Any,
    image: np.ndarray,
    input_size: tuple[int, int],
    device: torch.device | str,
    feature_key: str = "fine",
    first_scale: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen backbone once (no grad) for PointRend's two inputs.

    Args:
        backbone: a ``Segmenter`` (``forward_features``), eval mode, on ``device``.
        image: (H, W, 3) uint8 RGB.
        input_size: (w, h) backbone input size.
        device: torch device.
        feature_key: which entry of the features dict is the fine-grained map.
        first_scale: intermediate resize (w, h) or None (``ctx.options["coarse_scale"]``).

    Returns:
        ``(logits, fine)``: (1, C, h, w) float32 coarse logits at the input size and
        (1, F, h', w') float32 fine-grained features.

    Raises:
        KeyError: the backbone has no feature called ``feature_key``.
    """
    x = backbone_input(image, input_size, device, first_scale)
    with torch.no_grad():
        logits, feats = backbone.forward_features(x)
    if feature_key not in feats:
        raise KeyError(f"backbone features have no {feature_key!r}; available: {sorted(feats)}")
    return logits.float(), feats[feature_key].float()
