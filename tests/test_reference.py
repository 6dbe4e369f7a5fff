"""Reference weights: staging, manifest, install, verification, the refusal to train into them; config resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.checks.reference_set as reference_cli
from bench.evaluation import records
from bench.weights import reference
from bench.core.config import build, load
from bench.pipeline.runner import run_sweep, train_missing

TINY = """dataset: synthetic
data.size: 128x64
data.n_images: 2
train_data.n_images: 2
input_size: 32x16
methods: [downsample, segfix]
table1_methods: [downsample]
table1_sizes: [64x32]
backbone_options: {width: 8}
backbone_train: {iterations: 3, batch_size: 2}
segfix.iterations: 2
segfix.batch_size: 2
segfix.crop_size: [48, 48]
segfix.width: 8
segfix.head_channels: 16
warmup: 0
threads: 1
train: false
reference_dir: {root}/weights/tiny
bootstrap: 0
save_predictions: 0
isolate: false
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A tiny reference set trained, evaluated and installed under a fake repository root."""
    root = tmp_path_factory.mktemp("ref")
    config = root / "tiny.yaml"
    config.write_text(TINY.replace("{root}", str(root)))
    cfg = reference_cli.staged_config("synthetic", {}, 0, root / "stage", str(config))
    manifest = reference_cli.train_and_evaluate(cfg, "test")
    target = reference_cli.install(cfg.checkpoint_path, root / "weights" / "tiny")
    return {"root": root, "config": str(config), "manifest": manifest, "target": target}


def _sweep(installed, out: str, **overrides):
    cfg = load("synthetic", {"out_dir": str(installed["root"] / out), **overrides}, installed["config"])
    return cfg, run_sweep(cfg)


def test_manifest_lists_every_file_with_sha256_and_provenance(installed):
    m, target = installed["manifest"], installed["target"]
    files = sorted(p.relative_to(target).as_posix() for p in reference.weight_files(target))
    assert sorted(m["files"]) == files and "backbone.pt" in files
    for rel, entry in m["files"].items():
        assert entry["sha256"] == reference.sha256(target / rel)
    assert m["files"]["backbone.pt"]["units"] == ["downsample@32x16", "downsample@64x32", "segfix@32x16"]
    assert {"command", "training_command", "training_config", "training_digest", "seed", "torch", "fingerprint",
            "machine", "metrics"} <= set(m)
    assert m["training_config"]["backbone_train"]["iterations"] == 3
    assert m["metrics"]["segfix@32x16"]["status"] == "ok" and 0 <= m["metrics"]["segfix@32x16"]["miou"] <= 1
    assert m["seed"] == 0 and m["train_seconds"] is not None


def test_default_config_evaluates_the_reference(installed):
    cfg = load("synthetic", {}, installed["config"])
    assert cfg.checkpoint_path == installed["target"]
    assert load("synthetic", {"train": True}, installed["config"]).checkpoint_path == Path("results/checkpoints/synthetic")
    cfg, status = _sweep(installed, "clean")
    assert set(status.values()) == {"ok"}
    assert {r["method"] for r in records.load(cfg.out_path)} == {"downsample", "segfix"}


@pytest.mark.parametrize("victim", ["segfix.pt", "segfix.pt.train.json"])
def test_changed_reference_file_is_refused(installed, victim):
    path = next(installed["target"].glob(f"methods-*/{victim}"))
    backup = path.read_bytes()
    data = bytearray(backup)
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    try:
        cfg, status = _sweep(installed, f"tamper-{victim}")
    finally:
        path.write_bytes(backup)
    assert status[("segfix", (32, 16))] == "reference_mismatch"
    assert status[("downsample", (32, 16))] == "ok"
    msg = [r["message"] for r in records.load(cfg.out_path) if r["type"] == "unit"][0]
    assert victim in msg and "manifest" in msg and "git checkout" in msg


def test_unlisted_file_is_refused(installed):
    extra = installed["target"] / "unlisted.pt"
    extra.write_bytes(b"x")
    try:
        with pytest.raises(reference.ReferenceMismatch, match="not listed"):
            reference.verify(installed["target"], [extra])
    finally:
        extra.unlink()


def test_training_never_writes_into_the_reference(installed):
    cfg = load("synthetic", {"train": True, "checkpoint_dir": str(installed["target"])}, installed["config"])
    with pytest.raises(reference.ReferenceWrite, match="never trained into"):
        train_missing(cfg)


def test_staged_run_is_resumed_not_retrained(installed):
    cfg = reference_cli.staged_config("synthetic", {}, 0, installed["root"] / "stage", installed["config"])
    again = reference_cli.train_and_evaluate(cfg, "test")
    assert again["files"] == installed["manifest"]["files"]


def test_seed_overrides_reach_every_seeded_method():
    cfg = build({"methods": ["downsample", "dgf", "pointrend", "segfix", "magnet"]})
    assert reference_cli.seed_overrides(cfg, 3) == {"seed": 3, "dgf.seed": 3, "pointrend.seed": 3, "segfix.seed": 3}


def test_install_refuses_an_unfinished_staging(tmp_path):
    (tmp_path / "stage").mkdir()
    with pytest.raises(RuntimeError, match="no manifest.json"):
        reference_cli.install(tmp_path / "stage", tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    (tmp_path / "w.pt").write_bytes(b"1")
    with pytest.raises(reference.ReferenceMismatch, match="not valid JSON"):
        reference.verify(tmp_path, [tmp_path / "w.pt"])
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(reference.ReferenceMismatch, match="schema"):
        reference.verify(tmp_path, [tmp_path / "w.pt"])


def test_committed_reference_matches_its_manifest():
    """The repository's own reference set: every file listed, every sha256 right."""
    cfg = load("synthetic")
    folder = cfg.checkpoint_path
    assert reference.is_reference(folder), f"no reference weights at {folder}"
    listed = reference.load_manifest(folder)["files"]
    assert sorted(listed) == sorted(p.relative_to(folder).as_posix() for p in reference.weight_files(folder))
    reference.verify(folder, [folder / rel for rel in listed if not rel.endswith(".train.json")])


