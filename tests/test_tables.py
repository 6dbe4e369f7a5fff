"""Tables from records: golden Markdown and LaTeX, recomputation, statuses, paper deltas, marks, cited rows,
metric variants, and every generated table compiled with pdflatex where it is installed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from bench.core.config import build
from bench.core.interface import DatasetInfo
from bench.report.table_model import aggregate
from bench.report.tables import build_all_tables, build_tables, collect
from bench.report.table_format import to_latex, to_markdown

GOLDEN = Path(__file__).parent / "golden"
INFO = DatasetInfo("toy", ("road", "pole", "sky"), 255, ((0, 0, 0), (1, 1, 1), (2, 2, 2)), thin_classes=(1,))
PROV = {"device_name": "Test CPU", "threads": 2}


def _image(key, image_id, cm, mba, t, mem, display):
    return {"type": "image", "unit_key": key, "image_id": image_id, "status": "ok", "cm": cm, "mba": mba,
            "time_ms": t, "mem_peak_delta_mib": mem, "mem_method": "rss_hwm_reset", "provenance": PROV,
            "display_name": display}


def _records(copies=1):
    """Two images per unit; ``copies`` > 1 repeats them under new ids (img0..img{2*copies-1}): every
    dataset-level value (summed matrices, mean mBA, median time, peak memory) stays the same, the
    paired bootstrap sees 2 * copies images (marks need 5, ``MIN_PAIRED_IMAGES``)."""
    recs = []
    specs = {
        ("downsample", "64x32"): ("k1", "Downsample", [[[8, 2, 0], [3, 1, 0], [0, 0, 6]], [[9, 1, 0], [2, 0, 0], [0, 1, 7]]], [0.5, 0.6], [10, 12], [5, 6]),
        ("downsample", "128x64"): ("k2", "Downsample", [[[9, 1, 0], [2, 2, 0], [0, 0, 6]], [[10, 0, 0], [1, 1, 0], [0, 0, 8]]], [0.6, 0.7], [30, 34], [20, 22]),
        ("patching", "64x32"): ("k3", "Patching", [[[9, 1, 0], [1, 3, 0], [0, 0, 6]], [[10, 0, 0], [0, 2, 0], [0, 1, 7]]], [0.7, None], [50, 70], [15, 16]),
        ("magnet", "64x32"): ("k4", "MagNet", [[[10, 0, 0], [1, 3, 0], [0, 0, 6]], [[10, 0, 0], [0, 2, 0], [0, 0, 8]]], [0.8, 0.9], [80, 90], [25, 21]),
    }
    for (_, _), (key, disp, cms, mbas, times, mems) in specs.items():
        for c in range(copies):
            for i, (cm, mba, t, m) in enumerate(zip(cms, mbas, times, mems)):
                recs.append(_image(key, f"img{2 * c + i}", cm, mba, t, m, disp))
    recs.append({"type": "unit", "unit_key": "k5", "status": "unavailable", "message": "install x",
                 "display_name": "DenseCRF"})  # the runner names a failed unit when its class imports
    keys = {("downsample", (64, 32)): "k1", ("downsample", (128, 64)): "k2", ("patching", (64, 32)): "k3",
            ("densecrf", (64, 32)): "k5", ("magnet", (64, 32)): "k4"}
    return recs, keys


def _cfg():
    return build({"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"],
                  "methods": ["downsample", "patching", "densecrf", "magnet"],
                  "paper": {"downsample@64x32": {"miou": 50.0}, "magnet@64x32": {"miou": 70.0}}})


def _tables():
    recs, keys = _records()
    return build_all_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_golden(index):
    table = _tables()[index]
    for suffix, text in ((".md", to_markdown(table)), (".tex", to_latex(table))):
        path = GOLDEN / f"{table.name}{suffix}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(text)
        assert text == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 after checking"


def test_aggregate_recomputes_dataset_level():
    recs, _ = _records()
    res = aggregate(recs, "k1", "downsample", "64x32", INFO, "nan", (), "Downsample")
    cm = np.array([[17, 3, 0], [5, 1, 0], [0, 1, 13]])
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert res.miou == pytest.approx(iou.mean())
    assert res.mba == pytest.approx(0.55)
    assert res.time["median"] == pytest.approx(11.0)
    assert res.memory == 6


def test_status_and_improvement_rows():
    t1, t2 = _tables()[:2]
    md = to_markdown(t2)
    assert "| DenseCRF | unavailable |" in md or "| densecrf | unavailable |" in md
    assert [r[0] for r in t2.rows[-2:]] == ["Improvement", "MagNet − Downsample"]
    assert "Test CPU" in t1.text and "absent from ground truth and prediction is NaN" in t2.text


def test_duplicate_records_do_not_double_count():
    recs, _ = _records()
    dup = recs + [r for r in recs if r.get("unit_key") == "k1"]
    a = aggregate(recs, "k1", "downsample", "64x32", INFO, "nan", (), "D")
    b = aggregate(dup, "k1", "downsample", "64x32", INFO, "nan", (), "D")
    assert a.miou == b.miou and a.n_images == b.n_images == 2


def _tables_with(copies=1, **overrides):
    recs, keys = _records(copies)
    cfg = build({**{"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"],
                    "methods": ["downsample", "patching", "densecrf", "magnet"]}, **overrides})
    return build_all_tables(cfg, INFO, collect(cfg, INFO, keys, recs))


def test_two_paired_images_get_no_mark_and_the_note_says_why():
    # every resample of the two toy images keeps the sign, so the interval excludes zero: from two
    # images that says nothing, and no cell is marked (issue 21, item 6)
    t1, t2, t3 = _tables()[:3]
    assert t2.rows[-2][:3] == ["Improvement", "15.0", "11.0"]
    assert t2.rows[-1][:3] == ["MagNet − Downsample", "30.0", "35.9"]
    assert t3.rows[3][1] == "92.86"
    for t in (t1, t2, t3):
        assert not any(m in cell for row in t.rows for cell in row for m in ("†", "↓"))
        assert "no significance mark: 2 paired image(s), fewer than the 5 a verdict needs" in t.text
        assert "or a comparison of fewer than 5 paired images" in t.text
    assert "MagNet - Downsample at 64x32 on 2 paired image(s): mIoU +35.90 [+29.23, +45.83], mBA" in t2.text


def test_significance_marks_and_caption():
    t1, t2, t3 = _tables_with(copies=3)[:3]
    # the supplement's Improvement (MagNet - Patching, the best previous row), MagNet - Downsample
    # and best vs runner-up (MagNet - Patching) are all significant on the toy records (six images,
    # MagNet better on each)
    assert t2.rows[-2][:3] == ["Improvement", "15.0†", "11.0†"]
    assert t2.rows[-1][:3] == ["MagNet − Downsample", "30.0†", "35.9†"]
    assert t2.rows[3][:3] == ["MagNet", "85.0", "92.9"] and (3, 2) in t2.best_ours and (1, 2) in t2.best_previous
    assert t3.rows[3][1] == "92.86†" and t3.rows[1][1] == "81.94"
    assert "no significance mark" not in t2.text + t3.text
    for t in (t1, t2, t3):
        assert "Significance: paired bootstrap over images (1000 resamples with replacement" in t.text
        assert "numpy seed 0" in t.text and "95% percentile interval lies above zero" in t.text
    for t in (t1, t3):
        assert ("Best vs runner-up (the best row by mIoU against the best row of another method at the same "
                "input size)") in t.text
    assert re.search(r"Improvement tested \(best of ours - best of previous, per metric\): MagNet - Patching at "
                     r"64x32 on 6 paired image\(s\): mIoU \+10\.91 \[\+[0-9.]+, \+[0-9.]+\]†, "
                     r"mBA \+15\.00 \[\+[0-9.]+, \+[0-9.]+\]†", t2.text)
    # MagNet beats Downsample by 30 mBA points on every image: every resample gives exactly +30
    assert re.search(r"MagNet - Downsample at 64x32 on 6 paired image\(s\): mIoU \+35\.90 \[\+[0-9.]+, "
                     r"\+[0-9.]+\]†, mBA \+30\.00 \[\+30\.00, \+30\.00\]†", t2.text)
    assert "MagNet - Patching at 64x32 on 6 paired image(s): mIoU +10.91" in t3.text
    assert r"92.86\rlap{\textsuperscript{\dag}}" in to_latex(t3)  # the mark takes no width


def test_bootstrap_zero_disables_marks():
    for t in _tables_with(bootstrap=0):
        text = to_markdown(t) + to_latex(t)
        assert "†" not in text and "↓" not in text and "dag" not in text and "Significance" not in t.text


def test_bootstrap_is_deterministic_and_seeded():
    a = [to_markdown(t) for t in _tables_with(seed=0)]
    assert a == [to_markdown(t) for t in _tables_with(seed=0)]
    b = _tables_with(seed=7)
    assert "numpy seed 7" in b[1].text and to_markdown(b[1]) != a[1]


def test_no_mark_without_a_significant_difference():
    recs, keys = _records(copies=3)
    # MagNet identical to Downsample on both images: Improvement 0 with interval [0, 0], no mark
    recs = [dict(r, cm=next(d["cm"] for d in recs if d.get("unit_key") == "k1" and d["image_id"] == r["image_id"]),
                 mba=next(d["mba"] for d in recs if d.get("unit_key") == "k1" and d["image_id"] == r["image_id"]))
            if r.get("unit_key") == "k4" else r for r in recs]
    t2 = build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))[1]
    assert t2.rows[-1][:3] == ["MagNet − Downsample", "0.0", "0.0"]
    assert "mIoU +0.00 [+0.00, +0.00], mBA +0.00 [+0.00, +0.00]." in t2.text


def test_best_vs_runner_up_definition():
    from bench.report.table_model import UnitResult
    from bench.report.table_notes import best_vs_runner_up

    def row(method, size, miou, status="ok"):
        return UnitResult(method, method, size, 2, status, miou=miou)

    rows = [row("downsample", "64x32", 0.5), row("downsample", "128x64", 0.9), row("patching", "64x32", 0.6),
            row("magnet", "64x32", 0.7), row("densecrf", "64x32", 0.95, status="oom")]
    best, runner = best_vs_runner_up(rows)
    # the best row is at 128x64, where no other method ran
    assert (best.method, best.size, runner) == ("downsample", "128x64", None)
    best, runner = best_vs_runner_up(rows[:1] + rows[2:])
    assert (best.method, runner.method) == ("magnet", "patching")
    assert best_vs_runner_up([row("magnet", "64x32", float("nan"))]) is None
    t1 = _tables_with(table1_sizes=["128x64"], input_size="64x32")[0]
    assert "MagNet - Downsample at 64x32" in t1.text
    t1 = _tables_with(methods=["downsample", "patching"])[0]
    assert "none, Downsample at 128x64 is the only method at that size." in t1.text
    assert not any("†" in c for r in t1.rows for c in r)


def _replace(recs, key, **fields_by_image):
    """``recs`` with unit ``key``'s image records updated: ``field={image_id: value}``."""
    out = []
    for r in recs:
        if r.get("unit_key") == key and r.get("type") == "image":
            r = dict(r, **{f: v[r["image_id"]] for f, v in fields_by_image.items() if r["image_id"] in v})
        out.append(r)
    return out


