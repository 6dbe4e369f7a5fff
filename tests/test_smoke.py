"""``bench smoke`` on the real samples of ../shared/data, with a throw-away backbone (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.checks import smoke
from bench.models.backbones import create_backbone
from conftest import shared_data


def _backbone(folder: Path) -> list[str]:
    """Untrained light backbone weights in ``folder``; returns the overrides that select them."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(create_backbone("light", 19, width=8).state_dict(), folder / "backbone.pt")
    return [f"checkpoint_dir={folder}", "backbone_options={width: 8}"]


@pytest.mark.data
def test_downsample_on_real_cityscapes_and_inria(tmp_path):
    data = shared_data()
    shared_data("cityscapes"), shared_data("inria")
    out = tmp_path / "smoke"
    code = smoke.main(["--data", str(data), "--methods", "downsample", "--datasets", "cityscapes,inria",
                       "--warmup", "0", "--out", str(out), *_backbone(tmp_path / "ck")])
    assert code == 0
    recs = {(r["dataset"], r["size"]): r for r in map(json.loads, (out / "smoke.jsonl").read_text().splitlines())}
    assert set(recs) == {("cityscapes", "1024x512"), ("cityscapes", "2048x1024"), ("inria", "1000x1000")}
    assert all(r["status"] == "ok" and r["time_ms"] > 0 and r["mem_peak_delta_mib"] >= 0 for r in recs.values())
    assert recs[("cityscapes", "2048x1024")]["input_size"] == "128x64"
    assert recs[("inria", "1000x1000")]["input_size"] == "128x128"
    # same 19 classes: scored; Inria's 2 classes: run and loaded, not scored
    assert recs[("cityscapes", "2048x1024")]["miou"] is not None
    assert recs[("inria", "1000x1000")]["miou"] is None and "not scored" in recs[("inria", "1000x1000")]["accuracy_note"]
    assert recs[("inria", "1000x1000")]["label_classes"] == [0, 1]
    md = (out / "smoke.md").read_text()
    assert "×2 side" in md and "| Downsample |" in md and "No accuracy for inria" in md
    assert md.rstrip().splitlines()[-1].startswith("The whole run: ") and "for 3 (method, image) processes" in md


def test_missing_weights_fail_clearly(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "inria").mkdir(parents=True)
    code = smoke.main(["--data", str(data), "--methods", "downsample", f"checkpoint_dir={tmp_path / 'none'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "synthetic weights missing" in err and "make train" in err and "backbone.pt" in err


def test_absent_data_folder_is_skipped(tmp_path, capsys):
    assert smoke.main(["--data", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_input_size_follows_the_aspect_ratio():
    assert smoke.input_size_for((2048, 1024), (128, 64)) == (128, 64)
    assert smoke.input_size_for((2448, 2448), (128, 64)) == (128, 128)
    assert smoke.input_size_for((1000, 2000), (128, 64)) == (64, 128)


def test_stale_weights_fail_clearly(tmp_path, capsys):
    from bench.weights import sidecar
    from bench.core.config import load, parse_overrides

    overrides = _backbone(tmp_path / "ck")
    paths = smoke.trained_weights(load("synthetic", parse_overrides(overrides)), "dgf")
    weights = next(p for k, p in paths.items() if k != "backbone")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    sidecar.sidecar(weights).write_text(json.dumps({"backbone_digest": "another backbone"}))
    data = tmp_path / "data"
    (data / "inria").mkdir(parents=True)
    assert smoke.main(["--data", str(data), "--methods", "dgf", *overrides]) == 2
    err = capsys.readouterr().err
    assert "synthetic weights stale" in err and "backbone_digest" in err and "make train" in err
