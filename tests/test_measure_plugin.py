"""Time and memory measured against a plugin of known cost (tests/plugins/costly_method.py).

The plugin sleeps 200 ms in every ``refine`` and touches 64 MiB in the 1st and 3rd; a plain
Downsample unit in the same sweep is the reference for what the method costs besides that (in a
unit subprocess the first backbone forward leaves ~12 MiB resident above the post-setup baseline,
on every image alike).
"""

from __future__ import annotations

import os
from pathlib import Path


from bench.evaluation import records
from bench.core.config import build
from bench.pipeline.runner import run_sweep, train_missing

PLUGINS = str(Path(__file__).parent / "plugins")
MIB = 64


def test_recorded_time_and_memory_match_a_known_cost(tmp_path, monkeypatch):
    # each unit in its own subprocess, as the runner measures by default (in this process the
    # post-setup baseline is noisy: after the rest of the suite, RSS can fall below it by more than
    # 64 MiB while a unit runs)
    monkeypatch.setenv("MAGNET_BENCH_METHODS", "costly_downsample=costly_method:CostlyDownsample")
    monkeypatch.setenv("PYTHONPATH", PLUGINS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(PLUGINS)
    cfg = build({"dataset": "synthetic", "data.size": "128x64", "data.n_images": 3, "train_data.n_images": 2,
                 "input_size": "32x16", "methods": ["downsample", "costly_downsample"], "table1_sizes": [],
                 "backbone_options": {"width": 8}, "backbone_train": {"iterations": 2, "batch_size": 2},
                 "checkpoint_dir": str(tmp_path / "ck"), "out_dir": str(tmp_path / "runs"),
                 "tables_dir": str(tmp_path / "tables"), "warmup": 0, "threads": 1, "bootstrap": 0,
                 "save_predictions": 0, "isolate": True})
    train_missing(cfg)  # the tiny backbone
    assert set(run_sweep(cfg).values()) == {"ok"}
    recs = {}
    for r in records.load(cfg.out_path):
        if r["type"] == "image":
            recs.setdefault(r["method"], []).append(r)
    plain, costly = (sorted(recs[m], key=lambda r: r["image_id"]) for m in ("downsample", "costly_downsample"))
    assert len(plain) == len(costly) == 3
    for r in costly:
        assert 200 <= r["time_refine_ms"] <= r["time_ms"] < 2000, r["time_ms"]
    assert all(r["time_refine_ms"] < 200 for r in plain)
    assert {r["mem_method"] for r in costly} == {"rss_hwm_reset"}  # a per-image peak, as the checks below need
    extra = [c["mem_peak_delta_mib"] - p["mem_peak_delta_mib"] for p, c in zip(plain, costly)]
    touched, idle, again = extra
    assert 0.75 * MIB <= touched <= 1.25 * MIB and 0.75 * MIB <= again <= 1.25 * MIB, extra
    assert abs(idle) < 0.05 * MIB, extra  # back near the plain method's level on the image that allocates nothing
    for r in (costly[0], costly[2]):
        assert 0.75 * MIB <= r["mem_peak_delta_mib"] <= 1.25 * MIB, r["mem_peak_delta_mib"]
