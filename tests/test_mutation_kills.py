"""Tests written for the mutants ``make mutation`` left alive (docs/mutation.md).

Each test names, in its docstring, the one-line changes it catches. Expected values are worked
out by hand in the comments or come from an independent naive implementation in this file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bench.evaluation.metrics import (
    SegEvaluator,
    boundary_accuracy,
    confusion_matrix,
    iou_per_class,
    mba_radii,
    mean_iou,
)
from magnet import scoring

# --- bench.evaluation.metrics --------------------------------------------------------------------


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_a_value_equal_to_the_class_count_is_outside_the_class_set(which):
    """``arr >= num_classes`` -> ``>``; the message's range ``num_classes - 1`` -> ``+ 1`` / ``- 2``."""
    ok = np.array([[0, 1], [2, 0]])
    bad = np.array([[0, 3], [2, 0]])  # 3 classes: 3 is one past the last class
    gt, pred = (bad, ok) if which == "gt" else (ok, bad)
    name = "ground-truth label" if which == "gt" else "prediction"
    with pytest.raises(ValueError, match=rf"^{name} values \[3\] outside the class set 0\.\.2 \(ignore_index=255\)$"):
        confusion_matrix(gt, pred, 3)


def test_the_error_lists_the_first_ten_bad_values_sorted():
    """``[:10]`` -> ``[:11]``: twelve distinct bad predictions, the ten smallest named."""
    pred = np.arange(5, 17).reshape(3, 4)  # 5..16, all >= 5 classes
    gt = np.zeros((3, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"values \[5, 6, 7, 8, 9, 10, 11, 12, 13, 14\] outside"):
        confusion_matrix(gt, pred, 5)


def test_unknown_absent_policy_is_named():
    """The ValueError's message -> None."""
    with pytest.raises(ValueError, match=r"absent must be one of \('nan', 'zero'\), got 'skip'"):
        iou_per_class(np.eye(2), "skip")


def test_a_class_with_a_union_of_one_pixel_scores_its_iou():
    """``union > 0`` -> ``union > 1`` in the NaN guard: one pixel of class 0, predicted right."""
    cm = np.array([[1, 0], [0, 5]])
    np.testing.assert_array_equal(iou_per_class(cm, "nan"), [1.0, 1.0])


def test_mean_over_nothing_is_nan_without_a_warning():
    """``if vals.size`` -> ``or True`` (mean of an empty array warns); ``float("nan")`` -> ``float(None)``
    or ``float("XXnanXX")``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mean_iou(np.array([np.nan, np.nan])))
        assert np.isnan(mean_iou(np.array([0.5, 0.7]), excluded=(0, 1)))


def test_mba_radii_where_the_divisor_matters():
    """``/ 300`` -> ``/ 301``. W + H = 1800: max_r = 6, radii 1 + int((6 - 1) / 5 * i) = 1 + i.
    With 301 the second radius would be 1 + int(0.996) = 1."""
    assert mba_radii(900, 900) == [1, 2, 3, 4, 5]


def _two_labels(a: int, b: int) -> np.ndarray:
    gt = np.full((40, 40), a, dtype=np.int64)
    gt[:, 20:] = b
    return gt


@pytest.mark.parametrize(("a", "b"), [(0, 300), (44, 300), (0, 256), (0, 65535)])
def test_mba_of_wide_labels_equals_that_of_the_same_map_relabelled(a, b):
    """The morphology dtype: ``and`` -> ``or``; ``>= 0`` -> ``> 0`` / ``>= 1``; ``<= 255`` -> ``<= 256``;
    ``<= 65535`` -> ``< 65535``. Two labels that would collide when wrapped to uint8 (300 -> 44,
    256 -> 0) or that need uint16 must give the mBA of the same map labelled 0/1."""
    gt = _two_labels(a, b)
    pred = gt.copy()
    pred[:5] = a  # some boundary pixels wrong
    small_gt, small_pred = (gt == b).astype(np.int64), (pred == b).astype(np.int64)
    expected = boundary_accuracy(small_gt, small_pred)
    assert not np.isnan(expected) and expected < 1.0
    assert boundary_accuracy(gt, pred) == expected


@pytest.mark.parametrize("bad", [-1, 65536])
def test_mba_refuses_labels_outside_uint16(bad):
    """``<= 65535`` -> ``<= 65536`` and the ``or`` mutants (which wrap -1 or 65536 silently); the message."""
    gt = _two_labels(0, bad)
    with pytest.raises(ValueError, match=r"^labels for mBA must lie in 0\.\.65535$"):
        boundary_accuracy(gt, np.zeros_like(gt))


def test_evaluator_ignores_the_ignore_index_in_both_metrics():
    """``score_image`` passing None (or nothing) instead of ``self.ignore_index`` to the confusion matrix
    or to the mBA. Left half class 0, right half class 1, a void (255) column at the boundary that is
    predicted 0: ignored, the prediction is perfect."""
    gt = _two_labels(0, 1)
    gt[:, 19] = 255
    pred = np.where(gt == 1, 1, 0)
    ev = SegEvaluator(2)
    cm, mba = ev.update(gt, pred)
    # 40 rows x 19 columns of class 0 and 40 x 20 of class 1, all right; the void column not counted
    np.testing.assert_array_equal(cm, [[760, 0], [0, 800]])
    assert mba == 1.0


def test_evaluator_counts_are_int64_and_skips_accumulate():
    """``reset``'s ``dtype=np.int64`` dropped (float counts); ``mba_skipped += 1`` -> ``= 1``."""
    ev = SegEvaluator(2, ignore_index=None)
    flat = np.zeros((8, 8), dtype=np.int64)  # one label only: no boundary, mBA skipped
    ev.update(flat, flat)
    ev.update(flat, flat)
    ev.update(_two_labels(0, 1), _two_labels(0, 1))
    assert ev.cm.dtype == np.int64 and ev.mba_skipped == 2 and ev.compute()["mba_skipped"] == 2
    ev.reset()
    assert ev.cm.dtype == np.int64 and ev.cm.sum() == 0


def test_evaluator_applies_its_absent_policy_and_excluded_classes():
    """``compute`` dropping ``self.absent`` or ``self.excluded``. Classes 0 and 1 present, class 2 absent.
    cm [[3, 1, 0], [1, 3, 0], [0, 0, 0]]: IoU 0 = 3 / 5, IoU 1 = 3 / 5, class 2 absent."""
    ev = SegEvaluator(3, ignore_index=None, absent="zero", excluded=(0,))
    ev.add(np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]]), 0.5)
    out = ev.compute()
    assert out["iou"] == [0.6, 0.6, 0.0]  # zero: the absent class scores 0
    assert out["miou"] == pytest.approx(0.3)  # classes 1 and 2: (0.6 + 0) / 2
    nan = SegEvaluator(3, ignore_index=None)
    nan.add(np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]]), 0.5)
    assert nan.compute()["miou"] == pytest.approx(0.6)


