"""Segmentation metrics: pure functions plus one accumulator.

mIoU (``miou_dataset``) is computed from one confusion matrix accumulated over the whole dataset
(Cityscapes scripts, mmseg, MagNet), never as a mean of per-image IoUs. Two named policies for a
class absent from both ground truth and prediction: ``absent="nan"`` leaves it out of the mean
(cityscapesScripts, mmseg) and ``absent="zero"`` scores it 0 (MagNet's code clamps the union at 1).
``excluded`` classes are counted in the matrix but left out of the mean (DeepGlobe class 0).

mBA follows CascadePSP's ``compute_boundary_acc``: five radii from ``(W + H) / 300``, the OpenCV
elliptical kernel, the boundary band ``dilate(gt) != erode(gt)`` with OpenCV's neutral image
border (the border never makes a boundary), ignored pixels taking part in the band as a label of
their own but excluded from the accuracy. An image whose band is empty (one label only) has no
mBA; the accumulator skips and counts it.

Boundary IoU (:mod:`bench.evaluation.boundary`) joins the accumulator as the per-class semantic
variant: each image's per-class band intersection and union counts are summed over the images (like
the confusion matrix, never a mean of per-image values) and scored by the same ``absent`` and
``excluded`` policies as the mIoU, at a named dilation ratio (:data:`DILATION_RATIO`, 0.02, or
:data:`CITYSCAPES_DILATION_RATIO`, 0.005).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from bench.evaluation.boundary import biou_per_class, class_counts
from bench.evaluation.policies import ABSENT_POLICIES as ABSENT_POLICIES
from bench.evaluation.policies import CITYSCAPES_DILATION_RATIO as CITYSCAPES_DILATION_RATIO
from bench.evaluation.policies import DILATION_RATIO as DILATION_RATIO
from bench.evaluation.policies import mean_iou as mean_iou


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Confusion counts of one image.

    Args:
        gt: (H, W) integer labels in ``0..C-1`` or ``ignore_index``.
        pred: (H, W) integer predictions in ``0..C-1``.
        num_classes: C.
        ignore_index: ground-truth value excluded from the counts, or None.

    Returns:
        (C, C) int64, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes differ, or a label or prediction lies outside the class set (the
            message lists the offending values).
    """
    _check_pair(gt, pred)
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if ignore_index is not None:
        keep = gt != ignore_index
        gt, pred = gt[keep], pred[keep]
    for name, arr in (("ground-truth label", gt), ("prediction", pred)):
        bad = (arr < 0) | (arr >= num_classes)
        if bad.any():
            values = np.unique(arr[bad])[:10].tolist()
            raise ValueError(f"{name} values {values} outside the class set 0..{num_classes - 1} (ignore_index={ignore_index})")
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray, absent: str = "nan") -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN) from a confusion matrix.

    Args:
        cm: (C, C) counts, rows = ground truth.
        absent: ``"nan"`` (0/0 -> NaN, the Cityscapes/mmseg convention) or ``"zero"`` (MagNet's
            union clamped at 1, so an absent class scores 0).

    Returns:
        (C,) float64 in [0, 1].
    """
    if absent not in ABSENT_POLICIES:
        raise ValueError(f"absent must be one of {ABSENT_POLICIES}, got {absent!r}")
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    if absent == "zero":
        return tp / np.maximum(union, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mba_radii(height: int, width: int) -> list[int]:
    """The five CascadePSP radii: ``1 + int((max_r - 1) / 5 * i)`` with ``max_r = (W + H) / 300``."""
    max_r = (width + height) / 300
    return [1 + int((max_r - 1) / 5 * i) for i in range(5)]


def ellipse_kernel(radius: int) -> np.ndarray:
    """OpenCV's (2r+1)x(2r+1) ``MORPH_ELLIPSE`` structuring element, uint8."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _morph_dtype(gt: np.ndarray) -> np.ndarray:
    if gt.min() >= 0 and gt.max() <= 255:
        return gt.astype(np.uint8, copy=False)
    if gt.min() >= 0 and gt.max() <= 65535:
        return gt.astype(np.uint16, copy=False)
    raise ValueError("labels for mBA must lie in 0..65535")


def boundary_accuracy_radii(gt: np.ndarray, pred: np.ndarray, ignore_index: int | None = None) -> list[float]:
    """Boundary-band accuracy at each of the five radii (NaN where the band is empty)."""
    _check_pair(gt, pred)
    height, width = gt.shape
    gt_m = _morph_dtype(np.asarray(gt))
    correct = np.asarray(pred) == np.asarray(gt)
    valid = np.ones_like(correct) if ignore_index is None else np.asarray(gt) != ignore_index
    accs = []
    for radius in mba_radii(height, width):
        kernel = ellipse_kernel(radius)
        band = cv2.dilate(gt_m, kernel) != cv2.erode(gt_m, kernel)
        band &= valid
        n = int(np.count_nonzero(band))
        accs.append(float(np.count_nonzero(correct & band)) / n if n else float("nan"))
    return accs


