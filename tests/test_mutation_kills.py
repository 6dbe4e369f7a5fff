"""Tests written for the mutants ``make mutation`` left alive (docs/mutation.md).

Each test names, in its docstring, the one-line changes it catches. Expected values are worked
out by hand in the comments or come from an independent naive implementation in this file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

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


def test_evaluator_without_ignore_index_refuses_255():
    """``score_image`` calling ``confusion_matrix`` without ``self.ignore_index`` (so with its default 255):
    an evaluator built with ``ignore_index=None`` must reject a 255 label, not drop it."""
    gt = _two_labels(0, 1)
    gt[0, 0] = 255
    with pytest.raises(ValueError, match=r"ground-truth label values \[255\] outside the class set 0\.\.1"):
        SegEvaluator(2, ignore_index=None).update(gt, np.zeros_like(gt))


def test_evaluator_mba_is_the_mean_of_its_images_and_nan_without_one():
    """``compute``'s ``"mba"`` key renamed; its ``if self.mba_values`` -> ``and False`` (always NaN) or
    ``or True`` (the mean of nothing, with a warning)."""
    ev = SegEvaluator(2, ignore_index=None)
    for mba in (0.2, 0.3, 0.7):
        ev.add(np.eye(2, dtype=np.int64), mba)
    out = ev.compute()
    assert out["mba"] == pytest.approx(0.4) and out["mba_images"] == 3
    empty = SegEvaluator(2, ignore_index=None)
    empty.add(np.eye(2, dtype=np.int64), float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(empty.compute()["mba"])


def test_iou_building_refuses_a_matrix_without_class_1():
    """``or`` -> ``and`` and ``<= building`` -> ``< building`` in the shape check; its message -> None."""
    from bench.evaluation.metrics import iou_building

    with pytest.raises(ValueError, match=r"iou_building needs class 1 in the confusion matrix, got shape \(1, 1\)"):
        iou_building(np.ones((1, 1)))
    with pytest.raises(ValueError, match=r"got shape \(4,\)"):
        iou_building(np.ones(4))


def test_variant_sentences_word_for_word():
    """The caption sentences of ``describe_variant`` / ``describe_absent`` (each string mutated to
    ``XX...XX`` or another case), the ``", "`` join of several excluded classes, the range form of
    three or more consecutive kept classes (``len(ids) > 2`` -> ``> 3``), the policy passed on for
    the 2-class variant, and the ``'?'`` of a one-class dataset (``n > 1`` -> ``>= 1`` / ``or True``)."""
    from bench.evaluation.metrics import describe_variant

    zero = "a class absent from ground truth and prediction scores 0 (`zero`: MagNet, GLNet, FCtL)"
    nan = ("a class absent from ground truth and prediction is NaN and left out of the mean "
           "(`nan`: mmsegmentation, cityscapesScripts)")
    two = ("bg", "building")
    assert describe_variant("miou", two, "zero", ()) == f"mIoU: mean over all 2 classes; {zero}"
    assert describe_variant("miou_2class", two, "zero", ()) == (
        f"mIoU 2-class: mean of the IoU of both classes (bg, building); {zero}")
    assert describe_variant("miou_2class", two, "nan", ()).endswith(nan)
    building = ("IoU building: the IoU of class 1 '{}' alone, what GLNet, FCtL (mean of iou[1:] of two classes) "
                "and ISDNet report as Inria \"mIoU\"")
    assert describe_variant("iou_building", two, "nan", ()) == building.format("building")
    assert describe_variant("iou_building", ("only",), "nan", ()) == building.format("?")
    assert describe_variant("miou_mmseg", two, "nan", ()) == (
        "mIoU mmseg: mean over all 2 classes with absent classes NaN and left out "
        "(mmsegmentation's nanmean: ISDNet and its successors)")
    four = ("u", "a", "b", "c")
    assert describe_variant("miou", four, "nan", (0,)) == (
        "mIoU: mean over classes 1-3 (class 0 'u' excluded from the mean, its pixels kept in the confusion "
        f"matrix: MagNet, GLNet, FCtL); {nan}")
    assert describe_variant("miou", four, "nan", (0, 2)).startswith(
        "mIoU: mean over classes 1, 3 (class 0 'u', 2 'b' excluded from the mean")


# --- bench.evaluation.records and significance ---------------------------------------------------


def test_unit_and_failed_image_records_keep_the_tail_of_long_messages():
    """``"type": "unit"`` / ``"image"`` renamed; ``message[-4000:]`` -> ``[+4000:]`` / ``[-4001:]`` (and
    2000 for a failed image); ``display_name`` added always or never."""
    from bench.evaluation import records

    text = "".join(f"{i:05d}" for i in range(1200))  # 6000 characters, every slice distinct
    unit = records.unit_record("k", "m", "8x4", records.Status.ERROR, text)
    assert unit["type"] == "unit" and unit["message"] == text[-4000:] and "display_name" not in unit
    named = records.unit_record("k", "m", "8x4", records.Status.ERROR, "x", display_name="M")
    assert named["display_name"] == "M"
    failed = records.failed_image_record("k", "m", "8x4", "img", text, 3)
    assert failed["type"] == "image" and failed["message"] == text[-2000:]
    records.check(unit)
    records.check(failed)


def test_append_writes_sorted_keys_into_new_folders_and_after_an_empty_file(tmp_path):
    """``append``: ``mkdir(parents=True)`` dropped; ``sort_keys=True`` dropped; ``_ends_with_newline`` on an
    existing empty file (``seek(0, END)`` -> ``seek(END)`` / ``seek(1, END)``, ``tell() == 0`` -> ``== 1``,
    ``return True`` -> ``False``): the file must hold exactly one line, no leading blank one."""
    from bench.evaluation import records

    path = tmp_path / "a" / "b" / "records.jsonl"
    rec = records.unit_record("k", "m", "8x4", records.Status.ERROR, "why")
    records.append(path, rec)
    line = path.read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    keys = list(json.loads(line))
    assert keys == sorted(keys)
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    records.append(empty, rec)
    assert empty.read_text() == line


def test_read_skips_a_torn_line_and_goes_on(tmp_path: Path):
    """``continue`` -> ``break`` after a line that is not JSON."""
    from bench.evaluation import records

    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"torn": \n{"b": 2}\n')
    assert list(records.read(path)) == [{"a": 1}, {"b": 2}]


def test_bootstrap_names_a_record_without_an_image_id():
    """``_by_id``'s message -> None."""
    from bench.evaluation.significance import paired_bootstrap

    with pytest.raises(ValueError, match=r"side A: an image record has no 'image_id'"):
        paired_bootstrap([{"cm": [[1]]}], [{"image_id": "x", "cm": [[1]]}])


