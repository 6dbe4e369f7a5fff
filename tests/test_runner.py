"""Runner end to end on tiny synthetic images: records, resume after a kill, failures, tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.evaluation import records
from bench.core.config import build
from bench.pipeline.runner import run_sweep, train_missing
from bench.pipeline.unit import unit_keys
from bench.report.tables import render

PLUGINS = str(Path(__file__).parent / "plugins")
ENV_METHODS = "slow_downsample=slow_method:SlowDownsample;broken=slow_method:BrokenMethod"


def _flat(tmp: Path, **extra):
    flat = {"dataset": "synthetic", "data.size": "128x64", "data.n_images": 4, "train_data.n_images": 2,
            "input_size": "32x16", "methods": ["downsample", "patching"], "table1_sizes": ["64x32"],
            "backbone_options": {"width": 8}, "backbone_train": {"iterations": 3, "batch_size": 2},
            "checkpoint_dir": str(tmp / "ck"), "out_dir": str(tmp / "runs"), "tables_dir": str(tmp / "tables"),
            "warmup": 0, "threads": 1}
    flat.update(extra)
    return flat


@pytest.fixture
def plugin_env(monkeypatch):
    monkeypatch.setenv("MAGNET_BENCH_METHODS", ENV_METHODS)
    monkeypatch.setenv("PYTHONPATH", PLUGINS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(PLUGINS)


def _image_records(cfg):
    return [r for r in records.load(cfg.out_path) if r["type"] == "image"]


def test_sweep_records_and_tables(tmp_path):
    cfg = build(_flat(tmp_path, isolate=False))
    assert train_missing(cfg)["backbone"] == "trained"
    assert set(run_sweep(cfg).values()) == {"ok"}
    recs = _image_records(cfg)
    assert len(recs) == 3 * 4  # downsample@32x16, patching@32x16, downsample@64x32
    r = recs[0]
    assert {"cm", "mba", "time_ms", "mem_peak_mib", "mem_method", "provenance"} <= set(r)
    assert {"git_sha", "git_dirty", "versions", "device", "threads", "seed"} <= set(r["provenance"])
    paths = render(cfg)
    assert (cfg.tables_path / "table2.tex").is_file() and "Patching" in paths[0].read_text()
    # a second run resumes: nothing new is appended
    run_sweep(cfg)
    assert len(_image_records(cfg)) == 12


def test_isolated_unit_memory_is_per_process(tmp_path):
    cfg = build(_flat(tmp_path, methods=["downsample"], table1_sizes=[]))
    train_missing(cfg)
    assert set(run_sweep(cfg).values()) == {"ok"}
    recs = _image_records(cfg)
    assert len(recs) == 4 and recs[0]["mem_method"] in ("rss_hwm_reset", "rss_subprocess")
    assert all(r["mem_peak_delta_mib"] >= 0 for r in recs)
    assert all(r["provenance"]["allocator"]["tuned"] for r in recs)  # the unit's process was tuned


def test_kill_mid_sweep_then_resume(tmp_path, plugin_env):
    flat = _flat(tmp_path, methods=["slow_downsample"], table1_sizes=[], isolate=False)
    (tmp_path / "cfg.yaml").write_text(json.dumps(flat))
    cmd = [sys.executable, "-m", "bench", "run", "--config", str(tmp_path / "cfg.yaml")]
    train_missing(build(flat))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = build(flat)
    deadline = time.time() + 120
    while time.time() < deadline and not _image_records(cfg):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _image_records(cfg)
    assert 1 <= len(first) < 4, "the kill must land mid-sweep"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = [r["image_id"] for r in _image_records(cfg)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4


def test_failures_are_recorded_and_sweep_goes_on(tmp_path, plugin_env):
    cfg = build(_flat(tmp_path, methods=["broken", "no_such_method", "downsample"], table1_sizes=[]))
    train_missing(cfg)
    status = run_sweep(cfg)
    assert status[("downsample", (32, 16))] == "ok"
    assert status[("broken", (32, 16))] == "error"
    units = [r for r in records.load(cfg.out_path) if r["type"] == "unit"]
    messages = {r["method"]: r for r in units}
    assert "this method always fails" in messages["broken"]["message"]
    assert messages["no_such_method"]["status"] == "error" and "unknown method" in messages["no_such_method"]["message"]
    md = render(cfg)[0].read_text()
    assert "| error |" in md


def test_missing_checkpoint_is_reported_not_faked(tmp_path):
    cfg = build(_flat(tmp_path, methods=["downsample"], table1_sizes=[], train=False, isolate=False))
    status = train_missing(cfg)
    assert status["backbone"] == "missing"
    run_sweep(cfg)
    units = [r for r in records.load(cfg.out_path) if r["type"] == "unit"]
    assert units and units[0]["status"] == "missing_checkpoint" and "backbone weights not found" in units[0]["message"]
    assert not _image_records(cfg)


def test_unit_key_changes_with_config(tmp_path):
    a = unit_keys(build(_flat(tmp_path)))
    b = unit_keys(build(_flat(tmp_path, **{"patching.stitch": "assign"})))
    assert a[("downsample", (32, 16))] == b[("downsample", (32, 16))]
    assert a[("patching", (32, 16))] != b[("patching", (32, 16))]
