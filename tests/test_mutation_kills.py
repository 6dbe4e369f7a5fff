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


# --- bench.runtime.measure -----------------------------------------------------------------------
# The CUDA branches run here on CPU-only machines through fakes of the few torch.cuda calls they
# make (a torch.device("cuda") can be built without a GPU); /proc files are replaced by given text.

_MIB = 1 << 20


class _FakeCuda:
    """Records the torch.cuda calls of bench.runtime.measure and answers them with fixed byte counts."""

    def __init__(self, monkeypatch, allocated: int = 0, peak: int = 0, reserved: int = 0) -> None:
        self.calls: list[tuple[str, object]] = []
        answers = {"memory_allocated": allocated, "max_memory_allocated": peak, "max_memory_reserved": reserved}
        for name in ("synchronize", "reset_peak_memory_stats", *answers):
            monkeypatch.setattr(torch.cuda, name, self._recorder(name, answers.get(name)))

    def _recorder(self, name: str, answer: int | None):
        def call(device=None):
            self.calls.append((name, device))
            return answer
        return call


class _FakePath:
    """``Path`` for measure's /proc reads and writes: ``texts`` maps a path to its text (missing: OSError)."""

    def __init__(self, texts: dict[str, str], written: dict[str, str] | None = None) -> None:
        self.texts, self.written = texts, written if written is not None else {}

    def __call__(self, path: str):
        fake = self

        class _P:
            def read_text(self) -> str:
                if path not in fake.texts:
                    raise OSError(path)
                return fake.texts[path]

            def write_text(self, text: str) -> int:
                if path not in fake.texts:
                    raise OSError(path)
                fake.written[path] = text
                return len(text)
        return _P()


_STATUS = "Name:\tpython\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t4\n"


def test_sync_and_timed_wait_for_cuda_and_report_milliseconds(monkeypatch):
    """``sync``: ``== "cuda"`` -> ``!=`` or ``"XXcudaXX"``, ``synchronize(None)``; ``timed``: ``sync`` before or
    after dropped or given None, ``* 1e3`` -> ``/ 1e3``, ``- start`` -> ``+ start``, the result replaced.
    The clock reads 10.0 s then 10.25 s: 250 ms."""
    from bench.runtime import measure

    cuda = _FakeCuda(monkeypatch)
    gpu = torch.device("cuda", 0)
    measure.sync(torch.device("cpu"))
    assert cuda.calls == []
    measure.sync(gpu)
    assert cuda.calls == [("synchronize", gpu)]
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    cuda.calls.clear()
    result, ms = measure.timed(lambda: (cuda.calls.append(("fn", None)), "out")[1], gpu)
    assert result == "out" and ms == pytest.approx(250.0)
    assert cuda.calls == [("synchronize", gpu), ("fn", None), ("synchronize", gpu)]


def test_load_average_is_the_one_minute_value(monkeypatch):
    """``getloadavg()[0]`` -> ``[1]``; None where the OS has no load average."""
    from bench.runtime import measure

    monkeypatch.setattr(measure.os, "getloadavg", lambda: (1.5, 2.5, 3.5))
    assert measure.load_average() == 1.5

    def missing():
        raise OSError("no load average")
    monkeypatch.setattr(measure.os, "getloadavg", missing)
    assert measure.load_average() is None


def test_status_fields_hwm_reset_and_ru_maxrss(monkeypatch):
    """``_status_kib``: the path, the pattern (``^``, ``:\\s+``, `` kB``, ``re.MULTILINE`` dropped: only the
    first line would match), ``group(1)``, None for a missing field or file; ``_reset_hwm``: the path,
    the ``"5"`` written, True / False returned; ``_ru_maxrss_bytes``: ``RUSAGE_SELF``, KiB on Linux
    (``* 1024`` -> ``* 1025``) and bytes on macOS (``"darwin"`` mutated, ``==`` -> ``!=``)."""
    from bench.runtime import measure

    written: dict[str, str] = {}
    monkeypatch.setattr(measure, "Path", _FakePath({"/proc/self/status": _STATUS, "/proc/self/clear_refs": ""},
                                                   written))
    assert measure._status_kib("VmRSS") == 1024 and measure._status_kib("VmHWM") == 2048
    assert measure._status_kib("HWM") is None  # a field name only matches at the start of a line
    assert measure._status_kib("Threads") is None  # no kB unit
    assert measure._reset_hwm() is True and written == {"/proc/self/clear_refs": "5"}
    monkeypatch.setattr(measure, "Path", _FakePath({}))
    assert measure._status_kib("VmRSS") is None and measure._reset_hwm() is False

    class _Usage:
        ru_maxrss = 3

    who: list[int] = []
    monkeypatch.setattr(measure.resource, "getrusage", lambda w: (who.append(w), _Usage())[1])
    monkeypatch.setattr(measure.sys, "platform", "linux")
    assert measure._ru_maxrss_bytes() == 3 * 1024
    monkeypatch.setattr(measure.sys, "platform", "darwin")
    assert measure._ru_maxrss_bytes() == 3
    assert who == [measure.resource.RUSAGE_SELF] * 2


