"""``bench drift`` as a command, end to end on a tiny baseline in tmp; the shipped baseline's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.checks import drift
from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
# Downsample on one 256x128 image with the committed reference backbone (trained at 1024x512, hence
# train_data.size, which keeps its training options matching): one unit, in this process
OVERRIDES = {"methods": ["downsample"], "table1_sizes": [], "limit": 1, "data.size": [256, 128],
             "train_data.size": [1024, 512], "warmup": 0, "bootstrap": 0, "save_predictions": 0, "train": False,
             "threads": 1, "isolate": False}
UNIT = {"method": "downsample", "size": "128x64"}


@pytest.fixture
def baseline(tmp_path, monkeypatch):
    """A baseline with this run's values stored by ``bench drift --update`` (tolerance 0)."""
    monkeypatch.setattr(drift, "BASELINE_DIR", tmp_path)
    threads = torch.get_num_threads()
    entries = [{**UNIT, "metric": m, "expected": 0.0, "tol_abs": 0.0, "measured": 0.0}
               for m in ("miou", "mba", "pixels")]
    entries[2]["cm"] = []
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps({"overrides": OVERRIDES, "fingerprint": "", "entries": entries}))
    assert main(["drift", "synthetic", "--update"]) == 0
    yield path
    torch.set_num_threads(threads)


def _edit(path: Path, fn) -> None:
    spec = json.loads(path.read_text())
    fn(spec)
    path.write_text(json.dumps(spec))


def test_drift_command_exit_codes(baseline, capsys):
    spec = json.loads(baseline.read_text())
    assert spec["fingerprint"] and 0 < spec["entries"][0]["expected"] < 1 and spec["entries"][2]["cm"]
    capsys.readouterr()
    assert main(["drift", "synthetic"]) == 0  # as stored
    assert "drift: 3 passed, 0 failed" in capsys.readouterr().out

    _edit(baseline, lambda s: s["entries"][0].update(expected=s["entries"][0]["expected"] + 1e-3))  # a value moves
    assert main(["drift", "synthetic"]) == 1
    out = capsys.readouterr().out
    assert "DRIFT    downsample@128x64 miou" in out and "drift: 2 passed, 1 failed" in out

    _edit(baseline, lambda s: s["entries"][0].update(expected=s["entries"][0]["expected"] - 1e-3))
    cm = json.loads(baseline.read_text())["entries"][2]["cm"]
    cm[0][0] -= 1
    cm[0][1] += 1  # one pixel moved between cells
    _edit(baseline, lambda s: s["entries"][2].update(cm=cm))
    assert main(["drift", "synthetic"]) == 1
    assert "DRIFT    downsample@128x64 pixels" in capsys.readouterr().out
    _edit(baseline, lambda s: s["entries"][2].update(tol_abs=1.0))
    assert main(["drift", "synthetic"]) == 0  # within its tolerance
    capsys.readouterr()

    # a unit the baseline expects but the gate's sweep does not produce
    _edit(baseline, lambda s: s["entries"].append({"method": "downsample", "size": "64x32", "metric": "miou",
                                                    "expected": 0.5, "tol_abs": 1.0, "measured": 0.0}))
    assert main(["drift", "synthetic"]) == 1
    assert "MISSING  downsample@64x32 miou" in capsys.readouterr().out
    _edit(baseline, lambda s: s["entries"].pop())

    # time: compared on the stored fingerprint, skipped on another
    _edit(baseline, lambda s: s["entries"].append({**UNIT, "metric": "time_ms", "expected": 1e9, "tol_rel": 0.5}))
    assert main(["drift", "synthetic"]) == 1
    assert "DRIFT    downsample@128x64 time_ms" in capsys.readouterr().out
    _edit(baseline, lambda s: s.update(fingerprint="another-machine"))
    assert main(["drift", "synthetic"]) == 0
    assert "SKIPPED  downsample@128x64 time_ms" in capsys.readouterr().out


def test_drift_without_a_baseline_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "drift", "no_such_dataset"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no drift baseline at" in proc.stdout and "no_such_dataset.json" in proc.stdout


SHIPPED = ROOT / "results" / "baselines" / "synthetic.json"


def _check_baseline(spec: dict) -> None:
    assert spec["entries"] and spec["fingerprint"] and spec["overrides"]["train"] is False
    units = set()
    for e in spec["entries"]:
        assert {"method", "size", "metric", "expected", "tol_abs", "measured"} <= set(e), e
        assert e["metric"] in drift.ACCURACY_METRICS or e["metric"].startswith("iou/"), e
        assert e["tol_abs"] >= e["measured"] >= 0, e
        if e["metric"] == "pixels":
            cm = e["cm"]
            assert e["expected"] == 0.0 and len(cm) == len(cm[0]) and sum(map(sum, cm)) > 0, e
        units.add((e["method"], e["size"]))
    for unit in units:  # every unit carries every accuracy metric
        assert {e["metric"] for e in spec["entries"] if (e["method"], e["size"]) == unit} >= set(drift.ACCURACY_METRICS)


def test_shipped_baseline_is_well_formed():
    _check_baseline(json.loads(SHIPPED.read_text()))


@pytest.mark.parametrize("damage", ["no cm", "tol below measured", "no measured", "no mba"])
def test_a_damaged_baseline_is_not_well_formed(damage):
    spec = json.loads(SHIPPED.read_text())
    pixels = next(e for e in spec["entries"] if e["metric"] == "pixels")
    if damage == "no cm":
        del pixels["cm"]
    elif damage == "tol below measured":
        spec["entries"][0].update(measured=1.0, tol_abs=0.5)
    elif damage == "no measured":
        del spec["entries"][0]["measured"]
    else:
        assert spec["entries"].pop(1)["metric"] == "mba"  # a unit without one of its accuracy metrics
    with pytest.raises((AssertionError, KeyError)):
        _check_baseline(spec)
