"""Metric test vectors (baselines.md §1.5, §2.3) and reference-implementation checks."""

import time

import numpy as np
import pytest

from bench.evaluation.metrics import (
    SegEvaluator,
    boundary_accuracy,
    confusion_matrix,
    ellipse_kernel,
    iou_per_class,
    mba_radii,
    mean_iou,
)


def test_miou_vector_2_3():
    gt = np.array([[0, 0, 1], [255, 2, 2]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    cm = confusion_matrix(gt, pred, 3)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    iou = iou_per_class(cm)
    np.testing.assert_allclose(iou, [1 / 3, 1 / 2, 1 / 2])
    assert mean_iou(iou) == pytest.approx(4 / 9)
    # the prediction 2 on the ignored pixel is not a false positive of class 2
    assert cm[:, 2].sum() == 1


def test_miou_absent_policies_2_3():
    gt = np.array([[0, 0, 1], [255, 2, 2]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    cm = confusion_matrix(gt, pred, 4)
    nan_iou = iou_per_class(cm, absent="nan")
    assert np.isnan(nan_iou[3])
    assert mean_iou(nan_iou) == pytest.approx(4 / 9)
    zero_iou = iou_per_class(cm, absent="zero")
    assert zero_iou[3] == 0.0
    assert mean_iou(zero_iou) == pytest.approx(1 / 3)


def test_excluded_class_counted_but_not_averaged():
    # DeepGlobe: class 0 pixels predicted as 1 are false positives of class 1
    gt = np.array([[0, 1, 1, 2]])
    pred = np.array([[1, 1, 1, 2]])
    cm = confusion_matrix(gt, pred, 3, ignore_index=None)
    iou = iou_per_class(cm, absent="zero")
    assert iou[1] == pytest.approx(2 / 3)
    assert mean_iou(iou, excluded=(0,)) == pytest.approx((2 / 3 + 1) / 2)


def test_dataset_level_is_not_mean_of_images():
    ev = SegEvaluator(num_classes=2, ignore_index=None)
    ev.update(np.array([[0, 0, 0, 1]]), np.array([[0, 0, 0, 0]]))
    ev.update(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))
    out = ev.compute()
    # dataset: class0 IoU 3/4, class1 IoU 4/5 -> 0.775; per-image mean would differ
    assert out["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)


def test_out_of_range_values_reported():
    with pytest.raises(ValueError, match=r"ground-truth label values \[7\]"):
        confusion_matrix(np.array([[7, 0]]), np.array([[0, 0]]), 3)
    with pytest.raises(ValueError, match=r"prediction values \[5\]"):
        confusion_matrix(np.array([[1, 0]]), np.array([[5, 0]]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


def test_confusion_matches_naive():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 6, (40, 50))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 5, (40, 50))
    naive = np.zeros((5, 5), dtype=np.int64)
    gt5 = np.where(gt == 5, 255, gt)
    for g, p in zip(gt5.ravel(), pred.ravel()):
        if g != 255:
            naive[g, p] += 1
    np.testing.assert_array_equal(confusion_matrix(gt5, pred, 5), naive)


@pytest.mark.parametrize(("hw", "radii"), [((1024, 2048), [1, 2, 4, 6, 8]), ((2448, 2448), [1, 4, 7, 10, 13]),
                                          ((5000, 5000), [1, 7, 13, 20, 26]), ((512, 512), [1, 1, 1, 2, 2]),
                                          ((100, 100), [1, 1, 1, 1, 1])])
def test_mba_radii(hw, radii):
    assert mba_radii(*hw) == radii


def test_ellipse_kernel_formula():
    for r in range(0, 12):
        k = ellipse_kernel(r)
        dy = np.arange(-r, r + 1)[:, None]
        dx = np.arange(-r, r + 1)[None, :]
        ref = np.abs(dx) <= np.round(np.sqrt(np.maximum(r * r - dy * dy, 0)))
        np.testing.assert_array_equal(k.astype(bool), ref)


def test_mba_vector_v1_binary():
    gt = np.zeros((40, 60), np.uint8)
    gt[10:30, 15:45] = 1
    pred = np.zeros_like(gt)
    pred[10:30, 17:47] = 1
    assert boundary_accuracy(gt, pred, None) == pytest.approx(0.7857142857142857, abs=1e-15)


def test_mba_vector_v2_multiclass():
    gt = np.zeros((1024, 2048), np.uint8)
    gt[:, 1024:] = 1
    gt[300:700, 300:900] = 2
    gt[500:540, 1500:1700] = 255
    pred = gt.copy()
    pred[300:700, 300:900] = 0
    pred[300:700, 303:903] = 2
    pred[300:700, 300:303] = 0
    pred[gt == 255] = 7
    assert boundary_accuracy(gt, pred, 255) == pytest.approx(0.910997558455952, abs=1e-12)


def _naive_mba(gt, pred, ignore):
    """Shift-loop reference: band = clipped neighbourhood holds >= 2 labels (baselines.md §1.3)."""
    h, w = gt.shape
    accs = []
    for r in mba_radii(h, w):
        k = ellipse_kernel(r).astype(bool)
        mx = np.full(gt.shape, -1)
        mn = np.full(gt.shape, 1 << 20)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if not k[dy + r, dx + r]:
                    continue
                src = np.full((h + 2 * r, w + 2 * r), -1)
                src[r:r + h, r:r + w] = gt
                win = src[r + dy:r + dy + h, r + dx:r + dx + w]
                mx = np.maximum(mx, win)
                mn = np.minimum(mn, np.where(win < 0, 1 << 20, win))
        band = (mx != mn) & (gt != ignore)
        accs.append((pred[band] == gt[band]).mean())
    return float(np.mean(accs))


def test_mba_matches_shift_reference():
    rng = np.random.default_rng(1)
    for _ in range(3):
        gt = np.kron(rng.integers(0, 4, (12, 20)), np.ones((25, 25), np.int64)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.01] = 255
        pred = np.where(rng.random(gt.shape) < 0.2, rng.integers(0, 4, gt.shape), gt)
        assert boundary_accuracy(gt, pred, 255) == pytest.approx(_naive_mba(gt, pred, 255), abs=1e-12)


def test_mba_border_is_not_boundary_and_empty_band_skipped():
    gt = np.ones((50, 80), np.uint8)
    assert np.isnan(boundary_accuracy(gt, gt, None))
    ev = SegEvaluator(num_classes=2, ignore_index=None)
    ev.update(gt, gt)
    out = ev.compute()
    assert out["mba_skipped"] == 1 and out["mba_images"] == 0


def test_scoring_cost_cityscapes_size():
    rng = np.random.default_rng(0)
    gt = np.kron(rng.integers(0, 19, (32, 64)), np.ones((32, 32), np.int64)).astype(np.uint8)
    pred = np.where(rng.random(gt.shape) < 0.1, 0, gt).astype(np.uint8)
    ev = SegEvaluator(num_classes=19)
    ev.update(gt, pred)
    t = time.perf_counter()
    ev.update(gt, pred)
    # measured ~0.1 s on 2 cores; the bound leaves room for a loaded CI machine
    assert time.perf_counter() - t < 2.0


def test_inria_variants_hand_computed():
    from bench.evaluation.metrics import iou_building, metric_variant, miou_2class

    cm = np.array([[90, 10], [5, 15]])  # background 90/105, building 15/30
    assert miou_2class(cm) == pytest.approx((90 / 105 + 15 / 30) / 2)
    assert iou_building(cm) == pytest.approx(0.5)
    assert metric_variant("miou_2class", cm, "nan", ()) == miou_2class(cm)
    assert metric_variant("iou_building", cm, "nan", ()) == 0.5
    # FCtL's "mIoU" on Inria is mean(iou[1:]) of the two classes: the building IoU
    assert metric_variant("miou", cm, "nan", (0,)) == iou_building(cm)
    no_building = np.array([[100, 0], [0, 0]])
    assert np.isnan(iou_building(no_building)) and iou_building(no_building, "zero") == 0.0
    assert miou_2class(no_building) == 1.0 and miou_2class(no_building, "zero") == 0.5
    with pytest.raises(ValueError, match="two-class"):
        miou_2class(np.eye(3))


def test_deepglobe_class_0_variants():
    from bench.evaluation.metrics import metric_variant, miou_mmseg

    # 7 classes; class 5 (water) absent from ground truth and prediction
    cm = np.diag([50, 40, 30, 20, 10, 0, 5]).astype(np.int64)
    cm[0, 1] = 10  # "unknown" pixels predicted as urban: a false positive of urban, kept in the matrix
    iou = iou_per_class(cm, "zero")
    magnet = metric_variant("miou", cm, "zero", (0,))
    assert magnet == pytest.approx(np.mean(iou[1:]))  # MagNet/GLNet: IoU[1:], water scores 0
    assert iou[1] == pytest.approx(40 / 50) and iou[5] == 0.0
    mmseg = miou_mmseg(cm)  # all 7 classes, water NaN and left out
    assert mmseg == pytest.approx(np.mean([50 / 60, 40 / 50, 1, 1, 1, 1]))
    assert metric_variant("miou", cm, "nan", ()) == mmseg
    with pytest.raises(ValueError, match="unknown mIoU variant 'iou'"):
        metric_variant("iou", cm, "nan", ())


def test_variant_descriptions_name_who_uses_them():
    from bench.evaluation.metrics import describe_variant

    names = ("unknown", "urban", "agriculture", "rangeland", "forest", "water", "barren")
    magnet = describe_variant("miou", names, "zero", (0,))
    assert "classes 1-6 (class 0 'unknown' excluded from the mean, its pixels kept" in magnet
    assert "scores 0 (`zero`: MagNet, GLNet, FCtL)" in magnet
    assert "mean over all 7 classes" in describe_variant("miou", names, "nan", ())
    assert "mmsegmentation" in describe_variant("miou_mmseg", names, "nan", ())
    assert "ISDNet" in describe_variant("iou_building", ("background", "building"), "nan", ())