def test_memory_probe_on_cpu_with_and_without_a_resettable_hwm(monkeypatch):
    """``MemoryProbe`` on CPU: ``can_reset`` (``!= "cuda"`` -> ``==``, ``and`` -> ``or``, ``_reset_hwm`` not
    called), ``baseline_bytes = 0`` -> 1, ``setup_done``'s VmRSS field and ``* 1024``, its ru_maxrss
    fallback, ``start`` resetting only when it can, ``stop``'s field names, VmHWM (not another field),
    ``hwm * 1024``, ``/ MIB``, the delta ``peak - baseline`` clipped at 0 (``max(.., 0)`` -> 1), the
    method name of each path and ``mem_reserved_mib`` None. VmRSS 1024 KiB after setup, VmHWM 2048 KiB
    at the end: peak 2 MiB, delta 1 MiB."""
    from bench.runtime import measure

    resets: list[int] = []
    status = {"VmRSS": 1024, "VmHWM": 2048}
    monkeypatch.setattr(measure, "_reset_hwm", lambda: (resets.append(1), True)[1])
    monkeypatch.setattr(measure, "_status_kib", lambda field: status.get(field))
    monkeypatch.setattr(measure, "_ru_maxrss_bytes", lambda: 3 * _MIB)
    probe = measure.MemoryProbe(torch.device("cpu"))
    assert probe.can_reset is True and probe.baseline_bytes == 0 and probe.device == torch.device("cpu")
    probe.setup_done()
    assert probe.baseline_bytes == 1024 * 1024
    probe.start()
    assert len(resets) == 2  # once to learn that it can, once before the call
    assert probe.stop() == {"mem_method": "rss_hwm_reset", "mem_peak_mib": 2.0, "mem_peak_delta_mib": 1.0,
                            "mem_reserved_mib": None}
    status["VmHWM"] = 512  # a peak below the baseline: the delta is clipped at 0
    assert probe.stop()["mem_peak_delta_mib"] == 0.0

    monkeypatch.setattr(measure, "_reset_hwm", lambda: (resets.append(1), False)[1])
    resets.clear()
    fixed = measure.MemoryProbe(torch.device("cpu"))
    assert fixed.can_reset is False
    del status["VmRSS"]
    fixed.setup_done()
    assert fixed.baseline_bytes == 3 * _MIB  # no VmRSS: the lifetime maximum
    fixed.baseline_bytes = 1 * _MIB
    fixed.start()
    assert len(resets) == 1  # only the constructor's try
    assert fixed.stop() == {"mem_method": "rss_subprocess", "mem_peak_mib": 3.0, "mem_peak_delta_mib": 2.0,
                            "mem_reserved_mib": None}


def test_memory_probe_on_cuda_reads_the_allocator(monkeypatch):
    """``MemoryProbe`` on CUDA (a fake allocator): ``can_reset`` False without trying ``_reset_hwm``;
    ``setup_done`` syncing and reading ``memory_allocated`` of the device; ``start`` syncing, resetting
    the peak and remembering what was allocated; ``stop``'s peak, delta (``peak - before`` -> ``+``) and
    reserved fields in MiB, each read for the probe's device (None passed instead), the field names and
    ``"cuda_allocator"``. 5 MiB allocated before, peak 12 MiB, 16 MiB reserved."""
    from bench.runtime import measure

    monkeypatch.setattr(measure, "_reset_hwm", lambda: pytest.fail("no /proc reset on CUDA"))
    gpu = torch.device("cuda", 0)
    cuda = _FakeCuda(monkeypatch, allocated=5 * _MIB, peak=12 * _MIB, reserved=16 * _MIB)
    probe = measure.MemoryProbe(gpu)
    assert probe.can_reset is False and probe.baseline_bytes == 0
    probe.setup_done()
    assert probe.baseline_bytes == 5 * _MIB
    assert cuda.calls == [("synchronize", gpu), ("memory_allocated", gpu)]
    cuda.calls.clear()
    probe.start()
    assert cuda.calls == [("synchronize", gpu), ("reset_peak_memory_stats", gpu), ("memory_allocated", gpu)]
    cuda.calls.clear()
    assert probe.stop() == {"mem_method": "cuda_allocator", "mem_peak_mib": 12.0, "mem_peak_delta_mib": 7.0,
                            "mem_reserved_mib": 16.0}
    assert cuda.calls == [("synchronize", gpu), ("max_memory_allocated", gpu), ("max_memory_reserved", gpu)]


