"""What the mIoU and the per-class Boundary IoU share: the absent-class policies, the mean over the
kept classes, and Boundary IoU's named dilation ratios.

Its own module so that :mod:`bench.evaluation.metrics` (the accumulator, which pools Boundary IoU
beside the confusion matrix) and :mod:`bench.evaluation.boundary` (the band geometry) both import it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ABSENT_POLICIES = ("nan", "zero")
DILATION_RATIO = 0.02  # Boundary IoU: boundary-iou-api's COCO and LVIS default (fraction of the diagonal)
CITYSCAPES_DILATION_RATIO = 0.005  # boundary-iou-api's Cityscapes instance and panoptic default


def mean_iou(iou: np.ndarray, excluded: Sequence[int] = ()) -> float:
    """NaN-ignoring mean over the classes not in ``excluded``; NaN when nothing is left.

    Args:
        iou: (C,) per-class values in [0, 1] (NaN: left out).
        excluded: class ids left out of the mean.
    """
    keep = np.ones(len(iou), dtype=bool)
    keep[list(excluded)] = False
    vals = np.asarray(iou, dtype=np.float64)[keep]
    vals = vals[~np.isnan(vals)]
    return float(vals.mean()) if vals.size else float("nan")