# --- bench.report.table_model: the cells ---------------------------------------------------------


def _unit(**kw):
    from bench.report.table_model import UnitResult

    return UnitResult("m", "M", "8x4", kw.pop("n_images", 2), kw.pop("status", "ok"), **kw)


def test_time_memory_and_difference_cells():
    """``fmt_time_ms`` / ``fmt_time_s`` / ``fmt_mem`` / ``fmt_diff``: the dash conditions (``or`` -> ``and``,
    ``n == 0`` -> ``n == 1``, ``and False``), the dash text, ``/ 1000`` -> ``/ 1001``, ``100 *`` -> ``101 *``
    or ``100 /``, and the defaults ``digits=2``, ``plus=True``."""
    from bench.report.table_model import fmt_diff, fmt_mem, fmt_time_ms, fmt_time_s

    one = _unit(time={"median": 12345.0, "iqr": 0.0, "mean": 12345.0, "n": 1})
    assert fmt_time_ms(one) == "12345 (0)" and fmt_time_s(one) == "12.345"
    none = _unit(time={"median": float("nan"), "iqr": float("nan"), "mean": float("nan"), "n": 0})
    assert fmt_time_ms(none) == "–" and fmt_time_s(none) == "–"
    assert fmt_time_ms(_unit()) == "–" and fmt_time_s(_unit()) == "–"  # no time recorded at all
    assert fmt_mem(_unit(memory=float("nan"))) == "–" and fmt_mem(_unit(memory=12.4)) == "12"
    assert fmt_diff(0.1234) == "+12.34" and fmt_diff(-0.05, plus=False) == "-5.00"
    assert fmt_diff(0.5, 1) == "+50.0" and fmt_diff(float("nan")) == "–"


