"""The BIG protocol's scorer (CascadePSP's ``eval_post.py`` and its variants): pure functions plus one accumulator.

Per object: the ground truth, the coarse mask and the refined mask are 8-bit grey images. A
refined mask of another size is first resized to the ground truth's size with PIL's bilinear
filter on the 8-bit image, as ``eval_post.py`` does (CascadePSP writes soft masks, probability x
255). All three are then binarised by one named rule (:data:`THRESHOLDS`):

- ``"gt128"``: ``value > 128``, CascadePSP's ``eval_post.py`` and CRM's ``eval_post<s>.py``;
- ``"ge128"``: ``value >= 128``, SegRefiner's ``scripts/eval_miou.py``.

A grey value of exactly 128 is object for SegRefiner only.

Over a set (one coarse source, one method):

- IoU is **pooled**: the sum of intersections over the sum of unions, for the coarse and the
  refined masks, never a mean of per-image IoUs.
- mBA is the **per-image mean** of CascadePSP's binary boundary accuracy: the value of
  :func:`bench.evaluation.metrics.boundary_accuracy` with ``ignore_index=None`` on the 0/1 masks
  (the five radii from the image's W + H, OpenCV's elliptical kernel, the band
  ``dilate(gt) != erode(gt)``), which is ``compute_boundary_acc`` of the binary case exactly. Its
  bands are made once per object (:func:`prepare_truth`) with the same radii, kernels and
  arithmetic; a test checks the values are identical. A ground truth without a boundary (empty or
  full) has no mBA: it is skipped and listed (the reference divides 0 by 0).
- Boundary IoU (:mod:`bench.evaluation.boundary`) is pooled like IoU: summed band intersections
  over summed band unions, at a named dilation ratio.

Not reproduced: the reference's "small object" rule (coarse grey levels summing below 32 * 32,
i.e. at most four white pixels, on a square image scores the coarse mask in place of the refined
one). Instead, objects whose binarised coarse mask is empty are counted and listed, and scored
like every other object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image  # Pillow comes with matplotlib; its bilinear resize is the reference's

from bench.evaluation.boundary import DILATION_RATIO, boundary_width, inner_band, ratio_or_nan
from bench.evaluation.metrics import ellipse_kernel, mba_radii

THRESHOLDS = {"gt128": "> 128 (CascadePSP, CRM)", "ge128": ">= 128 (SegRefiner)"}


def binarize(grey: np.ndarray, threshold: str = "gt128") -> np.ndarray:
    """An 8-bit grey mask as bool by the named rule.

    Args:
        grey: (H, W) uint8, 0..255.
        threshold: ``"gt128"`` (``> 128``) or ``"ge128"`` (``>= 128``).

    Returns:
        (H, W) bool.
    """
    if threshold == "gt128":
        return np.asarray(grey) > 128
    if threshold == "ge128":
        return np.asarray(grey) >= 128
    raise ValueError(f"threshold must be one of {list(THRESHOLDS)}, got {threshold!r}")


def resize_to(grey: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An 8-bit grey mask at (H, W) = ``shape``: unchanged when it has that size, else PIL bilinear.

    Args:
        grey: (h, w) uint8.
        shape: the target (H, W), the ground truth's.

    Returns:
        (H, W) uint8.
    """
    grey = np.asarray(grey)
    if grey.shape == tuple(shape):
        return grey
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(f"expected an (h, w) uint8 mask to resize, got {grey.shape} {grey.dtype}")
    height, width = shape
    return np.asarray(Image.fromarray(np.ascontiguousarray(grey)).resize((width, height), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class MaskScore:
    """One binary mask scored against its ground truth.

    Attributes:
        inter: |G ∩ M|, pixels.
        union: |G ∪ M|, pixels.
        mba: the image's mBA in [0, 1]; NaN when the ground truth has no boundary.
        biou_inter: |band(G) ∩ band(M)|, pixels.
        biou_union: |band(G) ∪ band(M)|, pixels.
    """

    inter: int
    union: int
    mba: float
    biou_inter: int
    biou_union: int


@dataclass(frozen=True)
class Truth:
    """A binarised ground truth with its bands, computed once and scored against every mask of the object.

    At 5000x3600 the five elliptical mBA bands take seconds; a BIG object is scored against one
    coarse mask per source and one refined mask per method and source, so they are made once.

    Attributes:
        mask: (H, W) bool ground truth.
        mba_bands: the five (H, W) bool mBA bands ``dilate(gt) != erode(gt)``, radii from (H, W).
        inner: (H, W) bool Boundary IoU band of the ground truth.
        d: the Boundary IoU band width, pixels.
        threshold: the rule ``mask`` was binarised with.
    """

    mask: np.ndarray
    mba_bands: tuple[np.ndarray, ...]
    inner: np.ndarray
    d: int
    threshold: str


def prepare_truth(gt: np.ndarray, threshold: str = "gt128", ratio: float = DILATION_RATIO) -> Truth:
    """Binarise an 8-bit grey ground truth and compute its bands.

    The mBA bands are those of :func:`bench.evaluation.metrics.boundary_accuracy` with
    ``ignore_index=None`` (the same radii and kernels; a test checks the scores are identical).

    Args:
        gt: (H, W) uint8 grey ground truth.
        threshold: ``"gt128"`` or ``"ge128"``.
        ratio: Boundary IoU dilation ratio.
    """
    mask = binarize(gt, threshold)
    m = mask.astype(np.uint8)
    height, width = mask.shape
    bands = []
    for radius in mba_radii(height, width):
        kernel = ellipse_kernel(radius)
        bands.append(cv2.dilate(m, kernel) != cv2.erode(m, kernel))
    d = boundary_width(height, width, ratio)
    return Truth(mask, tuple(bands), inner_band(mask, d), d, threshold)


def score_mask(truth: Truth, mask: np.ndarray) -> MaskScore:
    """Score one binary mask against a prepared ground truth.

    Args:
        truth: the ground truth (:func:`prepare_truth`).
        mask: (H, W) bool coarse or refined mask.
    """
    gt, mask = truth.mask, np.asarray(mask, bool)
    if gt.shape != mask.shape:
        raise ValueError(f"ground truth {gt.shape} and mask {mask.shape} differ in shape")
    correct = gt == mask
    accs = []
    for band in truth.mba_bands:  # boundary_accuracy's arithmetic, so the values are identical
        n = int(np.count_nonzero(band))
        accs.append(float(np.count_nonzero(correct & band)) / n if n else float("nan"))
    mba = float("nan") if any(np.isnan(accs)) else float(np.mean(accs))
    band = inner_band(mask, truth.d)
    return MaskScore(int(np.count_nonzero(gt & mask)), int(np.count_nonzero(gt | mask)), mba,
                     int(np.count_nonzero(truth.inner & band)), int(np.count_nonzero(truth.inner | band)))


@dataclass(frozen=True)
class ObjectScore:
    """One object of one coarse source, its coarse and refined masks scored.

    Attributes:
        id: the stem.
        coarse: the coarse mask's score.
        refined: the refined mask's score (None when only the coarse source is scored).
        coarse_empty: the binarised coarse mask has no object pixel.
        resized: the refined mask was resized to the ground truth's size.
        height, width: the ground truth's size, pixels.
    """

    id: str
    coarse: MaskScore
    refined: MaskScore | None
    coarse_empty: bool
    resized: bool
    height: int
    width: int


def score_object(stem: str, gt: np.ndarray, coarse: np.ndarray, refined: np.ndarray | None = None,
                 threshold: str = "gt128", ratio: float = DILATION_RATIO) -> ObjectScore:
    """Score one object: binarise, resize the refined mask to the ground truth, count.

    Args:
        stem: the object's id.
        gt: (H, W) uint8 grey ground truth.
        coarse: (H, W) uint8 grey coarse mask (the same size: the BIG files are).
        refined: (h, w) uint8 grey refined mask (soft or 0/255), any size, or None.
        threshold: ``"gt128"`` or ``"ge128"``.
        ratio: Boundary IoU dilation ratio.

    Raises:
        ValueError: the coarse mask's size differs from the ground truth's.
    """
    return score_methods(stem, prepare_truth(gt, threshold, ratio), coarse, {"": refined})[""]


def score_methods(stem: str, truth: Truth, coarse: np.ndarray,
                  refined: Mapping[str, np.ndarray | None]) -> dict[str, ObjectScore]:
    """:func:`score_object` for one coarse mask and several methods' refined masks; the coarse mask is scored once.

    Args:
        stem: the object's id.
        truth: its ground truth (:func:`prepare_truth`; its threshold binarises the masks too).
        coarse: (H, W) uint8 grey coarse mask.
        refined: method name -> its (h, w) uint8 grey refined mask, or None.

    Returns:
        method name -> the object's score.
    """
    shape = truth.mask.shape
    if np.asarray(coarse).shape != shape:
        raise ValueError(f"{stem}: coarse mask {np.asarray(coarse).shape} and ground truth {shape} differ in size")
    coarse_b = binarize(coarse, truth.threshold)
    coarse_score = score_mask(truth, coarse_b)
    out = {}
    for name, mask in refined.items():
        refined_score, resized = None, False
        if mask is not None:
            resized = np.asarray(mask).shape != shape
            refined_score = score_mask(truth, binarize(resize_to(mask, shape), truth.threshold))
        out[name] = ObjectScore(stem, coarse_score, refined_score, not coarse_b.any(), resized,
                                int(shape[0]), int(shape[1]))
    return out


@dataclass(frozen=True)
class SetScore:
    """One coarse source (and method) over the set; fractions in [0, 1], unrounded.

    Attributes:
        iou, mba, biou: of the coarse masks.
        refined_iou, refined_mba, refined_biou: of the refined masks (NaN when none were scored).
        n_objects: objects scored.
        empty_coarse: stems whose binarised coarse mask is empty.
        no_boundary: stems without mBA (a ground truth without a boundary), left out of both mBA means.
        resized: how many refined masks were resized to their ground truth.
        threshold, ratio: the binarisation rule and the Boundary IoU dilation ratio.
    """

    iou: float
    mba: float
    biou: float
    refined_iou: float
    refined_mba: float
    refined_biou: float
    n_objects: int
    empty_coarse: tuple[str, ...]
    no_boundary: tuple[str, ...]
    resized: int
    threshold: str
    ratio: float


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


@dataclass
class BigAccumulator:
    """Pools :class:`ObjectScore` s of one coarse source (and one method): ``add`` each, ``compute`` once.

    Attributes:
        threshold: the binarisation rule the scores were made with (recorded in the result).
        ratio: the Boundary IoU dilation ratio they were made with (recorded in the result).
    """

    threshold: str = "gt128"
    ratio: float = DILATION_RATIO
    objects: list[ObjectScore] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {list(THRESHOLDS)}, got {self.threshold!r}")

    def add(self, score: ObjectScore) -> None:
        if any(o.id == score.id for o in self.objects):
            raise ValueError(f"object {score.id!r} added twice")
        self.objects.append(score)

    def compute(self) -> SetScore:
        """Pooled IoU and Boundary IoU, per-image mBA, the listed empty-coarse and boundary-less stems."""
        objs = self.objects
        refined = [o.refined for o in objs if o.refined is not None]
        if refined and len(refined) != len(objs):
            raise ValueError(f"{len(objs) - len(refined)} of {len(objs)} objects have no refined mask")
        no_boundary = tuple(o.id for o in objs if np.isnan(o.coarse.mba))

        def pooled(scores: Sequence[MaskScore]) -> tuple[float, float, float]:
            iou = ratio_or_nan(sum(s.inter for s in scores), sum(s.union for s in scores))
            biou = ratio_or_nan(sum(s.biou_inter for s in scores), sum(s.biou_union for s in scores))
            return iou, _mean([s.mba for s in scores if not np.isnan(s.mba)]), biou

        c_iou, c_mba, c_biou = pooled([o.coarse for o in objs])
        r_iou, r_mba, r_biou = pooled(refined) if refined else (float("nan"),) * 3
        return SetScore(c_iou, c_mba, c_biou, r_iou, r_mba, r_biou, len(objs),
                        tuple(o.id for o in objs if o.coarse_empty), no_boundary,
                        sum(o.resized for o in objs), self.threshold, self.ratio)
