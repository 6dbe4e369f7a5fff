"""Paired bootstrap over images: is the difference between two units more than image sampling noise?

Two units (method x input size) scored on the same images are paired on their ``image_id``. One
bootstrap resample draws N image indices with replacement (N = number of common images), the same
indices for both sides, so the per-image correlation between the two methods is kept. For each
resample the dataset-level metrics are recomputed exactly as the tables compute them:

- mIoU: the resampled per-image confusion matrices are summed (an image drawn k times counts k
  times), then per-class IoU with the same absent-class policy and excluded classes
  (:func:`bench.evaluation.metrics.iou_per_class`, :func:`bench.evaluation.metrics.mean_iou`);
- mBA: the mean of the per-image mBA over the drawn images, skipping images without a boundary
  band (``mba`` None/NaN), as the tables do.

The result per metric is the observed difference A - B on the common images and the percentile
interval (2.5 %, 97.5 % for the default 95 % level) of the B bootstrap differences. A difference
is called significant when that interval excludes zero. Everything is deterministic for a given
seed: the common ids are sorted first, so the record order does not matter.

Fewer than ``MIN_PAIRED_IMAGES`` (5) paired images give no verdict (:attr:`BootstrapResult.markable`
is False): with N images there are at most C(2N-1, N) distinct resamples (3 at N = 2, 35 at
N = 4), so the percentile interval is a handful of values and excludes zero whenever the
images agree in sign, however small the sample; the tables print the interval without a mark and
say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.evaluation.metrics import ABSENT_POLICIES, iou_per_class, mean_iou

ImageRecords = Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]
MIN_PAIRED_IMAGES = 5  # the least N whose interval may carry a significance mark (module docstring)


@dataclass(frozen=True)
class DiffInterval:
    """One metric's paired difference A - B, as fractions in [-1, 1] (not percent).

    Attributes:
        diff: observed difference on the common images.
        low: lower percentile of the bootstrap differences (2.5 % at level 0.95); NaN when no
            resample gave a defined difference.
        high: upper percentile (97.5 % at level 0.95); NaN likewise.
        excludes_zero: ``low > 0`` or ``high < 0``: the difference is significant at the level.
    """

    diff: float
    low: float
    high: float
    excludes_zero: bool


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of two units over their common images.

    Attributes:
        miou: dataset-level mIoU difference A - B and its interval.
        mba: mean-mBA difference A - B and its interval.
        n_images: number of common (paired) images N.
        n_only_a: images of A without a partner in B (left out).
        n_only_b: images of B without a partner in A (left out).
        n_resamples: number of bootstrap resamples B.
        seed: seed of the ``numpy.random.Generator`` that drew the resamples.
        level: confidence level of the percentile interval (0.95).
    """

    miou: DiffInterval
    mba: DiffInterval
    n_images: int
    n_only_a: int
    n_only_b: int
    n_resamples: int
    seed: int
    level: float

    @property
    def markable(self) -> bool:
        """True when enough images are paired (``MIN_PAIRED_IMAGES``) for a significance mark."""
        return self.n_images >= MIN_PAIRED_IMAGES


def _by_id(recs: ImageRecords, side: str) -> dict[str, Mapping[str, Any]]:
    """``{image_id: record}`` from a mapping keyed by image id or from a sequence of image records."""
    if isinstance(recs, Mapping):
        return dict(recs)
    out: dict[str, Mapping[str, Any]] = {}
    for r in recs:
        if "image_id" not in r:
            raise ValueError(f"side {side}: an image record has no 'image_id'")
        if r["image_id"] in out:
            # two records for one image are ambiguous here; records.latest_by_image resolves them
            raise ValueError(f"side {side}: image id {r['image_id']!r} appears twice; pass records.latest_by_image(...)")
        out[r["image_id"]] = r
    return out