def test_allocator_in_use_reads_glibc_tunables(monkeypatch):
    """``allocator_in_use``: the variable's name, ``TUNED_MALLOC in`` -> ``not in``, ``or ""`` (None
    unset), the two keys."""
    from bench.runtime import measure

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0:" + measure.TUNED_MALLOC)
    assert measure.allocator_in_use() == {"tuned": True, "glibc_tunables": "glibc.pthread.rseq=0:"
                                          + measure.TUNED_MALLOC}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    assert measure.allocator_in_use() == {"tuned": False, "glibc_tunables": "glibc.pthread.rseq=0"}
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert measure.allocator_in_use() == {"tuned": False, "glibc_tunables": None}


_CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU @ 2.00GHz: rev 1\n"
            "flags\t\t: fpu avx2 sse4_2 avx512f avx amx_tile foo\n")


def test_cpu_model_and_flags_from_cpuinfo(monkeypatch):
    """``cpu_model``: the path, the ``"model name"`` prefix, ``split(":", 1)[1]`` (a model name holding a
    colon keeps it), ``strip``, the ``platform.processor()`` / ``"unknown"`` fallbacks; ``cpu_flags``: the
    ``"flags"`` line, the known SIMD flags in ``_SIMD_FLAGS`` order (unknown ones dropped), [] without
    the file; ``device_name``: the CPU model for a CPU, the GPU's name for CUDA."""
    from bench.runtime import measure

    monkeypatch.setattr(measure, "Path", _FakePath({"/proc/cpuinfo": _CPUINFO}))
    assert measure.cpu_model() == "Example CPU @ 2.00GHz: rev 1"
    assert measure.cpu_flags() == ["sse4_2", "avx", "avx2", "avx512f", "amx_tile"]
    assert measure.device_name(torch.device("cpu")) == "Example CPU @ 2.00GHz: rev 1"
    asked: list[object] = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: (asked.append(d), "Fake GPU")[1])
    assert measure.device_name(torch.device("cuda", 1)) == "Fake GPU" and asked == [torch.device("cuda", 1)]
    monkeypatch.setattr(measure, "Path", _FakePath({}))
    monkeypatch.setattr(measure.platform, "processor", lambda: "x86_64")
    assert measure.cpu_model() == "x86_64" and measure.cpu_flags() == []
    monkeypatch.setattr(measure.platform, "processor", lambda: "")
    assert measure.cpu_model() == "unknown"


# --- bench.evaluation.records: the queries over a run's records ----------------------------------

# One unit "u" with images a (failed, then ok on a retry), b (ok), c (failed twice: the last reason
# wins), d (failed without a message), e (failed with neither message nor status); records of
# another unit "v" and of other types with the same image ids must not count.
_RECS = [
    {"type": "image", "unit_key": "u", "image_id": "a", "status": "error", "message": "torn", "n_expected": 5},
    {"type": "image", "unit_key": "u", "image_id": "a", "status": "ok", "n_expected": 5},
    {"type": "unit", "unit_key": "u", "status": "oom", "message": "first"},
    {"type": "image", "unit_key": "u", "image_id": "b", "status": "ok", "n_expected": 4},
    {"type": "image", "unit_key": "v", "image_id": "c", "status": "ok", "n_expected": 9},
    {"type": "summary", "unit_key": "u", "image_id": "f", "status": "ok", "n_expected": 7},
    {"type": "image", "unit_key": "u", "image_id": "c", "status": "error", "message": "first reason"},
    {"type": "image", "unit_key": "u", "image_id": "c", "status": "error", "message": "second reason",
     "n_expected": None},
    {"type": "image", "unit_key": "u", "image_id": "d", "status": "error"},
    {"type": "image", "unit_key": "u", "image_id": "e"},
    {"type": "image", "unit_key": "v", "image_id": "g", "status": "error", "message": "other unit"},
    {"type": "unit", "unit_key": "v", "status": "error", "message": "other unit"},
    {"type": "unit", "unit_key": "u", "status": "error", "message": "last"},
    {"type": "summary", "unit_key": "u", "status": "ok"},
]


def test_record_queries_filter_by_type_unit_and_status():
    """``done_images`` / ``failed_images`` / ``expected_images`` / ``unit_status``: each ``r.get(...)`` key
    mutated or None, ``==`` <-> ``!=``, ``and`` <-> ``or``, the ``"image"`` / ``"unit"`` / ``"ok"`` literals,
    ``continue`` -> ``break``, the image id (``ok.add(None)``), the reason chain (``message or status or
    "failed"`` with ``and``, a key mutated, the fallback text), ``max`` -> ``min``, ``None`` for no count,
    and the last unit record (not the first)."""
    from bench.evaluation import records

    assert records.done_images(_RECS, "u") == {"a", "b"}
    assert records.done_images(_RECS, "w") == set()
    assert records.failed_images(_RECS, "u") == {"c": "second reason", "d": "error", "e": "failed"}
    assert records.failed_images(_RECS, "v") == {"g": "other unit"}
    assert records.expected_images(_RECS, "u") == 5
    assert records.expected_images(_RECS, "v") == 9
    assert records.expected_images(_RECS[2:4], "u") == 4
    assert records.expected_images([r for r in _RECS if r.get("n_expected") is None], "u") is None
    assert records.unit_status(_RECS, "u")["message"] == "last"
    assert records.unit_status(_RECS, "v")["message"] == "other unit"
    assert records.unit_status(_RECS[:2], "u") is None


