"""Trained weights remember their training options; changed options are refused, never silently reused."""

from __future__ import annotations

import json

import pytest

from bench.weights import sidecar
from bench.evaluation import records
from bench.core.config import build
from tests.test_runner import _flat

MAGNET = {"methods": ["magnet"], "table1_sizes": [], "magnet.scales": ["32x16", "64x32", "128x64"],
          "magnet.n_points": 256, "magnet.epochs": 1, "magnet.iterations_per_epoch": 1, "magnet.train_batch_size": 2,
          "isolate": False}


def test_check_names_each_changed_field(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"x")
    sidecar.write({"w": path}, {"lr": 0.01, "epochs": 5, "backbone_digest": "abc"})
    sidecar.check({"w": path}, {"lr": 0.01, "epochs": 5, "backbone_digest": "abc"}, "m")  # same: fine
    with pytest.raises(sidecar.StaleCheckpoint, match=r"lr: trained with 0.01, config has 0.02.*Delete"):
        sidecar.check({"w": path}, {"lr": 0.02, "epochs": 5, "backbone_digest": "abc"}, "m")
    other = tmp_path / "given.pt"  # no sidecar (given or released weights): not checked
    other.write_bytes(b"x")
    sidecar.check({"w": other}, {"lr": 1.0}, "m")


def test_magnet_refiners_trained_then_refused_when_training_options_change(tmp_path):
    from bench.pipeline.runner import run_sweep, train_missing

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


def test_a_field_the_sidecar_lacks_counts_as_changed(tmp_path):
    """A field recorded on one side only (an older sidecar, a field gone from the config) counts as changed."""
    path = tmp_path / "w.pt"
    path.write_bytes(b"x")
    sidecar.write({"w": path}, {"backbone_digest": "abc"})
    with pytest.raises(sidecar.StaleCheckpoint, match=r"seed: trained with None, config has 0"):
        sidecar.check({"w": path}, {"seed": 0, "backbone_digest": "abc"}, "m")
    sidecar.write({"w": path}, {"backbone_digest": "abc", "data": {"n_images": 2}})  # and the reverse
    with pytest.raises(sidecar.StaleCheckpoint, match=r"data: trained with \{'n_images': 2\}, config has None"):
        sidecar.check({"w": path}, {"backbone_digest": "abc"}, "m")