def test_a_significantly_lower_value_never_gets_the_better_mark():
    recs, keys = _records(copies=3)
    # MagNet keeps the best mIoU but its mBA is far below Patching's on the images both have
    recs = _replace(recs, "k4", mba={f"img{i}": (0.30, 0.20)[i % 2] for i in range(6)})
    t1, t2, t3 = build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))
    magnet = t3.rows[3]
    assert magnet[1] == "92.86†" and magnet[4] == "25.00↓"  # mIoU higher, mBA significantly lower
    assert re.search(r"MagNet - Patching at 64x32 on 6 paired image\(s\): mIoU \+10\.91 \[[^]]+\]†, mBA -45\.00", t3.text)
    improvement = next(r for r in t2.rows if r[0] == "Improvement")
    # best of ours (MagNet, 25.0) - best of previous (Patching, 70.0) in mBA: negative and marked so
    assert improvement[1] == "-45.0↓" and "†" not in improvement[1]
    assert r"-45.0\rlap{\textsuperscript{$\downarrow$}}" in to_latex(t2)
    assert "↓ one whose interval lies below zero (significantly lower)" in t2.text


def test_ours_comes_from_the_config():
    # a user benchmarking Patching as their own method: Improvement = Patching - best of the rest
    t2 = _tables_with(copies=3, ours=["patching"])[1]
    assert [r[0] for r in t2.rows[:4]] == ["Downsample", "DenseCRF", "MagNet", "Patching"]  # previous, then ours
    improvement = next(r for r in t2.rows if r[0] == "Improvement")
    assert improvement[1:3] == ["-15.0↓", "-11.0↓"]  # Patching 70.0 / 81.9 against MagNet 85.0 / 92.9
    assert (3, 1) in t2.best_ours and (2, 1) in t2.best_previous
    assert "Ours: Patching (config `ours`); previous: Downsample, DenseCRF, MagNet." in t2.text
    order = _tables_with(table2_methods=["magnet", "patching", "downsample"])[1]
    assert [r[0] for r in order.rows[:3]] == ["MagNet", "Patching", "Downsample"]