def boundary_accuracy(gt: np.ndarray, pred: np.ndarray, ignore_index: int | None = None) -> float:
    """One image's mBA in [0, 1]: the mean boundary-band accuracy over the five radii.

    Args:
        gt: (H, W) integer labels (uint8 or uint16 range).
        pred: (H, W) integer predictions.
        ignore_index: ground-truth value excluded from the accuracy (it still forms a boundary
            with its neighbours, as void does in CascadePSP's multi-class variant), or None.

    Returns:
        The mBA, or NaN when the image has no boundary band (a single label).
    """
    accs = boundary_accuracy_radii(gt, pred, ignore_index)
    return float("nan") if any(np.isnan(accs)) else float(np.mean(accs))


@dataclass
class SegEvaluator:
    """Dataset-level accumulator: ``update`` per image, ``compute`` once, ``reset`` to reuse.

    Attributes:
        num_classes: C.
        ignore_index: ignored ground-truth value, or None.
        absent: absent-class policy for the per-class IoU and Boundary IoU, ``"nan"`` or ``"zero"``.
        excluded: classes left out of the mIoU and mBIoU means (still counted).
        biou_ratio: Boundary IoU dilation ratio (fraction of the image diagonal, > 0), or None to
            skip Boundary IoU.
    """

    num_classes: int
    ignore_index: int | None = 255
    absent: str = "nan"
    excluded: tuple[int, ...] = ()
    biou_ratio: float | None = DILATION_RATIO
    cm: np.ndarray = field(init=False)
    mba_values: list[float] = field(init=False)
    mba_skipped: int = field(init=False)
    biou_inter: np.ndarray = field(init=False)
    biou_union: np.ndarray = field(init=False)
    biou_images: int = field(init=False)

    def __post_init__(self) -> None:
        if self.absent not in ABSENT_POLICIES:
            raise ValueError(f"absent must be one of {ABSENT_POLICIES}, got {self.absent!r}")
        if self.biou_ratio is not None and not self.biou_ratio > 0:
            raise ValueError(f"biou_ratio must be > 0 (or None to skip Boundary IoU), got {self.biou_ratio!r}")
        self.reset()

    def reset(self) -> None:
        self.cm = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.mba_values = []
        self.mba_skipped = 0
        self.biou_inter = np.zeros(self.num_classes, dtype=np.int64)
        self.biou_union = np.zeros(self.num_classes, dtype=np.int64)
        self.biou_images = 0

    def score_image(self, gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-image confusion matrix and mBA, without accumulating."""
        cm = confusion_matrix(gt, pred, self.num_classes, self.ignore_index)
        return cm, boundary_accuracy(gt, pred, self.ignore_index)

    def biou_counts(self, gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-image (C,) Boundary IoU band intersections and unions (pixels), without accumulating."""
        if self.biou_ratio is None:
            raise ValueError("this evaluator skips Boundary IoU (biou_ratio=None)")
        return class_counts(gt, pred, self.num_classes, self.ignore_index, self.biou_ratio)

    def add(self, cm: np.ndarray, mba: float,
            biou: tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray] | None = None) -> None:
        """Accumulate a per-image result (e.g. read back from records).

        Args:
            cm: (C, C) confusion counts of the image.
            mba: its mBA (NaN: no boundary band, skipped and counted).
            biou: its (C,) Boundary IoU intersections and unions, or None (then ``compute``'s
                ``biou_images`` says how many images the pooled Boundary IoU covers).
        """
        self.cm += np.asarray(cm, dtype=np.int64)
        if np.isnan(mba):
            self.mba_skipped += 1
        else:
            self.mba_values.append(float(mba))
        if biou is not None:
            self.biou_inter += np.asarray(biou[0], dtype=np.int64)
            self.biou_union += np.asarray(biou[1], dtype=np.int64)
            self.biou_images += 1

    def update(self, gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, float]:
        """Score one image and accumulate it; returns its confusion matrix and mBA."""
        cm, mba = self.score_image(gt, pred)
        self.add(cm, mba, None if self.biou_ratio is None else self.biou_counts(gt, pred))
        return cm, mba

    def compute(self) -> dict[str, object]:
        """Dataset metrics: ``miou``, ``iou`` (per class), ``mba``, ``mba_images``, ``mba_skipped``,
        ``mbiou`` (mean Boundary IoU over the kept classes, NaN when no image was counted), ``biou``
        (per class), ``biou_ratio`` and ``biou_images``."""
        iou = iou_per_class(self.cm, self.absent)
        biou = (biou_per_class(self.biou_inter, self.biou_union, self.absent) if self.biou_images
                else np.full(self.num_classes, np.nan))
        return {
            "miou": mean_iou(iou, self.excluded),
            "iou": iou.tolist(),
            "mba": float(np.mean(self.mba_values)) if self.mba_values else float("nan"),
            "mba_images": len(self.mba_values),
            "mba_skipped": self.mba_skipped,
            "mbiou": mean_iou(biou, self.excluded),
            "biou": biou.tolist(),
            "biou_ratio": self.biou_ratio,
            "biou_images": self.biou_images,
        }