# DGF, PointRend and SegFix at a few steps on 32x32 crops
LEARNED = {"methods": ["dgf", "pointrend", "segfix"], "table1_sizes": [], "isolate": False,
           "dgf.iterations": 1, "dgf.batch_size": 1, "dgf.crop_size": [32, 32], "dgf.hidden": 8,
           "pointrend.iterations": 1, "pointrend.batch_size": 1, "pointrend.train_points": 32,
           "pointrend.fc_channels": 16, "pointrend.num_fcs": 1,
           "segfix.iterations": 1, "segfix.batch_size": 1, "segfix.crop_size": [32, 32], "segfix.width": 8,
           "segfix.head_channels": 8}


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A checkpoint folder with the backbone, DGF, PointRend and SegFix trained by ``train_missing``."""
    from bench.core.registry import resolve
    from bench.pipeline.runner import train_missing

    resolve("pointrend")  # mmseg is required: unavailable is a failure, not a skip
    tmp = tmp_path_factory.mktemp("learned")
    status = train_missing(build(_flat(tmp, **LEARNED)))
    assert set(status.values()) == {"trained"}, status
    return tmp


@pytest.mark.parametrize(("field", "value", "stored"), [
    ("dgf.seed", 1, 0), ("dgf.lr", 0.5, 0.01), ("dgf.crop_size", [32, 16], [32, 32]),
    ("pointrend.lr", 0.5, 0.001), ("pointrend.train_points", 16, 32), ("pointrend.fc_channels", 8, 16),
    ("segfix.iterations", 2, 1), ("segfix.seed", 3, 0), ("segfix.max_distance", 3, 5),
])
def test_each_learned_method_refuses_a_changed_training_field(learned, field, value, stored):
    from bench.pipeline.runner import train_missing

    name, option = field.split(".")
    status = train_missing(build(_flat(learned, **{**LEARNED, field: value})))
    assert status[f"{name}@32x16"].startswith(f"stale: {name} weights")
    assert f"{option}: trained with {stored!r}, config has {value!r}" in status[f"{name}@32x16"]
    assert "Delete" in status[f"{name}@32x16"] and "method_checkpoint_dir" in status[f"{name}@32x16"]
    assert {k: v for k, v in status.items() if not k.startswith(name)} == {
        "backbone": "present", **{f"{m}@32x16": "present" for m in LEARNED["methods"] if m != name}}


def test_unchanged_or_inference_only_options_reuse_the_weights(learned):
    from bench.pipeline.runner import train_missing

    for extra in ({}, {"dgf.cache_images": 1, "pointrend.subdivision_points": 64, "segfix.scale": 3,
                       "pointrend.cache_features": False, "segfix.cache_targets": False}):
        status = train_missing(build(_flat(learned, **{**LEARNED, **extra})))
        assert set(status.values()) == {"present"}, status
    metas = {p.name: json.loads(p.read_text()) for p in learned.glob("ck/methods-*/*.train.json")}
    assert set(metas) == {"dgf.pt.train.json", "pointrend.pt.train.json", "segfix.pt.train.json"}
    assert metas["dgf.pt.train.json"]["seed"] == 0 and metas["segfix.pt.train.json"]["crop_size"] == [32, 32]
    assert not list(learned.glob("ck/**/.*.tmp"))  # the atomic saves left no staging folder


def test_the_sweep_refuses_stale_pointrend_weights(learned):
    from bench.pipeline.runner import run_sweep

    changed = build(_flat(learned, **{**LEARNED, "methods": ["pointrend"], "pointrend.lr": 0.5}))
    assert run_sweep(changed) == {("pointrend", (32, 16)): "stale_checkpoint"}
    unit = [r for r in records.load(changed.out_path) if r["type"] == "unit"][-1]
    assert "lr: trained with 0.001, config has 0.5" in unit["message"]


BACKBONE_ONLY = {"methods": ["downsample"], "table1_sizes": [], "isolate": False}


def test_backbone_sidecar_records_its_training_and_refuses_changes(tmp_path):
    import torch

    from bench.data import dataset_info
    from bench.pipeline.runner import run_sweep, train_missing
    from bench.pipeline.unit import load_backbone

    cfg = build(_flat(tmp_path, **BACKBONE_ONLY))
    assert train_missing(cfg) == {"backbone": "trained", "downsample@32x16": "none needed"}
    meta = json.loads(sidecar.sidecar(cfg.backbone_path).read_text())
    assert meta == sidecar.backbone_training_options(cfg)
    assert meta["backbone_train.iterations"] == 3 and meta["backbone_train.seed"] == 0
    assert meta["data"] == {"size": [128, 64], "n_images": 2} and meta["input_size"] == [32, 16]
    assert {"backbone", "backbone_options", "dataset", "train_split"} <= set(meta)
    # the same training, spelled otherwise, is accepted
    same = build(_flat(tmp_path, **BACKBONE_ONLY, **{"data.size": [128, 64]}))
    assert train_missing(same)["backbone"] == "present"
    load_backbone(same, dataset_info(same.dataset), torch.device("cpu"))
    for change, field in [({"backbone_train": {"iterations": 4, "batch_size": 2}}, "backbone_train.iterations"),
                          ({"seed": 1}, "backbone_train.seed"), ({"train_data.n_images": 3}, "data"),
                          ({"backbone_options": {"width": 4}}, "backbone_options")]:
        changed = build(_flat(tmp_path, **{**BACKBONE_ONLY, **change}))
        status = train_missing(changed)
        assert set(status) == {"backbone"}, status  # nothing trains on a stale backbone
        assert status["backbone"].startswith(f"stale: backbone weights {cfg.backbone_path}")
        assert f"{field}: trained with" in status["backbone"] and "backbone_checkpoint" in status["backbone"]
        with pytest.raises(sidecar.StaleCheckpoint, match=field):
            load_backbone(changed, dataset_info(changed.dataset), torch.device("cpu"))
    assert run_sweep(changed) == {("downsample", (32, 16)): "stale_checkpoint"}


def test_backbone_without_sidecar_is_not_checked(tmp_path):
    """Given or released backbone weights carry no sidecar and load under any training options."""
    from bench.pipeline.runner import train_missing

    cfg = build(_flat(tmp_path, **BACKBONE_ONLY))
    train_missing(cfg)
    sidecar.sidecar(cfg.backbone_path).unlink()
    assert train_missing(build(_flat(tmp_path, **BACKBONE_ONLY, seed=5)))["backbone"] == "present"


def test_magnet_records_the_run_seed_that_seeds_its_refiners(tmp_path):
    from magnet.config import MagNetConfig
    from magnet.method import MagNet

    path = tmp_path / "refiner.pt"
    path.write_bytes(b"w")
    seed0 = sidecar.training_options(MagNet, MagNetConfig(), tmp_path / "bb.pt", 0)
    assert seed0["run_seed"] == 0
    sidecar.write({"r": path}, seed0)
    sidecar.check({"r": path}, seed0, "magnet")
    with pytest.raises(sidecar.StaleCheckpoint, match="run_seed"):
        sidecar.check({"r": path}, sidecar.training_options(MagNet, MagNetConfig(), tmp_path / "bb.pt", 1),
                              "magnet")


# ---------------------------------------------------------------------------------------------
# weights_from: given weights evaluated under another dataset config (issue 13)


def test_weights_from_takes_the_model_from_the_weights_config_and_the_data_from_the_run():
    from bench.core.config import REPO_DIR
    from bench.pipeline.configure import load

    cfg = load("cityscapes", {"data_root": "/data/cs", "weights_from": "synthetic"})
    synthetic = load("synthetic")
    assert (cfg.dataset, cfg.data_root, cfg.split, dict(cfg.data)) == ("cityscapes", "/data/cs", "val", {})
    assert (cfg.backbone, cfg.input_size, cfg.seed) == (synthetic.backbone, synthetic.input_size, synthetic.seed)
    assert cfg.method_options["magnet"] == synthetic.method_options["magnet"]  # not cityscapes' magnet.* lines
    assert cfg.checkpoint_path == REPO_DIR / "weights" / "synthetic" and not cfg.train
    assert str(cfg.out_path) == "results/runs/cityscapes-from-synthetic"
    assert load("cityscapes", {"weights_from": "synthetic", "input_size": "256x128"}).input_size == (256, 128)
    with pytest.raises(ValueError, match="trains nothing: drop train=true"):
        load("cityscapes", {"weights_from": "synthetic", "train": True})
    with pytest.raises(FileNotFoundError, match="weights_from: no config .*nothing.yaml"):
        load("cityscapes", {"weights_from": "nothing"})


def test_weights_from_demands_only_the_backbones_architecture(tmp_path):
    from bench.pipeline.configure import load

    path = tmp_path / "backbone.pt"
    path.write_bytes(b"x")
    trained = load("synthetic", {"backbone_checkpoint": str(path)})
    sidecar.write({"backbone": path}, sidecar.backbone_training_options(trained))
    given = load("cityscapes", {"weights_from": "synthetic", "backbone_checkpoint": str(path)})
    sidecar.check_backbone(given)  # dataset, data, schedule differ: the weights' own history
    with pytest.raises(sidecar.StaleCheckpoint, match="dataset: trained with 'synthetic', config has 'cityscapes'"):
        sidecar.check_backbone(build({**given.to_dict(), "weights_from": None}))  # training: all demanded
    wider = load("cityscapes", {"weights_from": "synthetic", "backbone_checkpoint": str(path),
                                "backbone_options": {"width": 64}})
    with pytest.raises(sidecar.StaleCheckpoint, match=r"backbone_options: trained with \{\}, config has \{'width': 64\}"):
        sidecar.check_backbone(wider)


@pytest.mark.data
def test_synthetic_weights_on_the_real_cityscapes_frames(tmp_path, capsys):
    """The README's command, on the first frame of ../shared/data/cityscapes (train split: the sample has no val)."""
    from bench.cli.main import main
    from conftest import shared_data

    root = shared_data("cityscapes")
    assert main(["run", "cityscapes", f"data_root={root}", "weights_from=synthetic", "split=train", "limit=1",
                 "methods=[downsample]", "table1_methods=[]", "isolate=false", "bootstrap=0",
                 f"out_dir={tmp_path / 'runs'}"]) == 0
    assert "1 units: 1 ok" in capsys.readouterr().out
    table = (tmp_path / "runs" / "tables" / "table3.md").read_text()
    assert "| Downsample |" in table and "cityscapes train, 1 images" in table
