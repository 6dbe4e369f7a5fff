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
