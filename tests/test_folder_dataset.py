"""The ``folder`` dataset: layouts, classes.yaml, every bad input named, and a sweep on a generated folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.core.config import load
from bench.data import create_dataset, dataset_info
from bench.data.base import DataFormatError
from bench.data.folder import Folder
from folder_data import COLOURS, classes_yaml, make_folder, scene, write_image, write_mask

REPO = Path(__file__).resolve().parents[1]


def test_subfolder_splits_decode_to_the_written_labels(tmp_path):
    root = make_folder(tmp_path, {"train": 4, "val": 3})
    val = create_dataset("folder", root, "val")
    assert val.ids() == ["img004", "img005", "img006"] and len(create_dataset("folder", root, "train")) == 4
    for i, sample in enumerate(val):
        image, label = scene(4 + i)
        np.testing.assert_array_equal(sample.label, label)
        np.testing.assert_array_equal(sample.image, image)
    assert sample.label.dtype == np.uint8 and sample.image.shape == (32, 64, 3)
    assert len(create_dataset("folder", root, "all")) == 7


def test_classes_yaml_gives_the_info_by_name(tmp_path):
    root = make_folder(tmp_path)
    info = dataset_info(load("folder", {"data_root": str(root)}))
    assert info.class_names == ("ground", "building", "tree", "wire")
    assert info.ignore_index == 255 and info.excluded_from_mean == (0,) and info.thin_classes == (3,)
    assert len(info.palette) == 4
    (root / "classes.yaml").write_text(classes_yaml(palette="[[1,2,3],[4,5,6],[7,8,9],[10,11,12]]"))
    assert dataset_info(load("folder", {"data_root": str(root)})).palette[1] == (4, 5, 6)
    with pytest.raises(FileNotFoundError, match="no data root"):
        dataset_info(load("folder"))


def test_colour_masks_jpeg_images_and_tiff_masks(tmp_path):
    root = make_folder(tmp_path, {"train": 2, "val": 2}, colour=True, image_ext=".jpg", mask_ext=".tif")
    ds = create_dataset("folder", root, "val")
    assert ds.info.palette == tuple(map(tuple, COLOURS))  # the colours are the palette by default
    np.testing.assert_array_equal(ds[0].label, scene(2)[1])  # the ignore colour -> 255


def test_sixteen_bit_tiff_masks_with_large_values(tmp_path):
    _, label = scene(0)
    write_image(tmp_path / "images" / "a.tiff", scene(0)[0])
    values = np.array([0, 1000, 2000, 65000], np.uint16)
    raw = np.where(label == 255, 7, values[np.minimum(label, 3)]).astype(np.uint16)
    write_mask(tmp_path / "masks" / "a.tif", raw, dtype=np.uint16)
    (tmp_path / "classes.yaml").write_text("names: [a, b, c, d]\nvalues: [0, 1000, 2000, 65000]\nignore: 7\n")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("# one stem a line\na\n")
    np.testing.assert_array_equal(create_dataset("folder", tmp_path, "val")[0].label, label)


def test_flat_folders_with_list_files_and_size(tmp_path):
    for i in range(3):
        image, label = scene(i)
        write_image(tmp_path / "images" / f"t{i}.png", image)
        write_mask(tmp_path / "masks" / f"t{i}.png", label)
    (tmp_path / "classes.yaml").write_text(classes_yaml())
    (tmp_path / "val.txt").write_text("t2\nt0\n")
    ds = create_dataset("folder", tmp_path, "val", size=(64, 32))
    assert ds.ids() == ["t2", "t0"] and ds.image_size == (64, 32)
    (tmp_path / "mine.txt").write_text("images/t1.png\tmasks/t1.png\n")
    assert create_dataset("folder", tmp_path, "x", list_file=tmp_path / "mine.txt").ids() == ["t1"]
    with pytest.raises(DataFormatError, match=r"t2\.png is 64x32 \(w x h\), but data.size is 32x32"):
        create_dataset("folder", tmp_path, "val", size=(32, 32))[0]
    with pytest.raises(FileNotFoundError, match=r"no split 'test'.*found: \['all', 'mine', 'val'\]"):
        create_dataset("folder", tmp_path, "test")


def test_unmatched_files_are_named_when_the_split_opens(tmp_path):
    root = make_folder(tmp_path, {"val": 2})
    (root / "masks" / "val" / "img001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image .*img001\.png has no mask .*masks/val/img001\.<png\|tif\|tiff>"):
        create_dataset("folder", root, "val")
    write_mask(root / "masks" / "val" / "img001.png", scene(1)[1])
    write_mask(root / "masks" / "val" / "extra.png", scene(1)[1])
    with pytest.raises(FileNotFoundError, match=r"mask .*extra\.png has no image"):
        create_dataset("folder", root, "val")
    (root / "masks" / "val" / "extra.png").unlink()
    shutil.rmtree(root / "masks")
    with pytest.raises(FileNotFoundError, match=r"masks does not exist. Expected layout"):
        create_dataset("folder", root, "val")


def _one_pair(tmp_path, label_raw, classes, image=None):
    write_image(tmp_path / "images" / "val" / "p.png", scene(0)[0] if image is None else image)
    path = tmp_path / "masks" / "val" / "p.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), label_raw)
    (tmp_path / "classes.yaml").write_text(classes)
    return create_dataset("folder", tmp_path, "val"), path


def test_bad_mask_values_colours_sizes_and_files_name_the_file(tmp_path):
    label = scene(0)[1].copy()
    label[5, 5:8] = 9
    ds, path = _one_pair(tmp_path, label, classes_yaml())
    with pytest.raises(DataFormatError, match=rf"{path}: mask value\(s\) 9 \(3 px\) not in .*classes.yaml "
                                              r"\(values: \[0, 1, 2, 3, 255\]; found in this mask: \[0, 1, 2, 3, 9, 255\]\)"):
        ds[0]
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[0, :2] = (10, 20, 30)  # written as BGR: the file holds RGB (30, 20, 10)
    ds, path = _one_pair(tmp_path, rgb, classes_yaml(colour=True))
    with pytest.raises(DataFormatError, match=rf"{path}: colour\(s\) \(30,20,10\) \(2 px\) not in the palette"):
        ds[0]
    ds, path = _one_pair(tmp_path, scene(0)[1][:16], classes_yaml())
    with pytest.raises(DataFormatError, match=r"size mismatch: image .*p\.png is 64x32 .* label .*p\.png is 64x16"):
        ds[0]
    ds, path = _one_pair(tmp_path, scene(0)[1], classes_yaml())
    path.write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=rf"cannot read {path}"):
        ds[0]
    ds, path = _one_pair(tmp_path, np.dstack([scene(0)[1]] * 2 + [scene(0)[1] * 0]), classes_yaml())
    with pytest.raises(DataFormatError, match="a colour mask, but .* gives values"):
        ds[0]


@pytest.mark.parametrize("text, message", [
    ("values: [0, 1]\n", "names: expected a list"),
    ("names: [a, b]\nvalues: [0]\n", "values: expected 2 integers"),
    ("names: [a, b]\nvalues: [0, 1]\nignore: 1\n", "ignore: 1 is also the value of class 'b'"),
    ("names: [a, b]\ncolours: [[0,0,0], [1,1,1]]\nignore: 3\n", r"colour masks need an \[r, g, b\] ignore"),
    ("names: [a, b]\nthin: [c]\n", "thin: 'c' is neither a class name"),
    ("names: [a, b]\nclasses: 2\n", r"unknown key\(s\) \['classes'\]"),
])
def test_bad_classes_yaml_names_the_key(tmp_path, text, message):
    (tmp_path / "classes.yaml").write_text(text)
    with pytest.raises(DataFormatError, match=message):
        Folder.info_for(tmp_path)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600)


@pytest.mark.parametrize("command", ["table", "score", "show"])
def test_reading_commands_without_the_data_root_exit_2_with_one_line(command, tmp_path, capsys):
    from bench.cli.main import main

    # the folder dataset's class names live in <data_root>/classes.yaml: without it, a clear error
    assert main([command, "folder", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "need its" in err and "no data root given" in err, err


# The tiny schedule: every learned method trains for a step or two on 64x32 images at a 16x8 input.
TINY = ["data.size=64x32", "input_size=16x8", "backbone_options={width: 8}",
        "backbone_train={iterations: 3, batch_size: 2}", "dgf.iterations=2", "dgf.crop_size=[32,32]",
        "pointrend.iterations=2", "segfix.iterations=2", "segfix.crop_size=[32,32]", "magnet.epochs=1",
        "magnet.iterations_per_epoch=1", "warmup=0", "threads=1", "bootstrap=0"]


def test_check_data_names_bad_files_and_a_sweep_records_one_and_goes_on(tmp_path, capsys):
    from bench.cli.main import main

    root = make_folder(tmp_path / "data", {"train": 2, "val": 3})
    bad = root / "masks" / "val" / "img003.png"
    label = scene(3)[1].copy()
    label[1, 1] = 42
    write_mask(bad, label)
    assert main(["check-data", "folder", f"data_root={root}", "--full"]) == 1
    out = capsys.readouterr().out
    assert f"val img003: DataFormatError: {bad}: mask value(s) 42 (1 px)" in out
    assert "folder val: 3 image(s) decoded, 1 bad" in out
    runs = tmp_path / "runs"
    assert main(["run", "folder", f"data_root={root}", *TINY, "methods=[downsample]", "table1_methods=[]",
                 "isolate=false", f"checkpoint_dir={tmp_path / 'ck'}", f"out_dir={runs}"]) == 1  # partial
    err = capsys.readouterr().err
    assert "image img003 failed, recorded, going on" in err
    table = (runs / "tables" / "table2.md").read_text()
    assert "2 of 3" in table, table
    assert (tmp_path / "ck" / "backbone.pt").is_file()  # train: true trained the backbone


@pytest.mark.slow
def test_make_bench_on_a_generated_folder_runs_every_method(tmp_path):
    """README "Benchmark your own data in three steps", step for step (about a minute on 2 cores)."""
    root = make_folder(tmp_path / "data", {"train": 3, "val": 2})
    check = subprocess.run(["make", "check-data", "DATASET=folder", f"DATA_ROOT={root}"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    args = " ".join(f"'{a}'" for a in [*TINY, f"checkpoint_dir={tmp_path / 'ck'}", f"out_dir={tmp_path / 'runs'}"])
    run = subprocess.run(["make", "bench", "DATASET=folder", f"DATA_ROOT={root}", f"ARGS={args}"], cwd=REPO,
                         capture_output=True, text=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = (tmp_path / "runs" / "tables" / "table2.md").read_text()
    for name in ("Downsample", "Patching", "DenseCRF", "DGF", "PointRend", "SegFix", "MagNet-Fast", "MagNet"):
        assert name in table, table
    assert list((tmp_path / "runs" / "tables" / "plots").glob("*.png"))
    assert list((tmp_path / "runs" / "tables" / "panels").glob("*.png"))


def test_weights_trained_on_one_folder_are_refused_for_another(tmp_path):
    from bench.weights import sidecar

    first, second = make_folder(tmp_path / "a"), make_folder(tmp_path / "b")
    path = tmp_path / "backbone.pt"
    path.write_bytes(b"x")
    trained = load("folder", {"data_root": str(first), "backbone_checkpoint": str(path)})
    sidecar.write({"backbone": path}, sidecar.backbone_training_options(trained))
    sidecar.check_backbone(trained)
    other = load("folder", {"data_root": str(second), "backbone_checkpoint": str(path)})
    with pytest.raises(sidecar.StaleCheckpoint, match=rf"data_root: trained with '{first}'"):
        sidecar.check_backbone(other)
    assert "data_root" not in sidecar.backbone_training_options(load("synthetic"))  # a copy may move