def test_check_names_a_missing_status_and_read_skips_blank_lines(tmp_path: Path):
    """``check``: ``record.get("status", "")`` -> ``None`` / no default / ``"XXXX"`` (the message names the
    empty status); ``read``: ``continue`` -> ``break`` at a blank line."""
    from bench.evaluation import records

    with pytest.raises(records.RecordError, match=r"^image record: unknown status ''; known: "):
        records.check({"type": "image", "unit_key": "u"})
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"b": 2}\n')
    assert list(records.read(path)) == [{"a": 1}, {"b": 2}]


def test_training_fingerprint_reproduces_the_committed_reference_set():
    """``training_fingerprint``: ``json.dumps(..., sort_keys=True)`` (key order or another text), the sha256
    and ``[:12]``. The reference set's manifest stores the kernel set it was trained under
    (``machine``) and the fingerprint computed then: the same kernel set must give the same
    fingerprint, or every machine reads as a different one."""
    from bench.runtime import measure

    manifest = json.loads((Path(__file__).resolve().parents[1] / "weights" / "synthetic" / "manifest.json")
                          .read_text())
    machine = dict(reversed(list(manifest["machine"].items())))  # another key order: sort_keys must undo it
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure, "kernel_set", lambda: machine)
        assert measure.training_fingerprint() == manifest["fingerprint"]


def test_kernel_set_lists_the_kernel_choices(monkeypatch):
    """``kernel_set``: each key (mutated or renamed), the CPU model and SIMD flags, the ATen capability,
    only the ``KERNEL_ENV`` variables that are set (``in`` -> ``not in``), the versions and threads."""
    import cv2

    from bench.runtime import measure

    monkeypatch.setattr(measure, "cpu_model", lambda: "Example CPU")
    monkeypatch.setattr(measure, "cpu_flags", lambda: ["avx2"])
    for k in measure.KERNEL_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # not a kernel choice: left out
    assert measure.kernel_set() == {
        "cpu": "Example CPU", "simd": ["avx2"], "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {"ATEN_CPU_CAPABILITY": "avx2"}, "torch": torch.__version__, "numpy": np.__version__,
        "opencv": cv2.__version__, "threads": torch.get_num_threads()}


def test_machine_fingerprint_changes_with_each_of_its_parts(monkeypatch):
    """``machine_fingerprint``: each part of the key dropped or replaced (device name, core count, threads,
    torch version, device type) and ``[:12]``: a 12-digit hex that changes when any part does."""
    from bench.runtime import measure

    cpu = torch.device("cpu")
    asked: list[torch.device] = []
    monkeypatch.setattr(measure, "device_name", lambda d: (asked.append(d), "Example CPU")[1])
    base = measure.machine_fingerprint(cpu)
    assert len(base) == 12 and int(base, 16) >= 0 and measure.machine_fingerprint(cpu) == base
    assert asked == [cpu, cpu]  # the name of this device
    seen = {base}
    changes = [(measure, "device_name", lambda d: "Other CPU"), (measure.os, "cpu_count", lambda: 977),
               (measure.torch, "get_num_threads", lambda: 977), (measure.torch, "__version__", "0.0.1")]
    for owner, name, value in changes:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(owner, name, value)
            seen.add(measure.machine_fingerprint(cpu))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Example CPU")
    seen.add(measure.machine_fingerprint(torch.device("cuda", 0)))  # same name, another device type
    assert len(seen) == 6


def test_versions_name_each_library_and_the_optional_ones(monkeypatch):
    """``_versions``: each key and value, cuDNN's version only where it is available, the optional
    libraries read from ``sys.modules`` (``is not None`` -> ``is None``) with ``"present"`` for one
    without ``__version__``."""
    import platform
    import sys
    import types

    import cv2

    from bench.runtime import measure

    monkeypatch.setitem(sys.modules, "mmseg", types.SimpleNamespace(__version__="9.9"))
    monkeypatch.setitem(sys.modules, "mmcv", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "pydensecrf", types.SimpleNamespace(__version__="1.0"))
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: False)
    assert measure._versions() == {"python": platform.python_version(), "torch": torch.__version__,
                                   "numpy": np.__version__, "opencv": cv2.__version__, "cuda": torch.version.cuda,
                                   "cudnn": None, "mmseg": "9.9", "mmcv": "present", "pydensecrf": "1.0"}
    monkeypatch.delitem(sys.modules, "mmseg")
    assert "mmseg" not in measure._versions()
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    assert measure._versions()["cudnn"] == "90100"


