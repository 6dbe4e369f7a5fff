"""The refinement track's scoring (``track: refinement``): CascadePSP's binary protocol over a sweep's records.

Per image (:func:`score_track_image`, stored under ``"track"`` in the image record next to the
semantic fields): the object (class 1) of the label and of the refined label map as binary masks;

- ``inter``, ``union``: |G ∩ P| and |G ∪ P| in pixels, the parts of the **pooled** object IoU
  (summed over the images, divided once: :func:`pool`), as CascadePSP's ``eval_post.py``;
- ``biou_inter``, ``biou_union``: the binary Boundary IoU's band counts
  (:func:`bench.evaluation.boundary.binary_counts`) at ``biou_ratio``, pooled the same way;
- ``pred_pixels``: the object pixels of the refined map (0: an empty mask);
- ``coarse_pixels``: the object pixels of the given coarse map of a file source (absent for the
  backbone source, whose coarse map is the ``downsample`` unit's output).

The per-image mBA is the record's own ``mba`` (:func:`bench.pipeline.unit.score_image`:
:func:`bench.evaluation.metrics.boundary_accuracy` with ``ignore_index=None`` on the 0/1 maps, which
is CascadePSP's binary boundary accuracy exactly), averaged over the images that have one
(a ground truth without a boundary has none; it is counted).

The label maps are the method's full-resolution output, so the reference scorer's resize of a
refined file to the ground truth's size never applies here; the binarisation rule (``> 128`` or
``>= 128``) is the dataset's (``data.threshold`` of ``big``), applied when the masks are read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.evaluation.boundary import binary_counts, ratio_or_nan

OBJECT = 1  # the object's class id in a binary (refinement-track) dataset


def score_track_image(label: np.ndarray, pred: np.ndarray, ratio: float,
                      coarse: np.ndarray | None = None) -> dict[str, Any]:
    """The track's counts of one image.

    Args:
        label: (H, W) uint8 ground truth, 0 background / 1 object.
        pred: (H, W) integer refined label map (1 = object).
        ratio: Boundary IoU dilation ratio (fraction of the image diagonal).
        coarse: (H, W) uint8 0/1 coarse map of a file source, or None (backbone source).

    Returns:
        ``{"track": {inter, union, biou_inter, biou_union, pred_pixels, biou_ratio[, coarse_pixels]}}``,
        pixel counts as ints.
    """
    gt = np.asarray(label) == OBJECT
    mask = np.asarray(pred) == OBJECT
    if gt.shape != mask.shape:
        raise ValueError(f"label {gt.shape} and prediction {mask.shape} differ in shape")
    b_inter, b_union = binary_counts(gt, mask, ratio)
    out: dict[str, Any] = {"inter": int(np.count_nonzero(gt & mask)), "union": int(np.count_nonzero(gt | mask)),
                           "biou_inter": b_inter, "biou_union": b_union,
                           "pred_pixels": int(np.count_nonzero(mask)), "biou_ratio": float(ratio)}
    if coarse is not None:
        out["coarse_pixels"] = int(np.count_nonzero(np.asarray(coarse) == OBJECT))
    return {"track": out}


@dataclass(frozen=True)
class TrackScore:
    """One unit (method, source) over its images; fractions in [0, 1], unrounded.

    Attributes:
        iou: pooled object IoU (NaN when every union is empty).
        mba: mean of the per-image mBA over the images that have one.
        biou: pooled Boundary IoU (NaN when every band is empty).
        n_images: images scored.
        no_boundary: ids of images without mBA (a ground truth without a boundary).
        empty: ids of images whose refined mask is empty.
        empty_coarse: ids of images whose given coarse map (file source) is empty.
        ratio: the Boundary IoU dilation ratio of the counts (None when the images disagree).
    """

    iou: float
    mba: float
    biou: float
    n_images: int
    no_boundary: tuple[str, ...]
    empty: tuple[str, ...]
    empty_coarse: tuple[str, ...]
    ratio: float | None


def pool(images: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> TrackScore:
    """Pool a unit's image records (each with ``track`` and ``mba``), by image id.

    Raises:
        ValueError: a record without ``track`` counts (written by a semantic run).
    """
    recs = list(images.values()) if isinstance(images, Mapping) else list(images)
    if any("track" not in r for r in recs):
        raise ValueError("an image record without track counts: the unit was not run with track: refinement")
    parts = [(str(r.get("image_id")), r["track"], r.get("mba")) for r in recs]
    inter = sum(t["inter"] for _, t, _ in parts)
    union = sum(t["union"] for _, t, _ in parts)
    b_inter = sum(t["biou_inter"] for _, t, _ in parts)
    b_union = sum(t["biou_union"] for _, t, _ in parts)
    mbas = [float(m) for _, _, m in parts if m is not None and not math.isnan(float(m))]
    ratios = {float(t["biou_ratio"]) for _, t, _ in parts}
    return TrackScore(ratio_or_nan(inter, union), float(np.mean(mbas)) if mbas else float("nan"),
                      ratio_or_nan(b_inter, b_union), len(parts),
                      tuple(i for i, _, m in parts if m is None or math.isnan(float(m))),
                      tuple(i for i, t, _ in parts if t["pred_pixels"] == 0),
                      tuple(i for i, t, _ in parts if t.get("coarse_pixels") == 0),
                      ratios.pop() if len(ratios) == 1 else None)
