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
- mBA is the **per-image mean** of CascadePSP's binary boundary accuracy,
  :func:`bench.evaluation.metrics.boundary_accuracy` with ``ignore_index=None`` on the 0/1 masks
  (the five radii from the image's W + H, OpenCV's elliptical kernel, the band
  ``dilate(gt) != erode(gt)``): that function is ``compute_boundary_acc`` of the binary case
  exactly. A ground truth without a boundary (empty or full) has no mBA: it is skipped and listed
  (the reference divides 0 by 0).
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

import numpy as np
from PIL import Image  # Pillow comes with matplotlib; its bilinear resize is the reference's

from bench.evaluation.boundary import DILATION_RATIO, binary_counts, ratio_or_nan
from bench.evaluation.metrics import boundary_accuracy

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
    return np.asarray(Image.fromarray(grey, mode="L").resize((width, height), Image.Resampling.BILINEAR))


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


def score_mask(gt: np.ndarray, mask: np.ndarray, ratio: float = DILATION_RATIO) -> MaskScore:
    """Score one binary mask.

    Args:
        gt: (H, W) bool ground truth.
        mask: (H, W) bool coarse or refined mask.
        ratio: Boundary IoU dilation ratio.
    """
    gt, mask = np.asarray(gt, bool), np.asarray(mask, bool)
    if gt.shape != mask.shape:
        raise ValueError(f"ground truth {gt.shape} and mask {mask.shape} differ in shape")
    inter = int(np.count_nonzero(gt & mask))
    union = int(np.count_nonzero(gt | mask))
    mba = boundary_accuracy(gt.astype(np.uint8), mask.astype(np.uint8), ignore_index=None)
    b_inter, b_union = binary_counts(gt, mask, ratio)
    return MaskScore(inter, union, mba, b_inter, b_union)


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
    return score_methods(stem, gt, coarse, {"": refined}, threshold, ratio)[""]


def score_methods(stem: str, gt: np.ndarray, coarse: np.ndarray, refined: Mapping[str, np.ndarray | None],
                  threshold: str = "gt128", ratio: float = DILATION_RATIO) -> dict[str, ObjectScore]:
    """:func:`score_object` for several methods' refined masks of one object; the coarse mask is scored once.

    Args:
        refined: method name -> its (h, w) uint8 grey refined mask, or None.

    Returns:
        method name -> the object's score.
    """
    gt = np.asarray(gt)
    if np.asarray(coarse).shape != gt.shape:
        raise ValueError(f"{stem}: coarse mask {np.asarray(coarse).shape} and ground truth {gt.shape} differ in size")
    gt_b = binarize(gt, threshold)
    coarse_b = binarize(coarse, threshold)
    coarse_score = score_mask(gt_b, coarse_b, ratio)
    out = {}
    for name, mask in refined.items():
        refined_score, resized = None, False
        if mask is not None:
            resized = np.asarray(mask).shape != gt.shape
            refined_score = score_mask(gt_b, binarize(resize_to(mask, gt.shape), threshold), ratio)
        out[name] = ObjectScore(stem, coarse_score, refined_score, not coarse_b.any(), resized,
                                int(gt.shape[0]), int(gt.shape[1]))
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
