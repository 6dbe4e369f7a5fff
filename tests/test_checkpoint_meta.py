"""Trained weights remember their training options; changed options are refused, never silently reused."""

from __future__ import annotations

import json

import pytest

from bench import checkpoint_meta, records
from bench.config import build
from tests.test_runner import _flat

MAGNET = {"methods": ["magnet"], "table1_sizes": [], "magnet.scales": ["32x16", "64x32", "128x64"],
          "magnet.n_points": 256, "magnet.epochs": 1, "magnet.iterations_per_epoch": 1, "magnet.train_batch_size": 2,
          "isolate": False}


def test_check_names_each_changed_field(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"x")
    checkpoint_meta.write({"w": path}, {"lr": 0.01, "epochs": 5, "backbone_digest": "abc"})
    checkpoint_meta.check({"w": path}, {"lr": 0.01, "epochs": 5, "backbone_digest": "abc"}, "m")  # same: fine
    with pytest.raises(checkpoint_meta.StaleCheckpoint, match=r"lr: trained with 0.01, config has 0.02.*Delete"):
        checkpoint_meta.check({"w": path}, {"lr": 0.02, "epochs": 5, "backbone_digest": "abc"}, "m")
    other = tmp_path / "given.pt"  # no sidecar (given or released weights): not checked
    other.write_bytes(b"x")
    checkpoint_meta.check({"w": other}, {"lr": 1.0}, "m")


def test_magnet_refiners_trained_then_refused_when_training_options_change(tmp_path):
    from bench.runner import run_sweep, train_missing

    cfg = build(_flat(tmp_path, **MAGNET))
    status = train_missing(cfg)
    assert status["magnet@32x16"] == "trained"
    metas = list(tmp_path.glob("ck/methods-*/*.train.json"))
    assert len(metas) == 2 and all(json.loads(m.read_text())["epochs"] == 1 for m in metas)
    # inference-only options (n_points) may change freely; the refiner is reused
    assert train_missing(build(_flat(tmp_path, **{**MAGNET, "magnet.n_points": 128})))["magnet@32x16"] == "present"
    changed = build(_flat(tmp_path, **{**MAGNET, "magnet.lr": 0.5}))
    assert train_missing(changed)["magnet@32x16"].startswith("stale: magnet weights")
    assert run_sweep(changed) == {("magnet", (32, 16)): "stale_checkpoint"}
    unit = [r for r in records.load(changed.out_path) if r["type"] == "unit"][-1]
    assert unit["status"] == "stale_checkpoint" and "lr: trained with 0.001, config has 0.5" in unit["message"]