# --- Named mIoU variants (the literature disagrees on what "mIoU" averages) -------------------------
# ``miou``: the config's policy (``absent``, ``excluded``): the tables' headline.
# ``miou_2class``: the mean of both classes of a two-class dataset (Inria: background, building).
# ``iou_building``: class 1's IoU alone, what GLNet, FCtL (mean of iou[1:] of two classes) and ISDNet
#     call "mIoU" on Inria.
# ``miou_mmseg``: every class, absent ones NaN and left out (mmsegmentation's ``nanmean``: ISDNet and
#     its successors on DeepGlobe, class 0 "unknown" included).
MIOU_VARIANTS = ("miou", "miou_2class", "iou_building", "miou_mmseg")
VARIANT_HEADERS = {"miou": "mIoU (%)", "miou_2class": "mIoU 2-class (%)", "iou_building": "IoU building (%)",
                   "miou_mmseg": "mIoU mmseg (%)"}


def miou_2class(cm: np.ndarray, absent: str = "nan") -> float:
    """Mean IoU of both classes of a (2, 2) confusion matrix (rows = ground truth), in [0, 1]."""
    cm = np.asarray(cm)
    if cm.shape != (2, 2):
        raise ValueError(f"miou_2class needs a two-class (2, 2) confusion matrix, got shape {cm.shape}")
    return mean_iou(iou_per_class(cm, absent))


def iou_building(cm: np.ndarray, absent: str = "nan", building: int = 1) -> float:
    """IoU of the building class (id ``building``, Inria's 1) alone, in [0, 1] (NaN/0 when absent)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] <= building:
        raise ValueError(f"iou_building needs class {building} in the confusion matrix, got shape {cm.shape}")
    return float(iou_per_class(cm, absent)[building])


def miou_mmseg(cm: np.ndarray) -> float:
    """mmsegmentation's mIoU: every class, a class with an empty union NaN and left out of the mean."""
    return mean_iou(iou_per_class(cm, "nan"))


def metric_variant(name: str, cm: np.ndarray, absent: str, excluded: Sequence[int]) -> float:
    """The named variant ``name`` (one of :data:`MIOU_VARIANTS`) of a summed (C, C) confusion matrix.

    ``absent`` and ``excluded`` are the config's policy, used by ``miou`` (and ``absent`` by the
    two Inria variants); ``miou_mmseg`` has its own fixed policy.
    """
    if name == "miou":
        return mean_iou(iou_per_class(cm, absent), excluded)
    if name == "miou_2class":
        return miou_2class(cm, absent)
    if name == "iou_building":
        return iou_building(cm, absent)
    if name == "miou_mmseg":
        return miou_mmseg(cm)
    raise ValueError(f"unknown mIoU variant {name!r}; known: {list(MIOU_VARIANTS)}")


def _class_list(ids: Sequence[int]) -> str:
    ids = sorted(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(map(str, ids))


def describe_absent(absent: str) -> str:
    """The absent-class policy by name and by who uses it."""
    if absent == "zero":
        return "a class absent from ground truth and prediction scores 0 (`zero`: MagNet, GLNet, FCtL)"
    return "a class absent from ground truth and prediction is NaN and left out of the mean (`nan`: mmsegmentation, cityscapesScripts)"


def describe_variant(name: str, class_names: Sequence[str], absent: str, excluded: Sequence[int]) -> str:
    """One sentence defining the variant ``name`` for a caption note."""
    n = len(class_names)
    if name == "miou":
        kept = [i for i in range(n) if i not in set(excluded)]
        if excluded:
            names = ", ".join(f"{i} '{class_names[i]}'" for i in sorted(excluded))
            over = (f"mean over classes {_class_list(kept)} (class {names} excluded from the mean, its pixels "
                    f"kept in the confusion matrix: MagNet, GLNet, FCtL)")
        else:
            over = f"mean over all {n} classes"
        return f"mIoU: {over}; {describe_absent(absent)}"
    if name == "miou_2class":
        return f"mIoU 2-class: mean of the IoU of both classes ({', '.join(class_names)}); {describe_absent(absent)}"
    if name == "iou_building":
        return (f"IoU building: the IoU of class 1 '{class_names[1] if n > 1 else '?'}' alone, what GLNet, FCtL "
                "(mean of iou[1:] of two classes) and ISDNet report as Inria \"mIoU\"")
    if name == "miou_mmseg":
        return (f"mIoU mmseg: mean over all {n} classes with absent classes NaN and left out "
                "(mmsegmentation's nanmean: ISDNet and its successors)")
    raise ValueError(f"unknown mIoU variant {name!r}; known: {list(MIOU_VARIANTS)}")
