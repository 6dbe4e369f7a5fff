"""A binary refiner applied class by class, as CascadePSP runs on semantic sets (and CRM after it).

Every class present in the coarse labels (the coarse map upsampled to full size, argmax) is one
binary mask; the refiner returns one refined probability per mask, and each pixel takes the class
of the most probable refined mask (:func:`combine`). On a binary set with ``object_only`` the
object mask alone is refined and thresholded by the method's own rule (the BIG protocol).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bench.core.interface import Coarse, check_image
from bench.models.coarse import upsampled_labels


def combine(probs: torch.Tensor, classes: torch.Tensor, coarse_labels: torch.Tensor,
            min_confidence: float = 0.0) -> torch.Tensor:
    """Per-class refined probabilities -> labels.

    Args:
        probs: (K, H, W) float32 refined probabilities of the K present classes.
        classes: (K,) int64 their class ids, ascending.
        coarse_labels: (H, W) int64 coarse labels (kept where the best probability is below
            ``min_confidence``; CascadePSP's ADE20K option, 0 = plain argmax).
        min_confidence: see above.

    Returns:
        (H, W) int64 labels; ties go to the lowest class id (``torch.max`` returns the first maximum).
    """
    best, index = probs.max(0)
    labels = classes[index]
    if min_confidence > 0:
        labels = torch.where(best < min_confidence, coarse_labels, labels)
    return labels


def refine_per_class(name: str, image: np.ndarray, coarse: Coarse | None,
                     refine_binary: Callable[[np.ndarray, torch.Tensor], torch.Tensor], *, object_only: bool,
                     object_rule: Callable[[torch.Tensor], torch.Tensor], min_confidence: float) -> torch.Tensor:
    """One image refined class by class.

    Args:
        name: the method's key, for the error message.
        image: (H, W, 3) uint8 RGB at full resolution.
        coarse: coarse probabilities (C, h, w).
        refine_binary: ``(image, masks (K, H, W) bool) -> (K, H, W) float32`` refined probabilities.
        object_only: on a two-class map, refine the object (class 1) mask alone.
        object_rule: (H, W) float32 object probability -> (H, W) int64 0/1 labels (the method's threshold).
        min_confidence: see :func:`combine`.

    Returns:
        (H, W) int64 labels on the coarse map's device.

    Raises:
        ValueError: no coarse map or a bad image.
    """
    if coarse is None:
        raise ValueError(f"{name} refines a coarse map; got coarse=None")
    check_image(image)
    with torch.no_grad():
        labels = upsampled_labels(coarse.probs, image.shape[:2])
        classes = torch.unique(labels)  # sorted ascending
        if classes.numel() == 1:
            return labels
        if object_only and coarse.probs.shape[0] == 2:
            return object_rule(refine_binary(image, (labels == 1)[None])[0])
        probs = refine_binary(image, labels[None] == classes[:, None, None])
        return combine(probs, classes, labels, min_confidence)