def test_a_swept_method_left_out_of_table2_is_named():
    # a plugin or GLNet swept but not listed in table2_methods: never dropped without a word
    t2 = _tables_with(table2_methods=["magnet", "downsample"])[1]
    assert [r[0] for r in t2.rows[:2]] == ["MagNet", "Downsample"]
    assert "Not in this table (not in `table2_methods`): DenseCRF, Patching; " in t2.text  # DenseCRF failed: still named
    assert "Not in this table" not in _tables()[1].text  # every method listed (the default order)


def test_best_of_each_side_named_and_marked_in_both_formats():
    t2 = _tables()[1]
    assert "Best of previous: Patching (mBA, mIoU, road, pole, sky); Downsample (sky)." in t2.text
    md, tex = to_markdown(t2), to_latex(t2)
    assert "| MagNet | **85.0** | **92.9** |" in md and "| Patching | _70.0_ | _81.9_ |" in md
    assert r"\textcolor{red}{85.0}" in tex and r"\textcolor{blue}{70.0}" in tex
    assert "% Colours: red = best of ours (MagNet), blue = best of the previous methods" in tex


def test_latex_shape():
    for t in _tables():
        tex = to_latex(t)
        caption = next(line for line in tex.splitlines() if line.startswith(r"\caption{"))
        assert "Table" not in caption and "\n" not in caption and len(caption) < 200
        assert r"\resizebox" not in tex and r"\textit{Notes.}" in tex
        assert tex.splitlines()[0].startswith("% Packages: \\usepackage{booktabs}")  # the first comment
    t2 = to_latex(_tables()[1])
    assert r"\rotatebox{90}{pole}" in t2 and r"\begin{table*}" in t2 and "graphicx" in t2.splitlines()[0]