def stack_images(images: Mapping[str, Mapping[str, Any]], ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-image confusion matrices and mBA of ``ids``, in that order.

    Args:
        images: ``{image_id: record}``; each record has ``cm`` ((C, C) nested list of counts,
            rows = ground truth) and ``mba`` (float in [0, 1], or None/NaN without a boundary).
        ids: the image ids to take.

    Returns:
        cms: (N, C, C) int64 counts; mba: (N,) float64 in [0, 1], NaN where undefined.

    Raises:
        ValueError: a record lacks ``cm`` or the matrices differ in shape or are not square.
    """
    cms, mbas = [], []
    for i in ids:
        rec = images[i]
        if rec.get("cm") is None:
            raise ValueError(f"image {i!r} has no confusion matrix 'cm'")
        cms.append(np.asarray(rec["cm"], dtype=np.int64))
        mba = rec.get("mba")
        mbas.append(float("nan") if mba is None else float(mba))
    shapes = {c.shape for c in cms}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or len(set(next(iter(shapes)))) != 1:
        raise ValueError(f"confusion matrices must all be (C, C) with one C, got shapes {sorted(shapes)}")
    return np.stack(cms), np.asarray(mbas, dtype=np.float64)


def resample_counts(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each image is drawn in each resample.

    Draws an (B, N) index array with ``numpy.random.default_rng(seed).integers`` and counts it per
    row. Summing the (N, C, C) matrices with these weights equals summing ``cms[idx]`` without the
    (B, N, C, C) intermediate (866 MB at B=1000, N=300, C=19).

    Returns:
        (B, N) int64 counts; each row sums to N.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_images, size=(n_resamples, n_images))
    flat = (np.arange(n_resamples)[:, None] * n_images + idx).ravel()
    return np.bincount(flat, minlength=n_resamples * n_images).reshape(n_resamples, n_images)


def batched_miou(cms: np.ndarray, absent: str = "nan", excluded: Sequence[int] = ()) -> np.ndarray:
    """mIoU of many confusion matrices at once, with the rules of ``iou_per_class`` and ``mean_iou``.

    Args:
        cms: (B, C, C) counts (any real dtype), rows = ground truth.
        absent: ``"nan"`` (a class with empty union is left out of the mean) or ``"zero"`` (it
            scores 0: the union is clamped at 1, MagNet's convention).
        excluded: classes left out of the mean.

    Returns:
        (B,) float64 mIoU in [0, 1]; NaN for a matrix where no class is left to average.
    """
    if absent not in ABSENT_POLICIES:
        raise ValueError(f"absent must be one of {ABSENT_POLICIES}, got {absent!r}")
    cms = np.asarray(cms, dtype=np.float64)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    union = cms.sum(1) + cms.sum(2) - tp
    if absent == "zero":
        iou = tp / np.maximum(union, 1.0)
    else:
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
    keep = np.ones(cms.shape[1], dtype=bool)
    keep[list(excluded)] = False
    iou = iou[:, keep]
    valid = ~np.isnan(iou)
    n = valid.sum(1)
    total = np.where(valid, iou, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _weighted_mba(counts: np.ndarray, mba: np.ndarray) -> np.ndarray:
    """Mean mBA of each resample, skipping images without a boundary. (B, N) x (N,) -> (B,), NaN if none."""
    valid = ~np.isnan(mba)
    num = counts @ np.where(valid, mba, 0.0)
    den = counts @ valid.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _interval(observed: float, boot: np.ndarray, level: float) -> DiffInterval:
    """Percentile interval of the finite bootstrap differences (NaN ones cannot be ranked)."""
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return DiffInterval(observed, float("nan"), float("nan"), False)
    tail = 100 * (1 - level) / 2
    low, high = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    return DiffInterval(observed, low, high, bool(low > 0 or high < 0))


def paired_bootstrap(images_a: ImageRecords, images_b: ImageRecords, *, absent: str = "nan",
                     excluded: Sequence[int] = (), n_resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> BootstrapResult:
    """Paired bootstrap over images of the mIoU and mBA differences A - B.

    Args:
        images_a, images_b: each side's image records, either ``{image_id: record}`` (as
            ``bench.evaluation.records.latest_by_image`` returns) or a sequence of records with
            ``image_id``. A record has ``cm``, a (C, C) nested list of int counts (rows = ground
            truth), and ``mba``, a float in [0, 1] or None/NaN. Only the common ids are used.
        absent: absent-class policy of the mIoU (``"nan"`` or ``"zero"``).
        excluded: classes left out of the mIoU mean.
        n_resamples: B, number of resamples (>= 1).
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same intervals.
        level: confidence level of the percentile interval, in (0, 1).

    Returns:
        A :class:`BootstrapResult`; differences are fractions (multiply by 100 for points).

    Raises:
        ValueError: no image in common, B < 1, a bad level, or malformed/mismatched matrices.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    a, b = _by_id(images_a, "A"), _by_id(images_b, "B")
    # sorted, so the resamples depend on the image ids, never on the order of the records
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no image in common: A has {len(a)} image(s) (e.g. {sorted(a)[:3]}), "
                         f"B has {len(b)} (e.g. {sorted(b)[:3]})")
    cm_a, mba_a = stack_images(a, common)
    cm_b, mba_b = stack_images(b, common)
    if cm_a.shape != cm_b.shape:
        raise ValueError(f"A has {cm_a.shape[1]} classes, B has {cm_b.shape[1]}")
    n, c = cm_a.shape[0], cm_a.shape[1]

    # observed: the very functions the tables use, so the difference matches them
    obs_miou = (mean_iou(iou_per_class(cm_a.sum(0), absent), excluded)
                - mean_iou(iou_per_class(cm_b.sum(0), absent), excluded))
    obs_mba = float(_weighted_mba(np.ones((1, n)), mba_a)[0] - _weighted_mba(np.ones((1, n)), mba_b)[0])

    counts = resample_counts(n, n_resamples, seed).astype(np.float64)
    # float64 matmul is exact for integer counts below 2**53 and runs on BLAS (int64 does not)
    boot_a = (counts @ cm_a.reshape(n, c * c).astype(np.float64)).reshape(n_resamples, c, c)
    boot_b = (counts @ cm_b.reshape(n, c * c).astype(np.float64)).reshape(n_resamples, c, c)
    d_miou = batched_miou(boot_a, absent, excluded) - batched_miou(boot_b, absent, excluded)
    d_mba = _weighted_mba(counts, mba_a) - _weighted_mba(counts, mba_b)
    return BootstrapResult(miou=_interval(float(obs_miou), d_miou, level), mba=_interval(obs_mba, d_mba, level),
                           n_images=n, n_only_a=len(a) - n, n_only_b=len(b) - n,
                           n_resamples=n_resamples, seed=seed, level=level)
