"""The ``training:`` block (resume interval, data-loading workers, resume) reaches every training the pipeline starts."""

from __future__ import annotations

import pytest

from bench.core.config import TrainRuntime, build, train_runtime
from bench.pipeline import train


def test_training_block_dotted_and_nested_builds_the_runtime():
    assert train_runtime(build({})) == TrainRuntime()
    cfg = build({"training": {"workers": 2}, "training.checkpoint_every_s": 0})
    assert train_runtime(cfg) == TrainRuntime(checkpoint_every_s=0, workers=2, resume=True)
    with pytest.raises(KeyError, match="unknown key training.worker; did you mean training.workers"):
        build({"training.worker": 2})
    with pytest.raises(ValueError, match="workers must be >= 0"):
        train_runtime(build({"training.workers": -1}))


def test_the_backbone_training_gets_the_configs_runtime(tmp_path, monkeypatch):
    seen = {}

    def fake_train(model, data, crop, path, tcfg, device, sidecar=None, runtime=None):  # noqa: ANN001, ANN202
        seen["runtime"] = runtime
        return {"seconds": 1.0, "loss_first": 1.0, "loss_last": 0.5}

    monkeypatch.setattr(train, "train_backbone", fake_train)
    cfg = build({"dataset": "synthetic", "checkpoint_dir": str(tmp_path), "train": True,
                 "training": {"checkpoint_every_s": 7, "resume": False}})
    assert train._ensure_backbone(cfg, lambda: None, "cpu") == "trained"
    assert seen["runtime"] == TrainRuntime(checkpoint_every_s=7, workers=0, resume=False)