def test_cited_rows_from_the_config_typeset_as_cited():
    cited = {"glnet": {"name": "GLNet", "miou": 71.2, "memory": 1865, "ref": "[5]", "metric": "iou_building",
                       "source": "GLNet's own Inria number, as the MagNet supplement's Table 3 cites it"}}
    t3, comp = _tables_with(cited=cited, table3_methods=["downsample", "patching", "cited:glnet", "magnet"])[2:]
    row = t3.rows.index(next(r for r in t3.rows if r[0] == "GLNet (reported in [5])"))
    assert row == 2 and t3.rows[row][1:4] == ["–", "71.20", "–"] and row in t3.cited
    assert "(holds iou_building)" in t3.text and "not measured here" in t3.text
    assert r"GLNet (reported in [5]) & \textit{--}" in to_latex(t3) or r"\textit{71.20}" in to_latex(t3)
    assert r"\textit{71.20}" in to_latex(t3)
    glnet = comp.rows[-1]
    assert glnet == ["GLNet (reported in [5])", "–", "–", "71.20", "1865"] and len(comp.rows) - 1 in comp.cited
    with pytest.raises(ValueError, match="cited:nope is not in the config's cited rows"):
        _tables_with(table3_methods=["cited:nope"])
    with pytest.raises(ValueError, match="cited.bad must be a mapping with 'name' and 'source'"):
        _tables_with(cited={"bad": {"miou": 1.0}})


INRIA = DatasetInfo("inria", ("background", "building"), None, ((0, 0, 0), (255, 255, 255)))