def test_train_check_reproduces_the_reference_to_the_bit(installed, capsys):
    """Retraining on this machine (same training fingerprint) gives every file's sha256 again."""
    from argparse import Namespace

    from bench.checks.seeds import train_check

    args = Namespace(dataset="synthetic", overrides=[], config=installed["config"],
                     staging=str(installed["root"] / "check"))
    assert train_check(args) == 0
    out = capsys.readouterr().out
    assert "bit-identical files required" in out and "identical: backbone.pt" in out and "passed" in out


def test_train_check_reports_a_config_that_trains_otherwise(installed, capsys):
    from argparse import Namespace

    from bench.checks.seeds import train_check

    args = Namespace(dataset="synthetic", overrides=["segfix.lr=0.01"], config=installed["config"],
                     staging=str(installed["root"] / "check-lr"))
    assert train_check(args) == 1
    assert "trains otherwise than the reference" in capsys.readouterr().out


def test_add_trains_only_the_new_method_and_keeps_the_old_files(installed, tmp_path):
    """``--add dgf`` on the tiny set: old files byte-identical, new weights listed, an additions entry."""
    extra = {"methods": ["downsample", "segfix", "dgf"], "dgf.iterations": 2, "dgf.batch_size": 2,
             "dgf.crop_size": [48, 48], "dgf.hidden": 8, "dgf.cache_images": 2}
    old = json.loads((installed["target"] / reference.MANIFEST).read_text())
    cfg, manifest = reference_cli.add_methods("synthetic", ["dgf"], extra, "test --add dgf",
                                              config_file=installed["config"], staging=tmp_path / "add")
    for rel, entry in old["files"].items():
        assert manifest["files"][rel]["sha256"] == entry["sha256"]
    added = manifest["additions"][-1]
    assert added["methods"] == ["dgf"] and added["files"]
    assert all("dgf" in f for f in added["files"]), added["files"]
    assert "dgf@32x16" in manifest["metrics"] and manifest["metrics"]["dgf@32x16"]["status"] == "ok"
    assert manifest["training_config"]["methods"]["dgf"]
    reference.verify(cfg.checkpoint_path, reference.weight_files(cfg.checkpoint_path))
    with pytest.raises(RuntimeError, match="already made with it"):
        reference_cli.add_methods("synthetic", ["segfix"], extra, "x", config_file=installed["config"],
                                  staging=tmp_path / "again")
    with pytest.raises(RuntimeError, match="not in the sweep"):
        reference_cli.add_methods("synthetic", ["pointrend"], {}, "x", config_file=installed["config"],
                                  staging=tmp_path / "again")
