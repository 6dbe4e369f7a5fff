"""Issue 22 items 1 and 2: coarse masks from files, swept as coarse sources (dataset ``big``, both layouts).

Each check names the one-line bug it catches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main as cli
from bench.core.config import build, load
from bench.core.errors import UserError
from bench.data import create_dataset
from bench.evaluation import records
from bench.pipeline import unit
from bench.pipeline.runner import run_sweep
from bench.pipeline.validate import check_data, check_sources
from tests.big_folders import SOURCES, STEMS, objects, write_big

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "results" / "published" / "synthetic"


def _flat(tmp: Path, root: Path, **extra):
    flat = {"dataset": "big", "data_root": str(root), "split": "test", "track": "refinement",
            "input_size": "64x48", "methods": ["downsample", "guided_filter"], "table1_sizes": [],
            "train": False, "isolate": False, "warmup": 0, "threads": 1, "save_predictions": 0,
            "checkpoint_dir": str(tmp / "no-weights"), "out_dir": str(tmp / "run")}
    flat.update(extra)
    return flat


@pytest.mark.parametrize("layout", ["cascadepsp", "segrefiner"])
def test_both_layouts_give_binarised_samples_with_every_source(tmp_path, layout):
    root = write_big(tmp_path / "big", layout)
    data = create_dataset("big", root=root, split="test")
    assert data.coarse_sources == tuple(sorted(SOURCES)) and data.ids() == sorted(STEMS)
    truth = objects()
    for index, stem in enumerate(data.ids()):
        sample = data[index]
        image, gt, coarse = truth[stem]
        assert np.array_equal(sample.image, image)  # RGB, not BGR
        assert np.array_equal(sample.label, (gt > 128).astype(np.uint8))  # the rule: gt128 by default
        for source in SOURCES:  # each source its own file (a reader that reads one source for all fails)
            assert np.array_equal(sample.coarse[source], (coarse[source] > 128).astype(np.uint8))
    assert not np.array_equal(data[0].coarse["fcn"], data[0].coarse["psp"])


def test_threshold_rule_is_named_and_128_is_object_only_under_ge128(tmp_path):
    root = write_big(tmp_path / "big", "segrefiner")
    gt128 = create_dataset("big", root=root, split="test")[0].label
    ge128 = create_dataset("big", root=root, split="test", threshold="ge128")[0].label
    assert gt128[2, 2] == 0 and ge128[2, 2] == 1  # the generated pixel holds exactly 128
    with pytest.raises(ValueError, match="data.threshold"):
        create_dataset("big", root=root, split="test", threshold="gt127")
    with pytest.raises(ValueError, match="no train split"):
        create_dataset("big", root=root, split="train")


def test_file_coarse_is_full_resolution_one_hot(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    sample = create_dataset("big", root=root, split="test")[0]
    coarse = unit.file_coarse(sample, "psp", 2, torch.device("cpu"))
    h, w = sample.label.shape
    assert coarse.probs.shape == (2, h, w) and coarse.probs.dtype == torch.float32
    assert torch.equal(coarse.labels, torch.from_numpy(sample.coarse["psp"].astype(np.int64)))
    assert torch.all(coarse.probs.sum(0) == 1)
    with pytest.raises(KeyError, match="no coarse map of source 'deeplab'"):
        unit.file_coarse(sample, "deeplab", 2, torch.device("cpu"))


def test_sources_default_to_the_dataset_s_and_an_unknown_one_is_one_line_exit_2(tmp_path, capsys):
    root = write_big(tmp_path / "big", "cascadepsp")
    cfg = build(_flat(tmp_path, root))
    assert unit.sweep_sources(cfg) == ("fcn", "psp")
    assert [u[2] for u in unit.sweep_units(cfg)] == ["fcn", "fcn", "psp", "psp"]
    assert unit.sweep_sources(build(_flat(tmp_path, root, coarse_sources=["psp"]))) == ("psp",)
    bad = build(_flat(tmp_path, root, coarse_sources=["psp", "deeplab"]))
    with pytest.raises(UserError, match=r"coarse_sources: unknown source 'deeplab'.*\['fcn', 'psp'\]"):
        check_sources(bad, check_data(bad))
    code = cli.main(["run", "big", f"data_root={root}", "coarse_sources=[psnet]", f"out_dir={tmp_path / 'x'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "coarse_sources" in err[0] and "'psp'" in err[0] and "'fcn'" in err[0]
    # a semantic dataset has no sources of its own: only backbone
    semantic = load("synthetic", {"coarse_sources": ["fcn"], "data.n_images": 2, "data.size": "64x32"})
    with pytest.raises(UserError, match="only backbone"):
        check_sources(semantic, check_data(semantic))
    with pytest.raises(UserError, match="track: refinement"):
        refinement = load("synthetic", {"track": "refinement", "data.n_images": 2, "data.size": "64x32"})
        check_sources(refinement, check_data(refinement))
    with pytest.raises(ValueError, match="track must be one of"):
        build(_flat(tmp_path, root, track="binary"))
    with pytest.raises(ValueError, match="coarse_sources names a source twice"):
        build(_flat(tmp_path, root, coarse_sources=["fcn", "fcn"]))


def test_unit_keys_differ_per_source_and_never_include_the_backbone_weights(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    cfg = build(_flat(tmp_path, root))
    keys = unit.sweep_keys(cfg)
    assert keys[("downsample", (64, 48), "fcn")] != keys[("downsample", (64, 48), "psp")]
    assert len(set(keys.values())) == len(keys) == 4
    # a file source loads no backbone: its key does not move when the backbone file appears
    cls = unit.resolve("downsample")
    ctx = unit.make_context(cfg, create_dataset("big", root=root).info, (64, 48), torch.device("cpu"), None, (96, 72))
    assert "backbone" not in unit.checkpoint_files(cfg, cls, unit.method_config(cfg, cls, "downsample"), ctx, "fcn")
    assert "backbone" in unit.checkpoint_files(cfg, cls, unit.method_config(cfg, cls, "downsample"), ctx, "backbone")
    # the threshold is a data option: part of the key (scores change with it)
    ge = build(_flat(tmp_path, root, **{"data.threshold": "ge128"}))
    assert unit.key_of(ge, "downsample", (64, 48), "fcn") != keys[("downsample", (64, 48), "fcn")]


@pytest.mark.skipif(not (PUBLISHED / "run.json").is_file(), reason="no published synthetic run")
def test_a_published_semantic_unit_key_is_unchanged():
    # the key written in the committed records by the code before coarse sources existed
    data = json.loads((PUBLISHED / "run.json").read_text())
    written = {r["unit_key"] for r in records.load(PUBLISHED) if r.get("method") == "downsample"
               and r.get("size") == "128x64"}
    assert len(written) == 1
    cfg = build(data["config"])
    assert unit.sweep_sources(cfg) == ("backbone",)
    assert unit.key_of(cfg, "downsample", (128, 64)) == written.pop()  # adding source/track fields to it fails


def test_the_sweep_refines_each_source_s_own_mask_without_a_backbone(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    cfg = build(_flat(tmp_path, root, methods=["downsample"]))
    assert not (tmp_path / "no-weights" / "backbone.pt").exists()  # no backbone anywhere: it is never loaded
    assert set(run_sweep(cfg).values()) == {"ok"}
    recs = [r for r in records.load(cfg.out_path) if r["type"] == "image"]
    assert {r["coarse_source"] for r in recs} == set(SOURCES) and len(recs) == len(SOURCES) * len(STEMS)
    truth = objects()
    for r in recs:  # downsample of a given mask is that mask: its IoU parts are the file's (source ignored: fails)
        gt = truth[r["image_id"]][1] > 128
        mask = truth[r["image_id"]][2][r["coarse_source"]] > 128
        assert r["track"]["inter"] == int((gt & mask).sum()) and r["track"]["union"] == int((gt | mask).sum())
        assert r["track"]["coarse_pixels"] == int(mask.sum()) and r["time_coarse_ms"] == 0.0
    run_json = json.loads((cfg.out_path / "run.json").read_text())
    assert set(run_json["units"]) == {"downsample@64x48/fcn", "downsample@64x48/psp"}