def test_git_runs_in_the_repository_and_strips_its_output(monkeypatch):
    """``_git``: the ``git`` command and its arguments, run in the repository (``cwd=_REPO``) with output
    captured as text, ``check=True`` (a failing git gives None, not its error text) and a timeout, the
    output stripped; None when git is missing (OSError) or fails (SubprocessError)."""
    import subprocess
    import types

    from bench.runtime import measure

    calls: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(measure.subprocess, "run",
                        lambda argv, **kw: (calls.append((argv, kw)), types.SimpleNamespace(stdout="  abc123\n"))[1])
    assert measure._git("rev-parse", "HEAD") == "abc123"
    (argv, kw), = calls
    assert argv == ["git", "rev-parse", "HEAD"] and kw["cwd"] == measure._REPO
    assert kw["capture_output"] is True and kw["text"] is True and kw["check"] is True and kw["timeout"] > 0

    for err in (OSError("no git"), subprocess.CalledProcessError(128, "git"), subprocess.TimeoutExpired("git", 10)):
        def fail(*args, err=err, **kwargs):
            raise err
        monkeypatch.setattr(measure.subprocess, "run", fail)
        assert measure._git("status") is None


def test_provenance_fields(monkeypatch):
    """``provenance``: every key (renamed or mutated), the git calls (``rev-parse HEAD``; ``status
    --porcelain --untracked-files=no``), ``git_dirty`` as ``bool(status)`` and None when git is
    unavailable, the device, names, counts, flags, allocator, seed, host and fingerprint, each from
    its own source. Records already written hold these keys; ``bench compare`` and the tables read
    them by name."""
    from bench.runtime import measure

    git_out = {("rev-parse", "HEAD"): "abc123", ("status", "--porcelain", "--untracked-files=no"): " M x.py"}
    monkeypatch.setattr(measure, "_git", lambda *args: git_out.get(args))
    monkeypatch.setattr(measure, "_versions", lambda: {"torch": "t"})
    monkeypatch.setattr(measure, "device_name", lambda d: f"name of {d}")
    monkeypatch.setattr(measure, "cpu_model", lambda: "Example CPU")
    monkeypatch.setattr(measure, "allocator_in_use", lambda: {"tuned": True})
    monkeypatch.setattr(measure, "machine_fingerprint", lambda d: f"fp of {d}")
    monkeypatch.setattr(measure.socket, "gethostname", lambda: "host")
    monkeypatch.setattr(measure.os, "cpu_count", lambda: 7)
    monkeypatch.setattr(measure.torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(measure.torch, "are_deterministic_algorithms_enabled", lambda: True)
    monkeypatch.setattr(measure.torch.backends.cudnn, "benchmark", True)
    cpu = torch.device("cpu")
    assert measure.provenance(cpu, 11) == {
        "git_sha": "abc123", "git_dirty": True, "versions": {"torch": "t"}, "device": "cpu",
        "device_name": "name of cpu", "cpu": "Example CPU", "cpu_count": 7, "threads": 3, "cudnn_benchmark": True,
        "deterministic": True, "dtype": "float32", "allocator": {"tuned": True}, "seed": 11, "hostname": "host",
        "fingerprint": "fp of cpu"}
    git_out[("status", "--porcelain", "--untracked-files=no")] = ""
    assert measure.provenance(cpu, 0)["git_dirty"] is False
    del git_out[("status", "--porcelain", "--untracked-files=no")]
    assert measure.provenance(cpu, 0)["git_dirty"] is None


# --- bench.evaluation.significance ---------------------------------------------------------------


def test_stack_images_refuses_matrices_that_are_not_one_square_shape():
    """``stack_images``' shape check: ``or`` -> ``and`` (either one), and its message (None, or
    ``sorted(None)``): a 2 x 3 matrix, and a 2 x 2 beside a 3 x 3, each named."""
    from bench.evaluation.significance import stack_images

    with pytest.raises(ValueError, match=r"^confusion matrices must all be \(C, C\) with one C, got shapes \[\(2, 3\)\]$"):
        stack_images({"x": {"cm": [[1, 0, 0], [0, 1, 0]], "mba": None}}, ["x"])
    two = {"x": {"cm": [[1, 0], [0, 1]], "mba": 0.5}, "y": {"cm": np.eye(3, dtype=int).tolist(), "mba": None}}
    with pytest.raises(ValueError, match=r"got shapes \[\(2, 2\), \(3, 3\)\]$"):
        stack_images(two, ["x", "y"])


def test_batched_miou_equals_the_table_functions_at_small_unions():
    """``batched_miou``: ``np.maximum(union, 1.0)`` -> ``2.0`` ("zero" policy), the NaN guard ``union > 0``
    -> ``> 1``, a matrix with one class left to average (``n > 0`` -> ``n > 1``, ``np.maximum(n, 1)`` ->
    ``2``), the unknown-policy message and the default ``absent="nan"`` (mutated). Each matrix's value must be what ``iou_per_class`` and
    ``mean_iou`` (the tables' functions) give: a class of one pixel, a class absent, one class only."""
    from bench.evaluation.significance import batched_miou

    cms = np.array([[[1, 0, 0], [0, 5, 1], [0, 2, 3]],    # class 0: a union of one pixel
                    [[4, 0, 0], [0, 0, 0], [0, 0, 0]],    # classes 1 and 2 absent: one class to average
                    [[0, 0, 0], [0, 3, 1], [0, 0, 0]]])   # class 0 absent, class 2 predicted only
    for absent in ("nan", "zero"):
        expected = [mean_iou(iou_per_class(cm, absent)) for cm in cms]
        np.testing.assert_allclose(batched_miou(cms, absent), expected, rtol=0, atol=1e-15)
    assert batched_miou(cms[1:2], "nan").tolist() == [1.0]  # hand: class 0 alone, 4 / 4
    assert batched_miou(cms[:1], "zero").tolist() == pytest.approx([(1 + 5 / 8 + 3 / 6) / 3])
    with pytest.raises(ValueError, match=r"absent must be one of \('nan', 'zero'\), got 'skip'"):
        batched_miou(cms, "skip")
    np.testing.assert_array_equal(batched_miou(cms), batched_miou(cms, "nan"))  # the default policy


def test_interval_takes_the_central_percentiles_of_the_finite_differences():
    """``_interval``: ``tail = 100 * (1 - level) / 2`` (``* 2``, ``101 *``, ``/ 3``), the upper bound
    ``100 - tail`` (``101 -``), NaNs dropped before ranking, and the all-NaN case (``low`` / ``high`` NaN,
    not None; ``excludes_zero`` False, not None). Differences 0..100 with NaNs among them: at level
    0.9 the 5th and 95th percentiles are 5 and 95."""
    from bench.evaluation.significance import _interval

    boot = np.concatenate([np.arange(101.0), [np.nan, np.inf]])
    got = _interval(0.5, boot, 0.9)
    assert (got.diff, got.excludes_zero) == (0.5, True)
    assert (got.low, got.high) == pytest.approx((5.0, 95.0), abs=1e-9)  # 100 * (1 - 0.9) / 2 is 4.999...
    assert _interval(0.0, np.arange(101.0) - 50, 0.5).low == pytest.approx(-25.0, abs=1e-9)
    none = _interval(0.25, np.array([np.nan, np.nan]), 0.95)
    assert none.diff == 0.25 and np.isnan(none.low) and np.isnan(none.high) and none.excludes_zero is False


def _cm_record(image_id: str, cm, mba) -> dict:
    return {"image_id": image_id, "cm": np.asarray(cm).tolist(), "mba": mba}


def test_bootstrap_checks_its_arguments_and_names_the_sides():
    """``paired_bootstrap``'s checks: ``n_resamples < 1`` -> ``<= 1`` / ``< 2`` (one resample is allowed),
    ``0 < level < 1`` -> ``<=`` / ``< 2`` (0 and 1 are refused), the level message, side ``"B"`` in
    ``_by_id``'s message (None, ``"XXBXX"``, ``"b"``), the first three ids of each side when none is
    shared (``[:3]`` -> ``[:4]``), and the defaults kept in the result (``seed=0``, ``level``)."""
    from bench.evaluation.significance import paired_bootstrap

    a = [_cm_record(f"a{i}", [[2, 1], [0, 3]], 0.5) for i in range(5)]
    b = [_cm_record(f"b{i}", [[2, 1], [0, 3]], 0.5) for i in range(5)]
    one = paired_bootstrap(a, a, n_resamples=1)
    assert one.n_resamples == 1 and one.seed == 0 and one.level == 0.95
    for level in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^level must lie in \(0, 1\), got {level}$"):
            paired_bootstrap(a, a, level=level)
    with pytest.raises(ValueError, match=r"^side B: an image record has no 'image_id'"):
        paired_bootstrap(a, [{"cm": [[1]]}])
    with pytest.raises(ValueError, match=r"^no image in common: A has 5 image\(s\) \(e\.g\. \['a0', 'a1', 'a2'\]\), "
                                         r"B has 5 \(e\.g\. \['b0', 'b1', 'b2'\]\)$"):
        paired_bootstrap(a, b)


def test_bootstrap_leaves_excluded_classes_out_of_both_sides():
    """``paired_bootstrap`` dropping ``excluded`` from side A's observed mIoU or from its resampled
    mIoU. A and B differ only in the true positives of class 0 (cell [0, 0], which enters no other
    class's union): with class 0 excluded both sides have the same mIoU in every resample, so the
    observed difference and both ends of the interval are exactly 0."""
    from bench.evaluation.significance import paired_bootstrap

    base = [[[3, 1, 0], [0, 4, 2], [1, 0, 5]], [[1, 0, 1], [2, 6, 0], [0, 1, 2]], [[5, 2, 2], [0, 1, 0], [1, 1, 7]]]
    a = [_cm_record(f"i{k}", cm, 0.5) for k, cm in enumerate(base)]
    b = [_cm_record(f"i{k}", np.asarray(cm) + np.diag([9 + k, 0, 0]), 0.5) for k, cm in enumerate(base)]
    res = paired_bootstrap(a, b, excluded=(0,), n_resamples=50)
    assert (res.miou.diff, res.miou.low, res.miou.high) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(a, b, n_resamples=50).miou.diff < 0  # class 0 counted: B is better there


# --- bench.report.table_model: aggregation, selection and which rows compete ----------------------

def _info3():
    from bench.core.interface import DatasetInfo

    return DatasetInfo("t", ("a", "b", "c"), 255, ((0, 0, 0), (1, 1, 1), (2, 2, 2)))


def _image(image_id: str, cm, mba, time_ms: float, **extra) -> dict:
    return {"type": "image", "unit_key": "u", "image_id": image_id, "status": "ok", "cm": cm, "mba": mba,
            "time_ms": time_ms, "n_expected": 5, **extra}


def test_aggregate_of_a_unit_without_images_names_its_status_and_reasons():
    """``aggregate`` with no image recorded ok: the status (the unit record's, else ``"error"`` when images
    failed, else ``"not run"``), the message (the unit record's, else the failed images joined by
    ``"; "``, else ""), ``n_images`` 0, ``expected``, ``failed`` (each read for the unit's key, not None)."""
    from bench.report.table_model import aggregate

    info = _info3()
    failed = [{"type": "image", "unit_key": "u", "image_id": i, "status": "error", "message": f"bad {i}",
               "n_expected": 5} for i in ("q", "p")]
    other = [{"type": "image", "unit_key": "v", "image_id": "z", "status": "error", "message": "no", "n_expected": 9}]
    res = aggregate(failed + other, "u", "m", "8x4", info, "nan", (), "M")
    assert (res.status, res.message, res.n_images, res.expected) == ("error", "p: bad p; q: bad q", 0, 5)
    assert res.failed == {"p": "bad p", "q": "bad q"} and res.display == "M" and res.method == "m"
    unit = {"type": "unit", "unit_key": "u", "status": "oom", "message": "out of memory"}
    res = aggregate([*failed, unit], "u", "m", "8x4", info, "nan", (), "M")
    assert (res.status, res.message) == ("oom", "out of memory")
    res = aggregate([unit | {"message": ""}], "u", "m", "8x4", info, "nan", (), "M")
    assert (res.status, res.message) == ("oom", "")
    res = aggregate([{k: v for k, v in unit.items() if k != "message"}], "u", "m", "8x4", info, "nan", (), "M")
    assert (res.status, res.message) == ("oom", "")
    res = aggregate(other, "u", "m", "8x4", info, "nan", (), "M")
    assert (res.status, res.message, res.expected, res.failed) == ("not run", "", None, {})


def test_aggregate_of_a_unit_with_images_fills_every_field():
    """``aggregate`` over images: the row name from the records' ``display_name`` (else the given one),
    ``excluded`` passed to the mean, the mBA mean over the images that have one (no warning when none
    has: ``if mbas`` -> ``or True``), the memory field chosen by ``mem_method`` (the CUDA peak, else the
    RSS delta; ``"cuda_allocator"`` mutated), ``mem_method`` ("" when unrecorded), the device name (""
    when unrecorded), ``expected``, ``failed`` and the unit record's message (""), each dropped or
    mutated. Three images, one of them without an mBA; hand values in the comments."""
    from bench.report.table_model import aggregate

    info = _info3()
    prov = {"device_name": "Example CPU", "threads": 2}
    cms = [[[3, 1, 0], [0, 2, 0], [0, 0, 0]], [[1, 0, 0], [1, 4, 0], [0, 0, 2]], [[2, 0, 0], [0, 0, 0], [0, 1, 1]]]
    cuda = [_image(f"i{k}", cm, mba, t, display_name="Shown", mem_method="cuda_allocator", provenance=prov,
                   mem_peak_mib=100.0 + k, mem_peak_delta_mib=10.0 - k)
            for k, (cm, mba, t) in enumerate(zip(cms, (0.2, None, 0.5), (30.0, 10.0, 20.0)))]
    failed = {"type": "image", "unit_key": "u", "image_id": "i9", "status": "error", "message": "torn"}
    unit = {"type": "unit", "unit_key": "u", "status": "error", "message": "stopped early"}
    res = aggregate([*cuda, failed, unit], "u", "m", "8x4", info, "nan", (0,), "M")
    # summed cm [[6, 1, 0], [1, 6, 0], [0, 1, 3]]: IoU 6/8, 6/9, 3/4; class 0 excluded: (6/9 + 3/4) / 2
    assert res.iou == pytest.approx([6 / 8, 6 / 9, 3 / 4]) and res.miou == pytest.approx((6 / 9 + 3 / 4) / 2)
    assert (res.display, res.n_images, res.status, res.mba_skipped) == ("Shown", 3, "ok", 1)
    assert res.mba == pytest.approx(0.35) and res.time["median"] == 20.0
    assert (res.memory, res.mem_method, res.device, res.threads) == (102.0, "cuda_allocator", "Example CPU", 2)
    assert (res.expected, res.failed, res.message) == (5, {"i9": "torn"}, "stopped early")

    plain = [_image(f"i{k}", cm, None, 1.0, mem_peak_mib=100.0 + k, mem_peak_delta_mib=10.0 - k)
             for k, cm in enumerate(cms)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the mean of no mBA is NaN without "Mean of empty slice"
        res = aggregate(plain, "u", "m", "8x4", info, "nan", (), "M")
    assert np.isnan(res.mba) and res.mba_skipped == 3
    assert (res.display, res.memory, res.mem_method, res.device, res.message) == ("M", 10.0, "", "", "")
    assert res.miou == pytest.approx((6 / 8 + 6 / 9 + 3 / 4) / 3)


def test_partial_note_competing_and_comparable():
    """``partial_note``: its sentence word for word (the prefix, the ``"; "`` join, the full stop) and ""
    without partial units; ``competing``: all-partial rows over one image set compete (``and False``,
    ``all(None)``, ``!=``, ``set(None)``; a single partial row: ``ok[1]``), over different sets none
    does (``or True``, ``ok or all``); ``comparable``: two partial units over the same images
    (``set(None)``, ``!=``)."""
    from bench.report.table_model import comparable, competing, partial_note

    imgs = {"a": {}, "b": {}}
    p1 = _unit(n_images=2, images=dict(imgs), failed={"c": "torn"}, expected=3)
    p1.display = "P1"
    p2 = _unit(n_images=2, images=dict(imgs), failed={"c": "oom"}, expected=3)
    p2.display = "P2"
    p3 = _unit(n_images=1, images={"a": {}}, expected=3)
    full = _unit(n_images=3, images={"a": {}, "b": {}, "c": {}}, expected=3)
    assert partial_note([full, p1, p2]) == (
        "PARTIAL units (not every image evaluated; compared only with units over the same images): "
        "P1 at 8x4: 2 of 3 images; failed: c (torn); P2 at 8x4: 2 of 3 images; failed: c (oom).")
    assert partial_note([full]) == ""
    assert competing([p1, p2]) == [p1, p2] and competing([p1]) == [p1]
    assert competing([p1, p3]) == [] and competing([full, p1]) == [full]
    assert competing([_unit(status="not run")]) == []
    assert comparable(p1, p2) is True and comparable(p1, p3) is False and comparable(full, full) is True


def test_table_select_keeps_the_named_columns_and_moves_their_marks():
    """``Table.select``: the kept columns in the table's order, the rows cut to them, the bold / best marks
    re-indexed to the new column positions (marks of dropped columns gone), and the name, caption,
    notes, label, "ours" names, cited rows, rules and LaTeX layout copied (each dropped, None or
    mutated)."""
    from bench.report.table_model import Table

    t = Table("table9", "Cap", ["Method", "A", "B", "C"], rows=[["x", "1", "2", "3"], ["y", "4", "5", "6"]],
              bold={(0, 1), (1, 3)}, rule_before={1}, notes=["n1"], label="Table 9", best_ours={(0, 3)},
              best_previous={(1, 2), (1, 1)}, ours_names=["y"], cited={0}, wide=True, small="2pt", size="tiny")
    out = t.select(["C", "Method", "A", "Z"])
    assert out.header == ["Method", "A", "C"] and out.rows == [["x", "1", "3"], ["y", "4", "6"]]
    assert out.bold == {(0, 1), (1, 2)} and out.best_ours == {(0, 2)} and out.best_previous == {(1, 1)}
    assert (out.name, out.caption, out.notes, out.label, out.ours_names) == ("table9", "Cap", ["n1"], "Table 9", ["y"])
    assert (out.cited, out.rule_before, out.wide, out.small, out.size) == ({0}, {1}, True, "2pt", "tiny")
    out.notes.append("more")
    out.cited.add(1)
    assert t.notes == ["n1"] and t.cited == {0}  # copies, not the same lists and sets
