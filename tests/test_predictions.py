"""Saved label maps: lossless PNG round trip, which images a unit saves, the runner hook."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.models.backbones import create_backbone
from bench.core.config import build
from bench.evaluation.predictions import (COARSE, coarse_labels, load_label_map, prediction_path, read_unit_info,
                               save_label_map, save_unit_predictions)
from bench.pipeline.runner import run_sweep


@pytest.mark.parametrize("high, dtype", [(255, np.uint8), (256, np.uint16), (65535, np.uint16)])
def test_png_round_trip_is_exact(tmp_path, high, dtype):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, high + 1, (37, 53)).astype(np.int64)
    labels[0, 0], labels[-1, -1] = 0, high  # both ends of the range are present
    path = tmp_path / "a" / "map.png"
    save_label_map(path, labels)
    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == dtype and stored.shape == labels.shape
    back = load_label_map(path)
    assert back.dtype == np.int64 and np.array_equal(back, labels)
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed away


@pytest.mark.parametrize("bad", [np.full((4, 4), -1), np.full((4, 4), 70000), np.zeros((4, 4, 3), np.uint8),
                                 np.zeros((4, 4), np.float32)])
def test_save_rejects_what_png_cannot_hold(tmp_path, bad):
    with pytest.raises(ValueError, match="label"):
        save_label_map(tmp_path / "x.png", bad)
    assert not (tmp_path / "x.png").exists()


def test_load_missing_and_colour_png(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved label map"):
        load_label_map(tmp_path / "none.png")
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="single-channel"):
        load_label_map(tmp_path / "rgb.png")


class _Stub:
    """Stands in for a built method: only its display name is read."""

    display_name = "Stub Method"
    label = None


def test_only_the_first_images_are_saved(tmp_path, tiny_dataset, tiny_ctx):
    cfg = build({"out_dir": str(tmp_path), "save_predictions": 2})
    size = tiny_ctx.input_size
    saved = []
    for index in range(len(tiny_dataset)):
        sample = tiny_dataset[index]
        labels = sample.label.astype(np.int64)
        saved += save_unit_predictions(cfg, "stub", size, "key1", index, sample, labels, _Stub(), tiny_ctx.backbone,
                                       tiny_ctx)
    ids = tiny_dataset.ids()
    assert saved == [prediction_path(tmp_path, m, size, i) for i in ids[:2] for m in ("stub", COARSE)]
    assert not prediction_path(tmp_path, "stub", size, ids[2]).exists()
    assert np.array_equal(load_label_map(saved[0]), tiny_dataset[0].label)
    info = read_unit_info(tmp_path, "stub", size)
    assert info == {"unit_key": "key1", "method": "stub", "display_name": "Stub Method", "size": "32x16"}
    # the coarse map is the full-size argmax of the coarse pass
    coarse = load_label_map(prediction_path(tmp_path, COARSE, size, ids[0]))
    assert coarse.shape == tiny_dataset[0].label.shape and coarse.max() < 4
    assert np.array_equal(coarse, coarse_labels(tiny_ctx.backbone, tiny_dataset[0].image, tiny_ctx))


def test_zero_disables_and_no_backbone_means_no_coarse(tmp_path, tiny_dataset, tiny_ctx):
    sample = tiny_dataset[0]
    off = build({"out_dir": str(tmp_path / "off"), "save_predictions": 0})
    assert save_unit_predictions(off, "stub", (32, 16), "k", 0, sample, sample.label, _Stub(), None, tiny_ctx) == []
    assert not (tmp_path / "off").exists()
    on = build({"out_dir": str(tmp_path / "on")})
    written = save_unit_predictions(on, "stub", (32, 16), "k", 0, sample, sample.label, _Stub(), None, tiny_ctx)
    assert written == [prediction_path(tmp_path / "on", "stub", (32, 16), sample.id)]


def _backbone_file(path: Path) -> Path:
    torch.manual_seed(0)
    torch.save(create_backbone("light", 19, width=8).state_dict(), path)
    return path


def test_runner_saves_maps_during_the_sweep(tmp_path):
    """An in-process sweep saves Downsample's maps, equal to the coarse map, for the first images."""
    flat = {"dataset": "synthetic", "data.size": "128x64", "data.n_images": 3, "input_size": "32x16",
            "methods": ["downsample"], "table1_sizes": [], "backbone_options": {"width": 8},
            "backbone_checkpoint": str(_backbone_file(tmp_path / "bb.pt")), "checkpoint_dir": str(tmp_path / "ck"),
            "out_dir": str(tmp_path / "runs"), "tables_dir": str(tmp_path / "tables"), "warmup": 0, "threads": 1,
            "isolate": False, "train": False, "save_predictions": 2}
    cfg = build(flat)
    assert set(run_sweep(cfg).values()) == {"ok"}
    out = cfg.out_path
    for image_id in ("val_0000", "val_0001"):
        down = load_label_map(prediction_path(out, "downsample", (32, 16), image_id))
        assert down.shape == (64, 128)
        assert np.array_equal(down, load_label_map(prediction_path(out, COARSE, (32, 16), image_id)))
    assert not prediction_path(out, "downsample", (32, 16), "val_0002").exists()
    assert read_unit_info(out, "downsample", (32, 16))["display_name"] == "Downsample"
    # and the figures come out of that run: three plots, two crop panels per image
    from bench.report.figures import render_figures

    figures = render_figures(cfg)
    names = sorted(p.name for p in figures.files)
    assert names == ["accuracy_vs_memory.png", "accuracy_vs_time.png", "input_size.png", "val_0000.crop1.png",
                     "val_0000.crop2.png", "val_0001.crop1.png", "val_0001.crop2.png"]
    assert all(p.stat().st_size > 1000 for p in figures.files) and figures.notes == []
