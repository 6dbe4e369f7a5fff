"""The rehearsal generator (issue 21, item 7): files in the exact layouts the Cityscapes, DeepGlobe and
Inria readers accept, over the real label sets, at tiny sizes; and the docs page rendered from a record."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bench.data import create_dataset
from bench.data import rehearsal as r
from bench.data.synthetic_aerial import SyntheticAerial
from bench.data.synthetic_common import sample_rng
from bench.data.synthetic_streets import SyntheticStreets

# cityscapesScripts labels.py, written out here (not read from bench.data.cityscapes): id -> trainId
CITYSCAPES_IDS = {0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2,
                  12: 3, 13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                  24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18}
VOID = sorted(i for i, t in CITYSCAPES_IDS.items() if t == 255)


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs")
    return r.write_cityscapes(root, {"train": 2, "val": 3}, size=(256, 128))


def test_cityscapes_layout_is_the_real_one(cityscapes):
    root = cityscapes.root
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    assert names == sorted([
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
        "leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png",
        "leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png",
        "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png",
        "leftImg8bit/val/munster/munster_000000_000019_leftImg8bit.png",
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png",
        "gtFine/train/bochum/bochum_000000_000019_gtFine_labelIds.png",
        "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png",
        "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png",
        "gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png"])
    image = cv2.imread(str(root / names[-1]), cv2.IMREAD_UNCHANGED)
    label = cv2.imread(str(root / names[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (128, 256, 3) and image.dtype == np.uint8  # 8-bit RGB, as leftImg8bit
    assert label.shape == (128, 256) and label.dtype == np.uint8  # 8-bit grey, as gtFine labelIds


def test_cityscapes_label_ids_are_real_ids_void_included(cityscapes):
    labels = [p for p in cityscapes.files if p.name.endswith("_gtFine_labelIds.png")]
    seen = set()
    for p in labels:
        seen |= set(np.unique(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)).tolist())
    assert seen <= set(CITYSCAPES_IDS) | {255}  # 255: the licence plate's -1
    assert set(VOID) | {255} <= seen  # every void id and the licence plate appear
    assert {i for i, t in CITYSCAPES_IDS.items() if t != 255} - {28} <= seen  # the evaluated ids (bus: odd frames)


def test_the_reader_gives_back_the_generated_scene(cityscapes):
    val = create_dataset("cityscapes", cityscapes.root, "val")
    assert val.ids() == ["frankfurt_000000_000019", "lindau_000000_000019", "munster_000000_000019"]
    assert len(create_dataset("cityscapes", cityscapes.root, "train")) == 2
    sample, truth = val[1], SyntheticStreets(split="val", n_images=3, size=(256, 128))[1]
    assert np.array_equal(sample.image, truth.image)  # PNG: lossless
    # every label pixel is the generator's trainId, or 255 where a void id was stamped
    void = sample.label == 255
    assert np.array_equal(sample.label[~void], truth.label[~void])
    assert 0.05 < void.mean() < 0.2  # the ego vehicle (5 %), borders and patches; not the scene


def test_void_ids_sit_where_cityscapes_has_them():
    ids = r.stamp_void(np.full((1024, 2048), 7, np.uint8), 0)
    assert (ids[-51:, 4:-4] == 1).all() and (ids[-52, 4:-4] != 1).any()  # the ego vehicle: the bottom 5 %
    assert (ids[6:, :4] == 2).all() and (ids[6:, -4:] == 2).all()  # the rectification border at both sides
    assert (ids[:6, 4:-4] == 3).all() and (ids[6:-51, 4:-4] == 7).mean() > 0.9  # out of roi along the top
    with pytest.raises(ValueError, match="outside 0..18"):
        r.to_label_ids(np.array([[19]], np.uint8))


def test_deepglobe_layout_colour_masks_and_lists(tmp_path):
    w = r.write_deepglobe(tmp_path, {"train": 2, "test": 1}, size=(96, 96))
    from bench.data.deepglobe import split_ids

    ident = split_ids("test")[0]
    assert (tmp_path / "land-train" / f"{ident}_sat.jpg").is_file()
    mask = cv2.imread(str(tmp_path / "land-train" / f"{ident}_mask.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    official = {(0, 0, 0), (0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255)}
    assert {tuple(c) for c in mask.reshape(-1, 3).tolist()} <= official
    ds = create_dataset("deepglobe", tmp_path, "test", list_file=w.lists["test"])
    truth = SyntheticAerial(split="test", n_images=1, size=(96, 96))[0]
    assert ds.ids() == [ident] and np.array_equal(ds[0].label, truth.label)
    assert create_dataset("deepglobe", tmp_path, "train", list_file=w.lists["train"]).ids() == split_ids("train")[:2]


def test_inria_layout_and_building_masks(tmp_path):
    w = r.write_inria(tmp_path, {"train": 1, "val": 2}, size=(160, 160))
    from bench.data.inria import SPLIT_DIR
    from bench.data.base import read_id_file

    ids = read_id_file(SPLIT_DIR / "inria_val.txt")[:2]
    ds = create_dataset("inria", tmp_path, "val", list_file=w.lists["val"])
    assert ds.ids() == ids
    for i in ids:
        assert (tmp_path / "AerialImageDataset" / "train" / "images" / f"{i}.tif").is_file()
        gt = cv2.imread(str(tmp_path / "AerialImageDataset" / "train" / "gt" / f"{i}.tif"), cv2.IMREAD_UNCHANGED)
        assert gt.shape == (160, 160) and set(np.unique(gt).tolist()) <= {0, 255}
    assert set(np.unique(ds[0].label).tolist()) <= {0, 1}


def test_building_mask_is_roofs_on_the_same_image():
    size = (192, 192)
    image, mask = r.building_mask(sample_rng(0, "val", 0, size), *size, 0)
    ref_image, ref_label = SyntheticAerial().render(sample_rng(0, "val", 0, size), *size, 0)
    assert np.array_equal(image, ref_image)  # the same random draws: the tile is the generator's
    building = mask == 255
    assert building.any() and (ref_label[building] == 1).all()  # buildings are urban pixels ...
    assert building.sum() < (ref_label == 1).sum()  # ... but not the roads and yards around them


def test_a_rerun_keeps_present_files(tmp_path):
    w = r.write_cityscapes(tmp_path, {"val": 1}, size=(64, 32))
    stamp = [p.stat().st_mtime_ns for p in w.files]
    r.write_cityscapes(tmp_path, {"val": 1}, size=(64, 32))
    assert [p.stat().st_mtime_ns for p in w.files] == stamp
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary left behind


def test_docs_page_is_rendered_from_the_record(tmp_path):
    from bench.checks.rehearse import render

    rec = {"dataset": "cityscapes", "data": "/x", "data_kind": "generated", "counts": {"train": 2, "val": 2},
           "image_size": [2048, 1024], "overrides": ["limit=2"], "label": "", "started": "t",
           "machine": {"cpu": "Test CPU", "cores": 2, "load_average_at_start": [1.0, 1.0, 1.0]},
           "stages": [{"name": "run", "command": [], "seconds": 600.0, "peak_rss_mib": 900.0, "rc": 0}],
           "units": [{"method": "downsample", "display": "Downsample", "size": "256x128", "status": "ok",
                      "n_images": 2, "n_total": 2, "time_ms_median": 2000.0, "time_ms_sum": 4000.0,
                      "memory_mib": 600.0, "mem_method": "rss", "device": "cpu", "threads": 2, "batch": None,
                      "miou": 0.1, "message": ""},
                     {"method": "magnet", "display": "MagNet", "size": "256x128", "status": "ok",
                      "n_images": 2, "n_total": 2, "time_ms_median": 118000.0, "time_ms_sum": 236000.0,
                      "memory_mib": 1400.0, "mem_method": "rss", "device": "cpu", "threads": 2, "batch": 1,
                      "miou": 0.1, "message": ""}]}
    path = tmp_path / "rehearsal.json"
    path.write_text(json.dumps(rec))
    text = render([path], gpu_speedup=50)
    assert "Test CPU, 2 core(s)" in text and "| MagNet @ 256x128 | ok | 2/2 | 118.0 | 1400 | 1 | 10.00 |" in text
    # 2 s + 118 s per frame: 500 frames are 60000 s (16.7 h); DeepGlobe's 142 tiles of 2448x2448 are
    # 2.86x the pixels: 120 * 2.8611 * 142 = 48754 s (13.5 h); the GPU line divides by the assumption
    assert "about 16.7 h of evaluation on this CPU" in text and "about 20 min" in text
    assert "about 13.5 h of evaluation on this CPU, times 2.86 for the pixel count" in text
    assert "an assumption, not a measurement" in text and "do not edit by hand" in text
