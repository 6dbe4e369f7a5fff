"""The aerial default (configs/datasets/synthetic_aerial.yaml) and its committed reference weights.

`make bench DATASET=synthetic_aerial` trains nothing: every unit must find its weight files in
weights/synthetic_aerial, listed in the manifest, trained with the options the config asks for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.config import REPO_DIR, format_size, parse_size
from bench.core.registry import resolve
from bench.pipeline.configure import load
from bench.pipeline.unit import method_config, unit_weights
from bench.weights import reference, sidecar

# The learned methods the aerial tables compare (issue 23: ISDNet beside MagNet and GLNet).
LEARNED = ("magnet", "magnet_fast", "glnet", "isdnet")
DEEPGLOBE_RATIO = 2448 / 508  # tile side / input side of configs/datasets/deepglobe.yaml


@pytest.fixture(scope="module")
def cfg():
    return load("synthetic_aerial")


def test_config_is_the_aerial_default_in_deepglobes_geometry(cfg):
    """Evaluates the committed set without training, at DeepGlobe's tile/input ratio, MagNet up to the tile."""
    assert cfg.dataset == "synthetic_aerial" and cfg.split == "val"
    assert not cfg.train
    assert cfg.reference_dir == "weights/synthetic_aerial"
    assert Path(cfg.checkpoint_path).resolve() == (REPO_DIR / "weights/synthetic_aerial").resolve()
    for name in LEARNED:
        assert name in cfg.methods, name
    tile_w, tile_h = parse_size(cfg.data["size"])
    assert tile_w == tile_h and cfg.input_size[0] == cfg.input_size[1]
    assert tile_w / cfg.input_size[0] == pytest.approx(DEEPGLOBE_RATIO, rel=0.02)
    mcfg = method_config(cfg, resolve("magnet"), "magnet")
    assert parse_size(mcfg.scales[-1]) == (tile_w, tile_h)  # the last stage is the whole tile
    assert parse_size(mcfg.crop_size) == parse_size(mcfg.scales[0])
    icfg = method_config(cfg, resolve("isdnet"), "isdnet")
    assert icfg.rotate and icfg.batch_size >= 2
    assert parse_size(icfg.crop_size) == (tile_w // 2, tile_h // 2)  # half the tile side, as the release's 1224 of 2448


def test_every_unit_names_committed_weights_listed_in_the_manifest(cfg):
    """Each unit's files exist, match their sha256 in the manifest, and the manifest evaluated the unit."""
    folder = Path(cfg.checkpoint_path)
    assert reference.is_reference(folder), f"no manifest in {folder}"
    manifest = reference.load_manifest(folder)
    assert manifest["dataset"] == "synthetic_aerial"
    for name, size in cfg.units():
        label = f"{name}@{format_size(size)}"
        paths = unit_weights(cfg, name, size)
        if name in LEARNED:
            assert any(k != "backbone" for k in paths), f"{label}: no weights of its own"
        for path in paths.values():
            rel = Path(path).resolve().relative_to(folder.resolve()).as_posix()
            assert rel in manifest["files"], f"{label}: {rel} not in the manifest"
            assert label in manifest["files"][rel]["units"], f"{label} not among the users of {rel}"
        reference.verify(folder, list(paths.values()))
        assert manifest["metrics"][label]["status"] == "ok", label


@pytest.mark.parametrize("name", LEARNED)
def test_learned_weights_were_trained_with_the_configs_options(cfg, name):
    """The sidecars match the config's training options (an edited schedule without retraining is stale)."""
    cls = resolve(name)
    size = cfg.input_size
    paths = {k: p for k, p in unit_weights(cfg, name, size).items() if k != "backbone"}
    assert paths and all(sidecar.stored(p) is not None for p in paths.values()), f"{name}: a file without its sidecar"
    options = sidecar.training_options(cls, method_config(cfg, cls, name), cfg.backbone_path, cfg.seed)
    sidecar.check(paths, options, name)


def test_backbone_was_trained_with_the_configs_options(cfg):
    assert sidecar.stored(cfg.backbone_path) is not None
    sidecar.check_backbone(cfg)
