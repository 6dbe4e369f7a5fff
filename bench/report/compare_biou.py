"""Boundary IoU of two units over their shared images, with the paired bootstrap of ``bench compare``.

The records' per-class band counts (``biou_inter``, ``biou_union``, at ``biou_ratio``) are pooled as
the tables pool them (``bench.report.table_model.pooled_biou``); each resample re-sums them with the
image draws of :func:`bench.evaluation.significance.resample_counts` (the same seed gives the same
draws as the mIoU and mBA intervals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.evaluation.boundary import biou_per_class
from bench.evaluation.significance import DiffInterval, resample_counts


def _band_counts(images: Mapping[str, Mapping[str, Any]],
                 ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(N, C) Boundary IoU intersections and unions of ``ids`` and their one dilation ratio; None when an
    image lacks counts (records written before them) or the ratios differ."""
    recs = [images[i] for i in ids]
    if any(r.get("biou_inter") is None or r.get("biou_union") is None for r in recs):
        return None
    ratios = {float(r.get("biou_ratio", float("nan"))) for r in recs}
    if len(ratios) != 1:
        return None
    return (np.asarray([r["biou_inter"] for r in recs], dtype=np.float64),
            np.asarray([r["biou_union"] for r in recs], dtype=np.float64), ratios.pop())


def _mean_biou(inter: np.ndarray, union: np.ndarray, absent: str, excluded: Sequence[int]) -> np.ndarray:
    """Mean Boundary IoU of each row of pooled (B, C) counts (the tables' rules); NaN where no class is left."""
    per = biou_per_class(inter, union, absent)
    keep = np.ones(per.shape[-1], dtype=bool)
    keep[list(excluded)] = False
    per = per[..., keep]
    n = (~np.isnan(per)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(per, -1) / np.maximum(n, 1), np.nan)


def biou_difference(images_a: Mapping[str, Mapping[str, Any]], images_b: Mapping[str, Mapping[str, Any]],
                    ids: Sequence[str], absent: str, excluded: Sequence[int], *, n_resamples: int = 1000,
                    seed: int = 0, level: float = 0.95) -> tuple[float, float, DiffInterval | None] | None:
    """Pooled Boundary IoU of A and B over ``ids`` and the percentile interval of B − A.

    Returns:
        ``(a, b, interval)`` as fractions; ``interval`` None when the two sides were scored at
        other dilation ratios or no resample is defined. None when either side lacks the counts.
    """
    ca, cb = _band_counts(images_a, ids), _band_counts(images_b, ids)
    if ca is None or cb is None:
        return None
    (ia, na, ra), (ib, nb, rb) = ca, cb
    a = float(_mean_biou(ia.sum(0), na.sum(0), absent, excluded))
    b = float(_mean_biou(ib.sum(0), nb.sum(0), absent, excluded))
    counts = resample_counts(len(ids), n_resamples, seed).astype(np.float64)
    boot = (_mean_biou(counts @ ib, counts @ nb, absent, excluded)
            - _mean_biou(counts @ ia, counts @ na, absent, excluded))
    finite = boot[np.isfinite(boot)]
    if finite.size == 0 or ra != rb:
        return a, b, None
    tail = 100 * (1 - level) / 2
    low, high = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    return a, b, DiffInterval(b - a, low, high, bool(low > 0 or high < 0))
