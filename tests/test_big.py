"""The BIG protocol (issue 22 item 2): readers of both layouts, the scorer, the papers' table, ``big-score``.

The folders are generated here (rectangles on 200x300 images; nothing from ../shared). Their
expected numbers are counted by hand in the comments, not taken from the code under test; the
published table's Avg Improve row is SegRefiner's printed one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.cli import main as cli
from bench.data.base import DataFormatError
from bench.data.big import BigFolder, detect_layout, refined_files
from bench.evaluation.boundary import binary_counts
from bench.evaluation.metrics import boundary_accuracy
from bench.evaluation.big_score import BigAccumulator, binarize, resize_to, score_object
from bench.report.big_tables import AVG_ROW, BigCell, avg_improve, big_table, published_table
from bench.report.table_format import to_latex, to_markdown

H, W = 200, 300  # radii 1 + int(((300 + 200) / 300 - 1) / 5 * i) = 1 for all five; BIoU d = round(0.02 * 360.6) = 7


def _rect(rows, cols, shape=(H, W)):
    m = np.zeros(shape, np.uint8)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = 255
    return m


GT = _rect((50, 149), (100, 199))  # 100 x 100
SHIFTED = _rect((50, 149), (104, 203))  # the same square 4 px to the right


def _image(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _write(path: Path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array if array.ndim == 2 else array[..., ::-1])


# two objects: "a" (the square), "b" (the same square); coarse sources "exact" (= gt) and "shift4"
# (a shifted, b exact); two methods: "identity" (refined = coarse) and "perfect" (refined = gt)
COARSE = {"exact": {"a": GT, "b": GT}, "shift4": {"a": SHIFTED, "b": GT}}


def make_cascadepsp(root: Path) -> Path:
    big = root / "big"
    for source, masks in COARSE.items():
        for stem, coarse in masks.items():
            _write(big / source / f"{stem}_im.jpg", _image(ord(stem)))
            _write(big / source / f"{stem}_gt.png", GT)
            _write(big / source / f"{stem}_seg.png", coarse)
            _write(root / "out" / "identity" / source / f"{stem}_mask.png", coarse)
            _write(root / "out" / "perfect" / source / f"{stem}_mask.png", GT)
    return big


def make_segrefiner(root: Path) -> Path:
    big = root / "data" / "big"
    for stem in ("a", "b"):
        _write(big / "test" / f"{stem}_im.jpg", _image(ord(stem)))
        _write(big / "test" / f"{stem}_gt.png", GT)
    for source, masks in COARSE.items():
        for stem, coarse in masks.items():
            _write(big / "coarse" / source / f"{stem}_im.jpg", _image(ord(stem)))
            _write(big / "coarse" / source / f"{stem}_seg.png", coarse)
            _write(root / "out" / "identity" / source / f"{stem}_refine.png", coarse)
            # half size: PIL's bilinear upsampling recovers the square exactly (its edges are even)
            half = cv2.resize(GT, (W // 2, H // 2), interpolation=cv2.INTER_NEAREST)
            _write(root / "out" / "perfect" / source / f"{stem}_refine.png", half)
    return big


# --- readers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [make_cascadepsp, make_segrefiner])
def test_both_layouts_pair_up(tmp_path, make):
    big = make(tmp_path)
    folder = BigFolder(big)
    assert folder.layout == ("cascadepsp" if make is make_cascadepsp else "segrefiner")
    assert folder.sources == ["exact", "shift4"] and folder.ids() == ["a", "b"] and len(folder) == 2
    item = folder[0]
    assert item.id == "a" and item.image.shape == (H, W, 3) and item.image.dtype == np.uint8
    assert item.gt.dtype == np.uint8 and np.array_equal(item.gt, GT)
    assert np.array_equal(item.coarse["shift4"], SHIFTED) and np.array_equal(item.coarse["exact"], GT)


def test_single_flat_folder_is_one_source(tmp_path):
    big = make_cascadepsp(tmp_path)
    folder = BigFolder(big / "shift4")
    assert folder.sources == ["shift4"] and folder.layout == "cascadepsp"
    assert BigFolder(big / "shift4", source="PSPNet").sources == ["PSPNet"]


def test_missing_seg_names_the_stem(tmp_path):
    big = make_cascadepsp(tmp_path)
    (big / "shift4" / "b_seg.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"shift4/b_seg\.png \(stem 'b'\)"):
        BigFolder(big)


def test_missing_image_names_the_stem(tmp_path):
    big = make_segrefiner(tmp_path)
    (big / "test" / "a_im.jpg").unlink()
    (big / "coarse" / "exact" / "a_im.jpg").unlink()
    (big / "coarse" / "shift4" / "a_im.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"a_im\.jpg \(stem 'a'\)"):
        BigFolder(big)


def test_differing_ground_truth_copies_are_refused(tmp_path):
    # CascadePSP's folders each hold a copy of the ground truth; a copy that differs is an error
    big = make_cascadepsp(tmp_path)
    _write(big / "shift4" / "a_gt.png", SHIFTED)
    folder = BigFolder(big)
    with pytest.raises(DataFormatError, match=r"shift4/a_gt\.png differs"):
        folder.gt(0)


def test_no_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="SegRefiner: <root>/test"):
        detect_layout(tmp_path / "empty")


def test_refined_pattern_found_or_named(tmp_path):
    big = make_cascadepsp(tmp_path)
    folder = tmp_path / "out" / "perfect" / "exact"
    assert refined_files(folder, ["a", "b"])["b"].name == "b_mask.png"
    with pytest.raises(FileNotFoundError, match=r"1 file\(s\) missing: .*c_mask\.png \(stem 'c'\)"):
        refined_files(folder, ["a", "c"])
    with pytest.raises(FileNotFoundError, match=r"a_refine\.png \(stem 'a'\)"):
        refined_files(folder, ["a"], "segrefiner")  # a named pattern is not replaced by another
    with pytest.raises(FileNotFoundError, match=r"none of a_mask\.png, a_refine\.png, 1\.0_a_mask\.png"):
        refined_files(big / "exact", ["a"])
    _write(folder / "a_refine.png", GT)
    with pytest.raises(ValueError, match="several refined masks"):
        refined_files(folder, ["a"])
    assert refined_files(folder, ["a"], "{stem}_refine.png")["a"].name == "a_refine.png"


# --- scorer ----------------------------------------------------------------------------------------

def test_scores_equal_the_shared_metrics_on_random_masks():
    # the prepared bands must give metrics.boundary_accuracy's mBA and boundary.binary_counts' BIoU
    # exactly; catches a band built with another kernel, radius or border (e.g. a square kernel)
    rng = np.random.default_rng(5)
    for _ in range(12):
        h, w = rng.integers(40, 400, size=2)
        noise = [cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3) for _ in range(2)]
        gt, pred = (n > np.quantile(n, rng.uniform(0.2, 0.8)) for n in noise)
        score = score_object("r", gt.astype(np.uint8) * 255, pred.astype(np.uint8) * 255)
        assert score.coarse.mba == boundary_accuracy(gt.astype(np.uint8), pred.astype(np.uint8), ignore_index=None)
        assert (score.coarse.biou_inter, score.coarse.biou_union) == binary_counts(gt, pred)
        assert (score.coarse.inter, score.coarse.union) == (int((gt & pred).sum()), int((gt | pred).sum()))


def test_threshold_rules_differ_at_128():
    # catches: one rule for both (a grey 128 is object for SegRefiner only)
    grey = np.array([[127, 128, 129]], np.uint8)
    assert binarize(grey, "gt128").tolist() == [[False, False, True]]
    assert binarize(grey, "ge128").tolist() == [[False, True, True]]
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 5:15] = 128
    assert score_object("x", gt, gt, threshold="gt128").coarse.union == 0
    assert score_object("x", gt, gt, threshold="ge128").coarse.inter == 100


def test_iou_is_pooled_not_averaged():
    # image A: I/U = 1/2, image B: 100/100 -> pooled 101/102 = 0.9902, not the mean 0.75
    acc = BigAccumulator()
    gt_a = np.zeros((30, 30), np.uint8)
    gt_a[3, 3] = 255
    pred_a = gt_a.copy()
    pred_a[3, 4] = 255
    gt_b = _rect((10, 19), (10, 19), (30, 30))
    acc.add(score_object("A", gt_a, gt_a, pred_a))
    acc.add(score_object("B", gt_b, gt_b, gt_b))
    assert acc.compute().refined_iou == pytest.approx(101 / 102)


def test_mba_is_the_per_image_mean():
    # baselines.md §1.5 V1 (CascadePSP's function): 40x60, square rows 10-29, cols 15-44, shifted right
    # by 2 -> 0.7857142857142857; with a perfect image the per-image mean is (0.785714 + 1) / 2.
    # Catches: a pixel-pooled mBA (the bands differ in size) or a missing image.
    gt = _rect((10, 29), (15, 44), (40, 60))
    shifted = _rect((10, 29), (17, 46), (40, 60))
    acc = BigAccumulator()
    acc.add(score_object("v1", gt, gt, shifted))
    acc.add(score_object("same", gt, gt, gt))
    res = acc.compute()
    assert res.refined_mba == pytest.approx((0.7857142857142857 + 1) / 2, abs=1e-12)
    assert res.mba == 1.0


def test_empty_coarse_is_counted_listed_and_scored():
    # catches: the reference's "small object" quirk (scoring the coarse mask in place of the refined)
    gt = _rect((5, 14), (5, 14), (20, 20))
    empty = np.zeros((20, 20), np.uint8)
    acc = BigAccumulator()
    acc.add(score_object("e", gt, empty, gt))
    acc.add(score_object("f", gt, gt, gt))
    res = acc.compute()
    assert res.empty_coarse == ("e",)
    assert res.iou == pytest.approx(100 / 200) and res.refined_iou == 1.0


def test_no_boundary_ground_truth_is_listed_and_skipped_from_mba():
    gt_empty = np.zeros((20, 20), np.uint8)
    gt = _rect((5, 14), (5, 14), (20, 20))
    acc = BigAccumulator()
    acc.add(score_object("none", gt_empty, gt_empty, gt))
    acc.add(score_object("box", gt, gt, gt))
    res = acc.compute()
    assert res.no_boundary == ("none",) and res.refined_mba == 1.0
    assert res.refined_iou == pytest.approx(100 / 200)  # still in the pooled IoU


def test_refined_of_another_size_is_resized_to_the_ground_truth():
    # a 10x6 (w x h) soft mask, left half 255: PIL bilinear to 20x12 puts the edge between columns 9
    # and 10 (output column 9 samples source 4.25 -> 0.75 * 255 = 191; column 10 samples 4.75 -> 64).
    # Catches: no resize, (H, W) swapped, or a threshold applied before resizing (same edge, but see soft).
    small = np.zeros((6, 10), np.uint8)
    small[:, :5] = 255
    big = resize_to(small, (12, 20))
    assert big.shape == (12, 20)
    assert (big[:, :10] > 128).all() and (big[:, 10:] <= 128).all()
    soft = np.full((6, 10), 129, np.uint8)
    assert resize_to(soft, (6, 10)) is soft  # same size: untouched
    gt = np.zeros((12, 20), np.uint8)
    gt[:, :10] = 255
    obj = score_object("r", gt, gt, small)
    assert obj.resized and obj.refined is not None and obj.refined.inter == obj.refined.union == 120


# --- tables ----------------------------------------------------------------------------------------

SEGREFINER_AVG_IMPROVE = ["0.00/0.00", "0.47/3.30", "0.73/6.10", "3.58/14.05", "4.01/15.12", "7.43/17.33"]


def test_published_table_reproduces_its_avg_improve_row():
    # the printed row of SegRefiner's Table 1; catches float rounding (14.045 -> 14.04, 17.325 -> 17.32)
    table = published_table()
    assert table.rows[-1] == [AVG_ROW, *SEGREFINER_AVG_IMPROVE]
    assert table.cited == set(range(5)) and "Cited" in table.notes[0]
    assert r"\textit{3.58/14.05}" in to_latex(table)
    assert "| Avg Improve | 0.00/0.00 | 0.47/3.30 |" in to_markdown(table)


def test_float_rounding_would_not_reproduce_the_row():
    # the premise of the Decimal rule: CascadePSP mBA (67.04-53.63 + 74.59-60.25 + 74.77-62.03 + 75.32-59.63) / 4
    floats = (67.04 - 53.63 + 74.59 - 60.25 + 74.77 - 62.03 + 75.32 - 59.63) / 4
    assert f"{floats:.2f}" == "14.04"
    exact = avg_improve([Decimal("53.63"), Decimal("60.25"), Decimal("62.03"), Decimal("59.63")],
                        [Decimal("67.04"), Decimal("74.59"), Decimal("74.77"), Decimal("75.32")])
    assert str(exact) == "14.05"
    assert str(avg_improve([Decimal("1.00")], [Decimal("0.995")])) == "-0.01"  # half away from zero
    assert avg_improve([Decimal(1)], [None]) is None


def test_big_table_layout():
    cells = {"s": {"Coarse": BigCell.parse("80.00/60.00/40.00"), "m": BigCell.parse("81.00/61.50/42.25")}}
    table = big_table(cells, ["Coarse", "m"], name="t", caption="c", biou=True)
    assert table.header == ["Coarse source", "Coarse", "m"]
    assert table.rows == [["s", "80.00/60.00/40.00", "81.00/61.50/42.25"],
                          [AVG_ROW, "0.00/0.00/0.00", "1.00/1.50/2.25"]]
    assert table.rule_before == {1}


# --- the command -----------------------------------------------------------------------------------

# By hand, source "shift4" (object a shifted 4 px, b exact), 200x300, all mBA radii 1 (cross kernel):
# IoU: a 9600/10400, b 10000/10000 -> pooled 19600/20400 = 96.08 %.
# mBA of a: the band is the square's 396 inner-ring pixels + 400 outer 4-neighbours = 796; correct:
#   inner rows 50 and 149 (96 each), column 199 (98), column 100 (0) = 290; outer rows 49, 150 (200),
#   column 99 (100), column 200 (0) = 300 -> 590/796 = 0.741206; with b (1.0): mean 0.870603 -> 87.06 %.
# BIoU (d = 7): bands 10000 - 86² = 2604 each; shared = 100 x 96 overlap minus the union of the cores
#   (rows 57-142, cols 107-196: 86 x 90 = 7740) = 1860; union 3348; b: 2604/2604 -> 4464/5952 = 75.00 %.
# Avg Improve over the sources (exact: 100 everywhere) of perfect - coarse: 3.92/2, 12.94/2, 25.00/2.
EXPECTED_ROWS = [
    ["exact", "100.00/100.00/100.00", "100.00/100.00/100.00", "100.00/100.00/100.00"],
    ["shift4", "96.08/87.06/75.00", "96.08/87.06/75.00", "100.00/100.00/100.00"],
    [AVG_ROW, "0.00/0.00/0.00", "0.00/0.00/0.00", "1.96/6.47/12.50"],
]


def _table_rows(markdown: str) -> list[list[str]]:
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ") and "---" not in ln]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


@pytest.mark.parametrize("make", [make_cascadepsp, make_segrefiner])
def test_big_score_command_tables_both_layouts(tmp_path, capsys, make):
    big = make(tmp_path)
    out = tmp_path / "out"
    rc = cli.main(["big-score", str(big), "--refined", f"identity={out / 'identity'}",
                   "--refined", f"perfect={out / 'perfect'}", "--biou"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "| Coarse source | Coarse | identity | perfect |" in text
    assert _table_rows(text) == EXPECTED_ROWS
    assert "> 128 (CascadePSP, CRM)" in text and "dilation ratio 0.02" in text


def test_big_score_json_is_unrounded(tmp_path, capsys):
    big = make_cascadepsp(tmp_path)
    assert cli.main(["big-score", str(big), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scores"]["shift4"]["coarse"]["iou"] == pytest.approx(19600 / 20400, abs=0)
    assert data["scores"]["shift4"]["coarse"]["refined_iou"] is None  # no refined masks: null, not NaN


def test_big_score_missing_file_is_one_line_exit_2(tmp_path, capsys):
    big = make_cascadepsp(tmp_path)
    (tmp_path / "out" / "perfect" / "shift4" / "b_mask.png").unlink()
    rc = cli.main(["big-score", str(big), "--refined", f"perfect={tmp_path / 'out' / 'perfect'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "shift4/b_mask.png (stem 'b')" in err, err


def test_big_score_user_error_does_not_import_torch(tmp_path):
    code = ("import sys; from bench.cli import main; rc = main.main(['big-score', sys.argv[1]]); "
            "print(rc, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nowhere")], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert res.stdout.split() == ["2", "False"], res.stdout + res.stderr
    assert "nowhere does not exist" in res.stderr


def test_big_score_resumes_where_it_stopped(tmp_path, capsys, monkeypatch):
    # catches: a resume file that is written but not read (prepare_truth called again), reused after a
    # file changed, or a crash-cut last line that breaks the next run
    import bench.evaluation.big_score as scorer

    big = make_cascadepsp(tmp_path)
    resume = tmp_path / "scores.jsonl"
    argv = ["big-score", str(big), "--refined", f"identity={tmp_path / 'out' / 'identity'}",
            "--refined", f"perfect={tmp_path / 'out' / 'perfect'}", "--biou", "--resume", str(resume)]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert [json.loads(ln)["stem"] for ln in resume.read_text().splitlines()] == ["a", "b"]

    calls = []
    real = scorer.prepare_truth
    monkeypatch.setattr(scorer, "prepare_truth", lambda *a, **k: calls.append(1) or real(*a, **k))
    with resume.open("a") as fh:
        fh.write('{"stem": "a", "thresh')  # a line cut short by a crash
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == first and calls == []

    _write(tmp_path / "out" / "perfect" / "shift4" / "b_mask.png", SHIFTED)  # b's files changed: b again
    assert cli.main(argv) == 0
    assert len(calls) == 1 and _table_rows(capsys.readouterr().out)[1][3] != EXPECTED_ROWS[1][3]


def test_sources_chosen_and_ordered(tmp_path):
    big = make_cascadepsp(tmp_path)
    assert BigFolder(big, sources=["shift4", "exact"]).sources == ["shift4", "exact"]
    with pytest.raises(FileNotFoundError, match=r"no source folder \['fcn'\] \(found: \['exact', 'shift4'\]\)"):
        BigFolder(big, sources=["fcn"])
