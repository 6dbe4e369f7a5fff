"""Golden values tied to a source other than the code under test (docs/testing.md lists every pin).

- The golden tables (tests/golden/table1.md, table3.md) were written by the renderer itself
  (``UPDATE_GOLDEN=1``); here their numbers are recomputed with plain numpy from the fixture's
  records (``test_tables._records``): IoU = TP / (TP + FP + FN) of the matrix summed over images,
  mBA the mean over images, time the median, memory the largest peak.
- ``test_metrics.test_mba_vector_v1_binary``'s 0.7857142857142857 is 154 / 196 by hand (below).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.evaluation.metrics import boundary_accuracy
from test_tables import _records

GOLDEN = Path(__file__).parent / "golden"


def _by_unit() -> dict[str, list[dict]]:
    units: dict[str, list[dict]] = {}
    for r in _records()[0]:
        if r.get("type") == "image":
            units.setdefault(r["display_name"] + "@" + {"k2": "128x64"}.get(r["unit_key"], "64x32"), []).append(r)
    return units


def _numpy_miou(cms: list) -> float:
    cm = np.sum([np.asarray(c, dtype=np.float64) for c in cms], axis=0)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.nanmean(np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)))


def _expected(unit: list[dict]) -> dict[str, str]:
    mbas = [r["mba"] for r in unit if r["mba"] is not None]
    times = sorted(r["time_ms"] for r in unit)
    median = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    return {"miou": f"{100 * _numpy_miou([r['cm'] for r in unit]):.2f}", "mba": f"{100 * sum(mbas) / len(mbas):.2f}",
            "time_s": f"{median / 1000:.3f}", "time_ms": f"{median:.0f}",
            "mem": f"{max(r['mem_peak_delta_mib'] for r in unit):.0f}"}


def _rows(name: str) -> list[list[str]]:
    lines = [ln for ln in (GOLDEN / name).read_text().splitlines() if ln.startswith("| ") and "---" not in ln]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


def test_golden_table1_cells_are_the_hand_recomputed_aggregates():
    units = _by_unit()
    rows = _rows("table1.md")
    assert len(rows) == 3
    for method, size, miou, _paper, _delta, mba, time_s, mem in rows:
        exp = _expected(units[f"{method}@{size}"])
        assert (miou, mba, time_s, mem) == (exp["miou"], exp["mba"], exp["time_s"], exp["mem"]), method


def test_golden_table3_cells_are_the_hand_recomputed_aggregates():
    units = _by_unit()
    checked = 0
    for method, miou, _paper, _delta, mba, time_ms, mem in _rows("table3.md"):
        if miou == "unavailable":
            continue
        exp = _expected(units[f"{method}@64x32"])
        assert (miou, mba, time_ms.split()[0], mem) == (exp["miou"], exp["mba"], exp["time_ms"], exp["mem"]), method
        checked += 1
    assert checked == 3


def test_golden_improvement_line_is_the_difference_of_the_recomputed_mious():
    units = _by_unit()
    diff = 100 * (_numpy_miou([r["cm"] for r in units["MagNet@64x32"]])
                  - _numpy_miou([r["cm"] for r in units["Downsample@64x32"]]))
    text = (GOLDEN / "table1.md").read_text()
    match = re.search(r"MagNet - Downsample at 64x32 on 2 paired image\(s\): mIoU ([+-]\d+\.\d\d)", text)
    assert match and match.group(1) == f"{diff:+.2f}"


def test_mba_v1_golden_is_154_of_196_by_hand():
    """gt: a 20 x 30 rectangle (rows 10..29, columns 15..44) of class 1 in a 40 x 60 image; pred: the
    same rectangle two columns to the right. W + H = 100, so every radius is 1 and the kernel is the
    3 x 3 cross. The band holds the rectangle's inner ring (2 * 20 + 2 * 30 - 4 = 96 pixels) and the
    outer ring without corners (2 * 20 + 2 * 30 = 100): 196. Wrong in the band: inner ring at
    column 15 (20) and the top and bottom pixels of column 16 (2), outer ring at column 45 (20):
    42. Accuracy (196 - 42) / 196 = 154 / 196 at each of the five radii."""
    gt = np.zeros((40, 60), np.uint8)
    gt[10:30, 15:45] = 1
    pred = np.zeros_like(gt)
    pred[10:30, 17:47] = 1
    assert boundary_accuracy(gt, pred, None) == pytest.approx(154 / 196, abs=1e-15)
    assert 154 / 196 == pytest.approx(0.7857142857142857, abs=1e-15)  # the value test_metrics pins
