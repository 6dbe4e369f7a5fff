"""Tables from records: golden Markdown and LaTeX, recomputation, statuses, paper deltas."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench.config import build
from bench.interface import DatasetInfo
from bench.tables import aggregate, build_tables, collect, to_latex, to_markdown

GOLDEN = Path(__file__).parent / "golden"
INFO = DatasetInfo("toy", ("road", "pole", "sky"), 255, ((0, 0, 0), (1, 1, 1), (2, 2, 2)), thin_classes=(1,))
PROV = {"device_name": "Test CPU", "threads": 2}


def _image(key, image_id, cm, mba, t, mem, display):
    return {"type": "image", "unit_key": key, "image_id": image_id, "status": "ok", "cm": cm, "mba": mba,
            "time_ms": t, "mem_peak_delta_mib": mem, "mem_method": "rss_hwm_reset", "provenance": PROV,
            "display_name": display}


def _records():
    recs = []
    specs = {
        ("downsample", "64x32"): ("k1", "Downsample", [[[8, 2, 0], [3, 1, 0], [0, 0, 6]], [[9, 1, 0], [2, 0, 0], [0, 1, 7]]], [0.5, 0.6], [10, 12], [5, 6]),
        ("downsample", "128x64"): ("k2", "Downsample", [[[9, 1, 0], [2, 2, 0], [0, 0, 6]], [[10, 0, 0], [1, 1, 0], [0, 0, 8]]], [0.6, 0.7], [30, 34], [20, 22]),
        ("patching", "64x32"): ("k3", "Patching", [[[9, 1, 0], [1, 3, 0], [0, 0, 6]], [[10, 0, 0], [0, 2, 0], [0, 1, 7]]], [0.7, None], [50, 70], [15, 16]),
        ("magnet", "64x32"): ("k4", "MagNet", [[[10, 0, 0], [1, 3, 0], [0, 0, 6]], [[10, 0, 0], [0, 2, 0], [0, 0, 8]]], [0.8, 0.9], [80, 90], [25, 21]),
    }
    for (_, _), (key, disp, cms, mbas, times, mems) in specs.items():
        for i, (cm, mba, t, m) in enumerate(zip(cms, mbas, times, mems)):
            recs.append(_image(key, f"img{i}", cm, mba, t, m, disp))
    recs.append({"type": "unit", "unit_key": "k5", "status": "unavailable", "message": "install x"})
    keys = {("downsample", (64, 32)): "k1", ("downsample", (128, 64)): "k2", ("patching", (64, 32)): "k3",
            ("densecrf", (64, 32)): "k5", ("magnet", (64, 32)): "k4"}
    return recs, keys


def _cfg():
    return build({"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"],
                  "methods": ["downsample", "patching", "densecrf", "magnet"],
                  "paper": {"downsample@64x32": {"miou": 50.0}, "magnet@64x32": {"miou": 70.0}}})


def _tables():
    recs, keys = _records()
    return build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))


@pytest.mark.parametrize("index", [0, 1, 2])
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
    t2 = _tables()[1]
    md = to_markdown(t2)
    assert "| DenseCRF | unavailable |" in md or "| densecrf | unavailable |" in md
    assert t2.rows[-1][0] == "Improvement"
    assert "Test CPU" in t2.caption and "absent classes -> nan" in t2.caption


def test_duplicate_records_do_not_double_count():
    recs, _ = _records()
    dup = recs + [r for r in recs if r.get("unit_key") == "k1"]
    a = aggregate(recs, "k1", "downsample", "64x32", INFO, "nan", (), "D")
    b = aggregate(dup, "k1", "downsample", "64x32", INFO, "nan", (), "D")
    assert a.miou == b.miou and a.n_images == b.n_images == 2


def _tables_with(**overrides):
    recs, keys = _records()
    cfg = build({**{"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"],
                    "methods": ["downsample", "patching", "densecrf", "magnet"]}, **overrides})
    return build_tables(cfg, INFO, collect(cfg, INFO, keys, recs))


def test_significance_marks_and_caption():
    t1, t2, t3 = _tables()
    # Improvement (MagNet - Downsample) and best vs runner-up (MagNet - Patching) are both
    # significant on the toy records: every resample of the two images keeps the sign
    assert t2.rows[-1][:3] == ["Improvement", "+30.00†", "+35.90†"]
    assert t2.rows[3][:3] == ["MagNet", "85.00†", "92.86†"] and (3, 2) in t2.bold
    assert t3.rows[3][1] == "92.86†" and t3.rows[1][1] == "81.94"
    for t in (t1, t2, t3):
        assert "Significance: paired bootstrap over images (1000 resamples with replacement" in t.caption
        assert "numpy seed 0" in t.caption and "95% percentile interval excludes zero" in t.caption
        assert ("Best vs runner-up (the best row by mIoU against the best row of another method at the same "
                "input size)") in t.caption
    assert ("Improvement: MagNet - Downsample at 64x32 on 2 paired image(s): mIoU +35.90 [+29.23, +45.83]†, "
            "mBA +30.00 [+30.00, +30.00]†") in t2.caption
    assert "MagNet - Patching at 64x32 on 2 paired image(s): mIoU +10.91" in t3.caption
    assert r"92.86\textsuperscript{\dag}" in to_latex(t3)


def test_bootstrap_zero_disables_marks():
    for t in _tables_with(bootstrap=0):
        text = to_markdown(t) + to_latex(t)
        assert "†" not in text and "dag" not in text and "Significance" not in t.caption


def test_bootstrap_is_deterministic_and_seeded():
    a = [to_markdown(t) for t in _tables_with(seed=0)]
    assert a == [to_markdown(t) for t in _tables_with(seed=0)]
    b = _tables_with(seed=7)
    assert "numpy seed 7" in b[1].caption and to_markdown(b[1]) != a[1]


def test_no_mark_without_a_significant_difference():
    recs, keys = _records()
    # MagNet identical to Downsample on both images: Improvement 0 with interval [0, 0], no mark
    recs = [dict(r, cm=next(d["cm"] for d in recs if d.get("unit_key") == "k1" and d["image_id"] == r["image_id"]),
                 mba=next(d["mba"] for d in recs if d.get("unit_key") == "k1" and d["image_id"] == r["image_id"]))
            if r.get("unit_key") == "k4" else r for r in recs]
    t2 = build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))[1]
    assert t2.rows[-1][:3] == ["Improvement", "+0.00", "+0.00"]
    assert "mIoU +0.00 [+0.00, +0.00], mBA +0.00 [+0.00, +0.00];" in t2.caption


def test_best_vs_runner_up_definition():
    from bench.tables import UnitResult, best_vs_runner_up

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
    assert "MagNet - Downsample at 64x32" in t1.caption
    t1 = _tables_with(methods=["downsample", "patching"])[0]
    assert "none, Downsample at 128x64 is the only method at that size." in t1.caption
    assert not any("†" in c for r in t1.rows for c in r)