def test_inria_variants_named_and_hand_computed():
    cms = {"k1": [[[90, 10], [5, 15]]], "k4": [[[95, 5], [2, 18]]]}
    recs = [_image(k, "t0", cm[0], 0.5, 10, 5, d) for (k, cm), d in zip(cms.items(), ("Downsample", "MagNet"))]
    cited = {"glnet": {"name": "GLNet", "miou": 71.2, "ref": "[5]", "metric": "iou_building", "source": "GLNet"}}
    cfg = build({"dataset": "inria", "input_size": "64x32", "methods": ["downsample", "magnet"], "bootstrap": 0,
                 "metric_columns": ["miou_2class", "iou_building"], "cited": cited,
                 "table3_methods": ["downsample", "cited:glnet", "magnet"],
                 "paper": {"magnet@64x32": {"miou": 87.01, "metric": "miou_2class", "source": "supplement"}}})
    keys = {("downsample", (64, 32)): "k1", ("magnet", (64, 32)): "k4"}
    t3 = build_tables(cfg, INRIA, collect(cfg, INRIA, keys, recs))[2]
    assert t3.header[:5] == ["Method", "mIoU 2-class (%)", "IoU building (%)", "Paper", "Δ"]
    # Downsample: background 90/105, building 15/30; MagNet: 95/102, 18/25
    assert t3.rows[0][1:3] == [f"{100 * (90 / 105 + 15 / 30) / 2:.2f}", "50.00"]
    assert t3.rows[2][1:5] == [f"{100 * (95 / 102 + 18 / 25) / 2:.2f}", "72.00", "87.01",
                               f"{100 * (95 / 102 + 18 / 25) / 2 - 87.01:+.2f}"]
    assert "IoU building: the IoU of class 1 'building' alone" in t3.text
    assert "mIoU 2-class: mean of the IoU of both classes (background, building)" in t3.text
    assert "MagNet@64x32: supplement, compared with miou_2class" in t3.text
    with pytest.raises(ValueError, match="metric_columns: 'iou_building' needs a two-class dataset"):
        _tables_with(metric_columns=["iou_building"])
    with pytest.raises(ValueError, match="metric_columns: unknown mIoU variant 'mIoU'"):
        _tables_with(metric_columns=["mIoU"])


def test_excluded_class_variants_and_table2_columns():
    # the toy's class 0 excluded (DeepGlobe's protocol) beside the mmseg mean over all classes
    t1, t2 = _tables_with(excluded=[0], metric_columns=["miou", "miou_mmseg"], bootstrap=0)[:2]
    assert t2.header == ["Method", "mBA (%)", "mIoU (%)", "mIoU mmseg (%)", "pole", "sky"]
    assert "Not shown: class 0 'road' (excluded from the mean, still counted in the confusion matrix)." in t2.text
    assert "mean over classes 1, 2 (class 0 'road' excluded from the mean" in t1.text
    assert "mIoU mmseg: mean over all 3 classes" in t1.text
    cm = np.array([[17, 3, 0], [5, 1, 0], [0, 1, 13]])  # Downsample at 64x32 (test_aggregate)
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert t1.rows[0][2:4] == [f"{100 * iou[1:].mean():.2f}", f"{100 * iou.mean():.2f}"]


def test_mba_radii_in_every_caption():
    for t in _tables_with(**{"data.size": [2448, 2448]}):
        if "mBA (%)" in t.header:
            assert "radii {1,4,7,10,13} px at 2448x2448" in t.text


def _compile(tex: str, folder: Path, width_pt: int | None = None) -> str:
    """pdflatex a document holding ``tex`` with exactly the packages its comment names; returns the log."""
    import subprocess

    packages = tex.splitlines()[0].removeprefix("% Packages: ").replace(", ", "\n")
    packages = "" if packages.startswith("none") else packages  # the notes file needs none
    width = rf"\setlength{{\textwidth}}{{{width_pt}pt}}" if width_pt else ""
    (folder / "doc.tex").write_text("\\documentclass[twocolumn]{article}\n" + packages + "\n" + width
                                    + "\n\\begin{document}\n" + tex + "\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
                         capture_output=True, text=True, timeout=120)
    log = (folder / "doc.log").read_text(errors="replace") if (folder / "doc.log").is_file() else run.stdout
    assert run.returncode == 0, log[-3000:]
    return log


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex not installed")
def test_every_table_compiles_and_fits(tmp_path):
    from tests.test_table2_golden import supplement_tables

    # CVPR's two-column text width (6.875 in): Table 2 spans it (table*), the others fit one column
    for t in [*_tables(), *supplement_tables()]:
        log = _compile(to_latex(t), tmp_path, 496)
        assert "Overfull \\hbox" not in log, (t.name, [ln for ln in log.splitlines() if "Overfull" in ln])