def test_short_name_is_the_last_line_cut_to_the_limit():
    """``short_name``: the last non-empty line (``lines[-1] if lines``), ``""`` without one, kept whole at
    exactly ``limit`` characters (``<=`` -> ``<``), else cut to ``limit - 1`` plus ``…``."""
    from bench.report.table_model import short_name

    assert short_name("Traceback\n  frame\nValueError: bad\n\n", 40) == "ValueError: bad"
    assert short_name("\n \n", 10) == ""
    assert short_name("abcde", 5) == "abcde"
    assert short_name("abcdef", 5) == "abcd…"


def test_coverage_sentence():
    """``UnitResult.coverage``: the ids listed (``max_ids=3``), ``" and N more"`` (``>`` -> ``>=``, ``-`` ->
    ``+``), the ``", "`` join, the reason cut at ``max_reason=400``, and the stopped / not finished tails."""
    failed = {f"img{i}": f"reason {i}" for i in range(5)}
    res = _unit(n_images=2, failed=failed, expected=7)
    assert res.coverage() == ("2 of 7 images; failed: img0 (reason 0), img1 (reason 1), img2 (reason 2) "
                              "and 2 more")
    three = _unit(n_images=2, failed={k: failed[k] for k in ("img0", "img1", "img2")}, expected=5)
    assert three.coverage().endswith("img2 (reason 2)")
    long = _unit(n_images=1, failed={"a": "x" * 500}, expected=2)
    assert long.coverage() == "1 of 2 images; failed: a (" + "x" * 399 + "…)"
    assert _unit(n_images=1, expected=2, message="Traceback\nRuntimeError: died").coverage() == (
        "1 of 2 images; stopped: RuntimeError: died")
    assert _unit(n_images=1, expected=2).coverage() == "1 of 2 images; not finished"


def test_status_rows_name_the_status_in_words():
    """``status_row``: ``STATUS_TEXT.get(res.status, res.status)`` with either argument dropped."""
    from bench.report.table_model import status_row

    assert status_row(_unit(status="missing_checkpoint"), 3) == ["no weights", "–", "–"]
    assert status_row(_unit(status="not run"), 2) == ["not run", "–"]


def test_variants_pass_the_absent_policy_on_and_name_unknown_ones():
    """``metric_variant`` calling ``miou_2class`` / ``iou_building`` without ``absent`` (so with "nan");
    ``describe_variant``'s message for an unknown name -> None or ``list(None)``. Class 1 absent from
    both sides: "zero" scores it 0, "nan" leaves it out."""
    from bench.evaluation.metrics import describe_variant, metric_variant

    cm = np.array([[4, 0], [0, 0]])
    assert metric_variant("miou_2class", cm, "zero", ()) == 0.5
    assert metric_variant("miou_2class", cm, "nan", ()) == 1.0
    assert metric_variant("iou_building", cm, "zero", ()) == 0.0
    assert np.isnan(metric_variant("iou_building", cm, "nan", ()))
    with pytest.raises(ValueError, match=r"unknown mIoU variant 'x'; known: \['miou', 'miou_2class', "):
        describe_variant("x", ("a", "b"), "nan", ())
