"""Marks that mean something (issue 21, item 6): no significance mark from fewer than 5 paired images, and the
note says why; from 5 on, a difference every image agrees on is marked."""

from __future__ import annotations

import pytest

from bench.core.config import build
from bench.core.interface import DatasetInfo
from bench.evaluation.significance import paired_bootstrap
from bench.report.table_format import to_latex, to_markdown
from bench.report.tables import build_all_tables, collect

INFO = DatasetInfo("toy", ("a", "b"), 255, ((0, 0, 0), (1, 1, 1)))
CFG = build({"dataset": "synthetic", "input_size": "64x32", "methods": ["downsample", "magnet"]})


def _records(n):
    """``n`` images; MagNet right on 9 of 10 pixels per class, Downsample on 6: better on every image."""
    recs = []
    for key, (display, right) in enumerate((("Downsample", 6), ("MagNet", 9))):
        for i in range(n):
            recs.append({"type": "image", "unit_key": f"k{key}", "image_id": f"img{i}", "status": "ok",
                         "cm": [[right, 10 - right], [10 - right, right]], "mba": right / 10, "time_ms": 1.0,
                         "mem_peak_delta_mib": 1.0, "mem_method": "rss_hwm_reset",
                         "provenance": {"device_name": "Test CPU", "threads": 1}, "display_name": display})
    return recs, {("downsample", (64, 32)): "k0", ("magnet", (64, 32)): "k1"}


def _marked_cells(tables):
    return [c for t in tables for row in t.rows for c in row if "†" in c or "↓" in c]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_fewer_than_five_paired_images_get_no_mark_and_the_note(n):
    recs, keys = _records(n)
    # the bootstrap itself still finds the interval above zero (every resample keeps the sign) ...
    a = {r["image_id"]: r for r in recs if r["unit_key"] == "k1"}
    b = {r["image_id"]: r for r in recs if r["unit_key"] == "k0"}
    res = paired_bootstrap(a, b, n_resamples=200)
    assert res.miou.excludes_zero and not res.markable
    # ... but from n < 5 images no table shows a mark, and the text says why
    tables = build_all_tables(CFG, INFO, collect(CFG, INFO, keys, recs))
    assert _marked_cells(tables) == []
    assert all(r"\textsuperscript" not in line for t in tables for line in to_latex(t).splitlines() if "&" in line)
    notes = " ".join(t.text for t in tables)
    assert f"no significance mark: {n} paired image(s), fewer than the 5 a verdict needs" in notes
    assert "or a comparison of fewer than 5 paired images" in notes


@pytest.mark.parametrize("n", [5, 8])
def test_five_or_more_paired_images_can_be_marked(n):
    recs, keys = _records(n)
    tables = build_all_tables(CFG, INFO, collect(CFG, INFO, keys, recs))
    assert _marked_cells(tables)  # MagNet - Downsample: higher on every image
    assert "no significance mark" not in " ".join(t.text for t in tables)
    t2 = next(t for t in tables if t.name == "table2")
    assert any(c.endswith("†") for c in t2.rows[-1]) and "†" in to_markdown(t2)