def _shipped_tables(dataset):
    """Every table of a shipped dataset config, over fake records (2 images per unit)."""
    from bench.core.config import format_size, load
    from bench.data import dataset_info

    cfg = load(dataset, {"bootstrap": 50})
    info = dataset_info(cfg)
    rng = np.random.default_rng(0)
    results = {}
    for method, size in cfg.units():
        recs = [_image(method, f"i{k}", (rng.integers(1, 50, (info.num_classes,) * 2)
                                         + np.eye(info.num_classes, dtype=np.int64) * 400).tolist(),
                       float(rng.uniform(0.4, 0.8)), 10.0 + k, 5.0, method) for k in range(2)]
        results[(method, format_size(size))] = aggregate(recs, method, method, format_size(size), info, cfg.absent,
                                                         tuple(cfg.excluded if cfg.excluded is not None
                                                               else info.excluded_from_mean), method)
    return cfg, build_all_tables(cfg, info, results)


def test_shipped_inria_tables_name_both_variants_and_cite_glnet():
    _, (t1, t2, t3, comp) = _shipped_tables("inria")
    assert t3.header[1:5] == ["mIoU 2-class (%)", "IoU building (%)", "Paper", "Δ"]
    assert [r[0] for r in t3.rows] == ["downsample", "patching", "GLNet (reported in [5])", "magnet"]
    assert t3.rows[2][3] == "71.20" and 2 in t3.cited  # the supplement's column, typeset as cited
    assert "compared with miou_2class" in t3.text and "(holds iou_building)" in t3.text
    for t in (t1, t2, t3):
        assert "radii {1,7,13,20,26} px at 5000x5000" in t.text
    assert "mIoU 2-class (%)" in t1.header and "IoU building (%)" in t2.header


def test_shipped_deepglobe_tables_name_the_class_0_variants():
    cfg, (t1, t2, t3, comp) = _shipped_tables("deepglobe")
    assert "mIoU mmseg (%)" in t3.header and "unknown" not in t2.header
    assert "mean over classes 1-6 (class 0 'unknown' excluded from the mean" in t3.text
    assert "mIoU mmseg: mean over all 7 classes with absent classes NaN" in t3.text
    assert "scores 0 (`zero`: MagNet, GLNet, FCtL)" in t3.text
    assert "radii {1,4,7,10,13} px at 2448x2448" in t2.text
    magnet = next(r for r in comp.rows if r[0] == "magnet")
    assert magnet[-2:] == ["72.96", "1559"]
    assert [r[0] for r in comp.rows[-3:]] == ["GLNet (cited)", "PPN (cited)", "CascadePSP (cited)"]
    assert comp.rows[-3][-2:] == ["71.60", "1865"]


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("dataset", ["cityscapes", "deepglobe", "inria", "synthetic"])
def test_shipped_tables_compile_and_fit(tmp_path, dataset):
    for t in _shipped_tables(dataset)[1]:
        log = _compile(to_latex(t), tmp_path, 496)
        assert "Overfull \\hbox" not in log, (dataset, t.name, [ln for ln in log.splitlines() if "Overfull" in ln])


def test_a_partial_unit_is_never_marked_best():
    recs, keys = _records()
    recs = _replace(recs, "k4", n_expected={"img0": 3, "img1": 3})
    recs.append({"type": "image", "unit_key": "k4", "image_id": "img2", "status": "error", "n_expected": 3,
                 "message": "bad file"})
    t2 = build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))[1]
    magnet = next(i for i, r in enumerate(t2.rows) if r[0].startswith("MagNet"))
    assert t2.rows[magnet][0] == "MagNet (2 of 3 images)" and not any(i == magnet for i, _ in t2.best_ours)
    assert "Improvement not shown: MagNet did not cover every image; no complete row of ours." in t2.text
    assert "MagNet − Downsample not shown: MagNet did not cover every image." in t2.text


def test_select_keeps_rotated_headers_from_the_same_column() -> None:
    """A selected table keeps LaTeX's rotated header cells, from the same first rotated column."""
    from bench.report.table_model import Table

    t = Table("t", "c", ["Method", "a", "b", "c"], rotate_header=True, rotate_from=2)
    t.rows = [["m", "1", "2", "3"]]
    out = t.select(("Method", "b", "c"))
    assert out.rotate_header and out.header[out.rotate_from] == "b"
    assert t.select(("Method", "a", "c")).header[t.select(("Method", "a", "c")).rotate_from] == "c"