# --- magnet.scoring ------------------------------------------------------------------------------


def test_scoring_errors_name_the_problem():
    """The messages of ``check_behaviour``, ``margin`` and ``stage_points`` -> None."""
    with pytest.raises(ValueError, match=r"behaviour must be one of \('released', 'paper'\), got 'x'"):
        scoring.check_behaviour("x")
    with pytest.raises(ValueError, match=r"margin needs at least 2 classes, got shape \(1, 2, 2\)"):
        scoring.margin(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"n_points must be > 0 .* got 0"):
        scoring.stage_points(0, 100, 1, 1)


def test_argmax_channels_is_int64():
    """``dtype=torch.int64`` dropped from the index map (float labels)."""
    probs = torch.tensor([[[0.1, 0.7]], [[0.9, 0.3]]])
    out = scoring.argmax_channels(probs)
    assert out.dtype == torch.int64 and out.tolist() == [[1, 0]]


def _naive_median(x: np.ndarray, k: int) -> np.ndarray:
    """k x k median with zero padding, one window at a time."""
    pad = (k - 1) // 2
    p = np.pad(x, pad)
    return np.array([[np.median(p[i:i + k, j:j + k]) for j in range(x.shape[1])] for i in range(x.shape[0])])


@pytest.mark.parametrize("budget", [3 * 3 * 9, 3 * 3 * 9 * 2, 1 << 23])
def test_median_blur_in_row_blocks_equals_the_naive_median(monkeypatch, budget):
    """The row-block loop: ``+ 2 * pad`` -> ``+ 3 * pad`` and ``torch.cat(out, 0)`` -> ``(out, 1)`` only show
    with more than one block, so the budget is cut to 1 and 2 rows of a 7 x 9 map."""
    monkeypatch.setattr(scoring, "_MEDIAN_BUDGET", budget)
    x = torch.from_numpy(np.random.default_rng(0).random((7, 9)).astype(np.float32))
    np.testing.assert_array_equal(scoring.median_blur(x, 3).numpy(), _naive_median(x.numpy(), 3).astype(np.float32))


@pytest.mark.parametrize("behaviour", ["released", "paper"])
def test_patch_order_keeps_ties_in_index_order(behaviour):
    """``stable=True`` dropped or False: 1000 equal scores (the CPU sort is unstable at this size)
    must keep their index order, as the released code's stable sort does."""
    order = scoring.patch_order(torch.zeros(1000), behaviour)
    assert torch.equal(order, torch.arange(1000))


def test_two_points_is_an_absolute_count():
    """``n_points > 1`` -> ``> 2``: K = 2 is two points (min(2, 100 * 1 / 1)), not a fraction 2 of the area."""
    assert scoring.stage_points(2, 100, 1, 1) == 2
    assert scoring.stage_points(1, 100, 1, 2) == 50  # K = 1 is a fraction: int(100 * 1 * 1 / 2)


def test_select_points_for_zero_and_one_point():
    """``k <= 0`` -> ``k <= 1`` (one point returns none); the empty result's ``zeros(0, dtype=int64)`` ->
    ``zeros(1)``, no dtype, or no size."""
    score = torch.tensor([[0.1, 0.9], [0.4, 0.2]])
    assert scoring.select_points(score, 1, None).tolist() == [1]
    empty = scoring.select_points(score, 0, None)
    assert empty.shape == (0,) and empty.dtype == torch.int64
