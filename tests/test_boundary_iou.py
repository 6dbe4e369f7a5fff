"""Boundary IoU (issue 22 item 4): the spec's test vectors TV1-TV6, the one-erosion form against the
authors' d-iteration form and a brute-force Chebyshev form, the semantic variant's pooling and policies.

The golden values are the hand counts of ``refinement_track.md`` §2.4 (each verified there against
the boundary-iou-api's ``mask_to_boundary``), not outputs of the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.evaluation.boundary import (
    CITYSCAPES_DILATION_RATIO,
    DILATION_RATIO,
    BoundaryIoUAccumulator,
    binary_counts,
    biou_per_class,
    boundary_iou,
    boundary_width,
    class_counts,
    inner_band,
)


def _mask(shape, rows, cols):
    m = np.zeros(shape, bool)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return m


# --- the spec's vectors ----------------------------------------------------------------------------

def test_tv1_shifted_square():
    # catches: the outer band (dilate - mask) instead of the inner band, or a wrong d clamp (d = 0)
    g = _mask((10, 10), (2, 7), (2, 7))
    p = _mask((10, 10), (2, 7), (3, 8))
    assert binary_counts(g, p) == (10, 30)
    assert boundary_iou(g, p) == pytest.approx(1 / 3)


def test_tv2_image_border_is_a_boundary():
    # catches: a neutral border (OpenCV's default for erode), which would drop row 0 from both bands
    g = _mask((10, 10), (0, 4), (0, 9))
    p = _mask((10, 10), (0, 5), (0, 9))
    assert binary_counts(g, p) == (18, 36)
    assert boundary_iou(g, p) == 0.5


def test_tv3_d_above_one():
    # catches: a fixed 3x3 (d = 1) erosion, or a (d+1) square instead of (2d+1)
    assert boundary_width(100, 100) == 3
    g = _mask((100, 100), (20, 59), (20, 59))
    p = _mask((100, 100), (20, 59), (22, 61))
    assert binary_counts(g, p) == (296, 592)
    assert boundary_iou(g, p) == 0.5


@pytest.mark.parametrize(("hw", "d"), [((75, 100), 2), ((10, 10), 1), ((1024, 2048), 46), ((2448, 2448), 69),
                                       ((5000, 5000), 141)])
def test_tv4_band_width(hw, d):
    # catches: ceil/half-up rounding (75x100: 2.5 -> 3) and a missing clamp to 1 (10x10: 0.28 -> 0)
    assert boundary_width(*hw) == d


def test_cityscapes_ratio_is_a_named_option():
    # 0.005 * sqrt(1024² + 2048²) = 11.45 -> 11; catches the ratio being ignored (46 at 0.02)
    assert CITYSCAPES_DILATION_RATIO == 0.005 and DILATION_RATIO == 0.02
    assert boundary_width(1024, 2048, CITYSCAPES_DILATION_RATIO) == 11
    with pytest.raises(ValueError, match="ratio"):
        boundary_width(10, 10, 0.0)


def test_tv5_both_empty_is_nan():
    # catches: 0/0 scored as 0 or as 1
    empty = np.zeros((12, 9), bool)
    assert binary_counts(empty, empty) == (0, 0)
    assert np.isnan(boundary_iou(empty, empty))
    full = _mask((12, 9), (3, 5), (2, 4))
    assert boundary_iou(full, empty) == 0.0  # one empty band: 0, not NaN


def test_tv6_semantic_per_class():
    # catches: eroding the label map itself (detectron2's variant: class 0 gives 0.622 there, not 26/42)
    gt = np.zeros((10, 10), np.uint8)
    gt[:, 5:] = 2
    gt[2:8, 1:4] = 1
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 6:] = 2
    pred[2:8, 1:5] = 1
    inter, union = class_counts(gt, pred, 3, ignore_index=None)
    assert inter.tolist() == [26, 10, 16] and union.tolist() == [42, 20, 34]
    acc = BoundaryIoUAccumulator(3, ignore_index=None)
    acc.update(gt, pred)
    assert acc.compute()["mbiou"] == pytest.approx(0.52988, abs=5e-6)


# --- one square erosion == the authors' d erosions == the brute-force definition ------------------

def _authors_band(mask, d):
    """boundary-iou-api's recipe: a 1-px zero frame, d erosions with a 3x3 all-ones kernel (OpenCV's
    default border), the frame dropped, mask minus eroded."""
    m = np.pad(mask.astype(np.uint8), 1)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
    return mask & (eroded == 0)


def _chebyshev_band(mask, d):
    """In the mask and some pixel within Chebyshev distance d is background (outside the image counts)."""
    h, w = mask.shape
    padded = np.zeros((h + 2 * d, w + 2 * d), bool)
    padded[d:d + h, d:d + w] = mask
    all_in = np.ones((h, w), bool)
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            all_in &= padded[dy:dy + h, dx:dx + w]
    return mask & ~all_in


def _random_masks(rng, n):
    for i in range(n):
        h, w = rng.integers(5, 70, size=2)
        if i % 3 == 0:  # salt and pepper: many tiny components and holes
            yield rng.random((h, w)) < rng.uniform(0.2, 0.9)
        else:  # blobs, often touching the border
            noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), rng.uniform(1, 4))
            yield noise > np.quantile(noise, rng.uniform(0.1, 0.9))


def test_one_square_erosion_equals_d_iterations_and_the_definition():
    # catches: a 3x3 kernel used once for any d, a neutral border, an ellipse instead of a square
    rng = np.random.default_rng(22)
    for mask in _random_masks(rng, 60):
        for d in (1, 2, 3, 5, 9):
            band = inner_band(mask, d)
            assert np.array_equal(band, _authors_band(mask, d)), d
            assert np.array_equal(band, _chebyshev_band(mask, d)), d


def test_binary_biou_matches_the_authors_form_on_random_pairs():
    rng = np.random.default_rng(7)
    masks = list(_random_masks(rng, 40))
    for a, b in zip(masks[::2], masks[1::2], strict=True):
        b = cv2.resize(b.astype(np.uint8), a.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        d = boundary_width(*a.shape)
        bg, bp = _authors_band(a, d), _authors_band(b, d)
        assert binary_counts(a, b) == (int((bg & bp).sum()), int((bg | bp).sum()))


# --- the semantic variant --------------------------------------------------------------------------

def test_ignored_pixels_make_boundaries_but_are_not_counted():
    # 6x6, d = 1, all class 0, one ignored pixel at the corner (0, 0). gt == 0 band: the 19 other ring
    # pixels plus (1, 1) (its neighbour (0, 0) is "not 0") = 20; pred == 0 band: the ring, (0, 0)
    # removed = 19; shared 19 -> 19/20. Catches: ignore not removed from the prediction's band
    # (19/21), or ignore relabelled 0 before the geometry (19/19).
    gt = np.zeros((6, 6), np.uint8)
    gt[0, 0] = 255
    pred = np.zeros((6, 6), np.uint8)
    inter, union = class_counts(gt, pred, 2, ignore_index=255)
    assert inter.tolist() == [19, 0] and union.tolist() == [20, 0]


def test_pooled_over_images_not_averaged():
    # image A: TV1 (10/30), image B: identical squares (band 20/20). Pooled 30/50 = 0.6; the mean of
    # per-image values would be (1/3 + 1) / 2 = 0.667. Catches: a per-image mean.
    g = _mask((10, 10), (2, 7), (2, 7)).astype(np.uint8)
    p = _mask((10, 10), (2, 7), (3, 8)).astype(np.uint8)
    acc = BoundaryIoUAccumulator(2, ignore_index=None, excluded=(0,))
    acc.update(g, p)
    acc.update(g, g)
    assert acc.inter[1] == 30 and acc.union[1] == 50
    assert acc.compute()["mbiou"] == pytest.approx(0.6)


def test_absent_class_policies():
    # class 2 absent from both maps: NaN and out of the mean ("nan"), or 0 and in it ("zero")
    inter, union = np.array([10, 16, 0]), np.array([30, 20, 0])
    assert np.isnan(biou_per_class(inter, union, "nan")[2])
    assert biou_per_class(inter, union, "zero")[2] == 0.0
    acc = BoundaryIoUAccumulator(3, absent="nan")
    acc.add(inter, union)
    assert acc.compute()["mbiou"] == pytest.approx((10 / 30 + 16 / 20) / 2)
    acc = BoundaryIoUAccumulator(3, absent="zero")
    acc.add(inter, union)
    assert acc.compute()["mbiou"] == pytest.approx((10 / 30 + 16 / 20) / 3)
    with pytest.raises(ValueError, match="absent"):
        BoundaryIoUAccumulator(3, absent="maybe")


def test_values_outside_the_class_set_are_refused():
    gt = np.zeros((4, 4), np.uint8)
    pred = np.full((4, 4), 3, np.uint8)
    with pytest.raises(ValueError, match=r"prediction values \[3\]"):
        class_counts(gt, pred, 3)


def _per_class_counts(gt, pred, num_classes, ignore_index, d):
    """The semantic variant class by class: the inner band of each class's mask, ignore removed after."""
    valid = np.ones(gt.shape, bool) if ignore_index is None else gt != ignore_index
    inter, union = np.zeros(num_classes, int), np.zeros(num_classes, int)
    for c in range(num_classes):
        bg, bp = _chebyshev_band(gt == c, d) & valid, _chebyshev_band(pred == c, d) & valid
        inter[c], union[c] = (bg & bp).sum(), (bg | bp).sum()
    return inter, union


def test_whole_map_form_equals_the_per_class_form():
    # class_counts erodes and dilates the whole label map once (not once per class): on random label
    # maps with ignored pixels, border contact and absent classes it must count what the per-class
    # definition counts. Catches: the border left neutral, ignore not a label of its own, an
    # intersection that does not require the same class in both maps.
    rng = np.random.default_rng(5)
    for k in range(40):
        h, w = rng.integers(6, 60, size=2)
        c = int(rng.integers(2, 7))
        small = rng.integers(0, c, (max(1, h // 5), max(1, w // 5)))
        gt = cv2.resize(small.astype(np.uint8), (int(w), int(h)), interpolation=cv2.INTER_NEAREST)
        pred = gt.copy()
        flip = rng.random(gt.shape) < 0.15
        pred[flip] = rng.integers(0, c, int(flip.sum()))
        if k % 2:
            gt[rng.random(gt.shape) < 0.05] = 255
        for ratio in (DILATION_RATIO, 0.05, 0.1):
            d = boundary_width(int(h), int(w), ratio)
            got = class_counts(gt, pred, c, ignore_index=255, ratio=ratio)
            want = _per_class_counts(gt, pred, c, 255, d)
            assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist(), (k, ratio)
