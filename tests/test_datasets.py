"""Dataset readers: real layouts on tiny fixtures written to tmp_path, bad inputs, and the real
sample data in ../shared/data when present."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.data import DATASETS, create_dataset, dataset_info, list_datasets
from bench.data.base import DataFormatError
from bench.data.cityscapes import Cityscapes
from bench.data.deepglobe import DeepGlobe, rgb_to_class, split_ids
from bench.data.gleason import Gleason
from bench.data.inria import CITIES, hash_split, read_label
from bench.core.interface import Sample

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Cityscapes labelId -> trainId, written out position by position from cityscapesScripts'
# labels.py (ids 0..33; 255 = not evaluated) as an independent check of the reader's table.
EXPECTED_TRAIN_IDS = [
    255, 255, 255, 255, 255, 255, 255,  # 0 unlabeled .. 6 ground
    0, 1, 255, 255,  # 7 road, 8 sidewalk, 9 parking, 10 rail track
    2, 3, 4, 255, 255, 255,  # 11 building, 12 wall, 13 fence, 14 guard rail, 15 bridge, 16 tunnel
    5, 255, 6, 7, 8, 9, 10,  # 17 pole, 18 polegroup, 19 light, 20 sign, 21 vegetation, 22 terrain, 23 sky
    11, 12, 13, 14, 15, 255, 255, 16, 17, 18,  # 24 person .. 28 bus, 29 caravan, 30 trailer, 31 train, 32 motorcycle, 33 bicycle
]  # fmt: skip

DEEPGLOBE_RGB = {
    "unknown": (0, 0, 0), "urban": (0, 255, 255), "agriculture": (255, 255, 0), "rangeland": (255, 0, 255),
    "forest": (0, 255, 0), "water": (0, 0, 255), "barren": (255, 255, 255),
}  # fmt: skip


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def write_grey(path: Path, grey: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), grey)


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_names_and_info_without_data() -> None:
    assert set(DATASETS) - {"big_synthetic"} == {"big", "cityscapes", "deepglobe", "folder", "gleason", "inria",
                                                 "synthetic", "synthetic_aerial"}
    assert list_datasets() == sorted(DATASETS)
    expected_classes = {"cityscapes": 19, "deepglobe": 7, "gleason": 5, "inria": 2, "synthetic": 19, "synthetic_aerial": 7}
    for name, n in expected_classes.items():
        info = dataset_info(name)
        assert info.name == name
        assert info.num_classes == n
        assert len(info.palette) == n and all(len(c) == 3 for c in info.palette)
        assert all(0 <= k < n for k in info.thin_classes + info.excluded_from_mean)
    assert dataset_info("cityscapes").ignore_index == 255
    assert dataset_info("cityscapes").thin_classes == (5, 6, 7, 11, 12, 17, 18)
    assert dataset_info("deepglobe").ignore_index is None
    assert dataset_info("deepglobe").excluded_from_mean == (0,)


def test_unknown_dataset_suggests_close_name() -> None:
    with pytest.raises(KeyError, match="did you mean 'cityscapes'"):
        create_dataset("cityscape")
    with pytest.raises(KeyError, match="known"):
        dataset_info("nothing-like-it")


@pytest.mark.parametrize("name", ["cityscapes", "deepglobe", "gleason", "inria"])
def test_missing_root_shows_expected_layout(name: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        create_dataset(name, root=tmp_path / "nope", split="train")
    with pytest.raises(FileNotFoundError, match="root=None"):
        create_dataset(name, root=None, split="train")


# ---------------------------------------------------------------------------------------------
# Cityscapes


def make_cityscapes(root: Path, split: str = "val", h: int = 6, w: int = 12) -> np.ndarray:
    """Two frames; frame 0's labelIds hold every id 0..33 plus 255 (license plate)."""
    ids = np.r_[np.arange(34), 255, np.zeros(h * w - 35, int)].astype(np.uint8).reshape(h, w)
    for k, (city, frame) in enumerate([("aachen", "aachen_000000_000019"), ("bochum", "bochum_000001_000002")]):
        write_rgb(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", random_image(h, w, k))
        write_grey(root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png", ids if k == 0 else np.full((h, w), 7, np.uint8))
        write_grey(root / "gtFine" / split / city / f"{frame}_gtFine_labelTrainIds.png", np.full((h, w), 18, np.uint8))
    return ids


def test_cityscapes_maps_every_label_id(tmp_path: Path) -> None:
    ids = make_cityscapes(tmp_path)
    ds = create_dataset("cityscapes", root=tmp_path, split="val")
    assert len(ds) == 2
    assert ds.ids() == ["aachen_000000_000019", "bochum_000001_000002"]
    assert ds.image_size == (2048, 1024)
    sample = ds[0]
    assert isinstance(sample, Sample)
    assert sample.image.shape == (6, 12, 3) and sample.image.dtype == np.uint8
    assert sample.label.shape == (6, 12) and sample.label.dtype == np.uint8
    expected = np.array(EXPECTED_TRAIN_IDS + [255] * (256 - 34), np.uint8)
    expected[255] = 255
    np.testing.assert_array_equal(sample.label, expected[ids])
    np.testing.assert_array_equal(sample.image, random_image(6, 12, 0))  # RGB order kept
    assert (ds[1].label == 0).all()  # labelId 7 (road) -> 0
    assert ds[-1].id == "bochum_000001_000002"
    with pytest.raises(IndexError):
        ds[2]


def test_cityscapes_label_train_ids_and_list_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "val", label_type="labelTrainIds")
    assert (ds[0].label == 18).all()
    lst = tmp_path / "val_small.txt"
    lst.write_text(
        "leftImg8bit/val/bochum/bochum_000001_000002_leftImg8bit.png\t"
        "gtFine/val/bochum/bochum_000001_000002_gtFine_labelIds.png\n\n"
    )
    ds = create_dataset("cityscapes", root=tmp_path, list_file=lst)
    assert ds.ids() == ["bochum_000001_000002"]
    assert (ds[0].label == 0).all()
    with pytest.raises(ValueError, match="label_type"):
        Cityscapes(tmp_path, "val", label_type="color")


def test_cityscapes_bad_inputs(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    with pytest.raises(ValueError, match="unknown split 'trainval'"):
        create_dataset("cityscapes", root=tmp_path, split="trainval")
    with pytest.raises(FileNotFoundError, match=r"gtFine/<split>/<city>"):
        create_dataset("cityscapes", root=tmp_path, split="train")  # no train folders
    # label values beyond 33 (other than 255) are reported with the file and the values
    frame = tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"
    bad = np.full((6, 12), 7, np.uint8)
    bad[0, :3] = (40, 41, 41)
    write_grey(frame, bad)
    ds = create_dataset("cityscapes", root=tmp_path, split="val")
    with pytest.raises(DataFormatError, match=r"aachen_000000_000019_gtFine_labelIds\.png.*40 \(1 px\), 41 \(2 px\)"):
        ds[0]
    # image/label size mismatch names both sizes and files
    write_grey(frame, np.full((5, 12), 7, np.uint8))
    with pytest.raises(ValueError, match=r"leftImg8bit\.png is 12x6 .*labelIds\.png is 12x5"):
        ds[0]
    # a missing label is caught at construction, naming the file
    frame.unlink()
    with pytest.raises(FileNotFoundError, match="aachen_000000_000019_gtFine_labelIds.png"):
        create_dataset("cityscapes", root=tmp_path, split="val")


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    image = tmp_path / "leftImg8bit/val/bochum/bochum_000001_000002_leftImg8bit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    ds = create_dataset("cityscapes", root=tmp_path, split="val")
    with pytest.raises(DataFormatError, match=r"bochum_000001_000002_leftImg8bit\.png.*corrupt"):
        ds[1]
    ds[0]  # the other frame still loads


def test_malformed_list_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    lst = tmp_path / "bad.txt"
    lst.write_text("# comment\nonly_one_field.png\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: expected 'image<TAB>label'"):
        Cityscapes(tmp_path, list_file=lst)
    with pytest.raises(FileNotFoundError, match="list file"):
        Cityscapes(tmp_path, list_file=tmp_path / "absent.txt")


CITYSCAPES = SHARED / "cityscapes"


@pytest.mark.data
@pytest.mark.skipif(not CITYSCAPES.is_dir(), reason="../shared/data/cityscapes absent")
def test_cityscapes_real_frames_match_label_train_ids() -> None:
    """labelIds mapped by the reader agree with the shipped labelTrainIds.

    The shipped labelTrainIds were rasterised from the polygons (see its README), so about 0.5 %
    of pixels differ, all at object boundaries: we require >= 99 % agreement, the mismatches to
    lie within 3 px of a labelIds boundary, and the majority trainId of every labelId to be the
    mapped one. The official colour images must use the palette exactly.
    """
    ds = create_dataset("cityscapes", root=CITYSCAPES, split="train")
    assert len(ds) == 8
    palette = np.array(ds.info.palette, np.uint8)
    kernel = np.ones((7, 7), np.uint8)
    for pair in ds.pairs:
        mapped = ds.decode_label(pair.label)
        raw = cv2.imread(str(pair.label), cv2.IMREAD_UNCHANGED)
        shipped = cv2.imread(str(pair.label).replace("_labelIds", "_labelTrainIds"), cv2.IMREAD_UNCHANGED)
        differ = mapped != shipped
        assert differ.mean() < 0.01, pair.id
        flat = cv2.dilate(raw, kernel) == cv2.erode(raw, kernel)  # no labelIds change within 3 px
        assert (differ & flat).sum() <= 50, pair.id
        joint = np.bincount(raw.ravel().astype(np.int64) * 256 + shipped.ravel(), minlength=256 * 256).reshape(256, 256)
        for label_id in np.flatnonzero(joint.sum(1) >= 100):  # a few stray pixels (9 of id 0) say nothing
            assert joint[label_id].argmax() == EXPECTED_TRAIN_IDS[label_id], (pair.id, label_id)
        colour = cv2.imread(str(pair.label).replace("_labelIds", "_color"), cv2.IMREAD_UNCHANGED)[..., 2::-1]
        valid = mapped != 255
        np.testing.assert_array_equal(colour[valid], palette[mapped[valid]])
    sample = ds[0]
    assert sample.image.shape == (1024, 2048, 3) and sample.label.shape == (1024, 2048)


TINY = SHARED / "cityscapes_mmseg_tiny"


@pytest.mark.data
@pytest.mark.skipif(not TINY.is_dir(), reason="../shared/data/cityscapes_mmseg_tiny absent")
def test_cityscapes_tiny_val_frame_both_label_types() -> None:
    by_ids = create_dataset("cityscapes", root=TINY, split="val")
    by_train = create_dataset("cityscapes", root=TINY, split="val", label_type="labelTrainIds")
    a, b = by_ids[0], by_train[0]
    assert a.image.shape == (128, 256, 3)
    assert (a.label == b.label).mean() > 0.99


# ---------------------------------------------------------------------------------------------
# DeepGlobe


def make_deepglobe(root: Path, ids: list[str], mask: np.ndarray) -> None:
    for i in ids:
        write_rgb(root / "land-train" / f"{i}_sat.jpg", random_image(*mask.shape[:2]))
        write_rgb(root / "land-train" / f"{i}_mask.png", mask)


def deepglobe_mask() -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 RGB mask with the seven colours and near-colours; its expected exact classes."""
    names = list(DEEPGLOBE_RGB)
    rgb = np.zeros((4, 4, 3), np.uint8)
    expected = np.zeros((4, 4), np.uint8)
    for k, name in enumerate(names):
        rgb[k // 4, k % 4] = DEEPGLOBE_RGB[name]
        expected[k // 4, k % 4] = k
    rgb[2, 0] = (10, 250, 245)  # near urban
    rgb[2, 1] = (255, 0, 0)  # red is no class
    return rgb, expected


def test_deepglobe_colour_modes(tmp_path: Path) -> None:
    rgb, expected = deepglobe_mask()
    make_deepglobe(tmp_path, ["7", "12"], rgb)
    ds = create_dataset("deepglobe", root=tmp_path, split="all")
    assert ds.ids() == ["7", "12"]  # numeric order
    assert ds.image_size == (2448, 2448)
    np.testing.assert_array_equal(ds[0].label, expected)  # exact: near colours -> 0 (MagNet)
    thr = DeepGlobe(tmp_path, "all", colour_match="threshold")[0].label
    want = expected.copy()
    want[2, 0] = 1  # (10, 250, 245) binarises to urban; red stays unknown
    np.testing.assert_array_equal(thr, want)
    with pytest.raises(DataFormatError, match=r"\(10,250,245\) \(1 px\), \(255,0,0\) \(1 px\)"):
        DeepGlobe(tmp_path, "all", colour_match="strict")[0]
    with pytest.raises(ValueError, match="colour_match"):
        DeepGlobe(tmp_path, "all", colour_match="nearest")


def test_deepglobe_rgb_to_class_against_loop() -> None:
    rng = np.random.default_rng(3)
    palette = np.array(list(DEEPGLOBE_RGB.values()), np.uint8)
    rgb = palette[rng.integers(0, 7, (20, 30))]
    rgb[rng.random((20, 30)) < 0.2] = rng.integers(0, 256, 3, dtype=np.uint8)
    want = np.zeros((20, 30), np.uint8)
    for k, colour in enumerate(palette):
        want[(rgb == colour).all(-1)] = k
    np.testing.assert_array_equal(rgb_to_class(rgb), want)


def test_deepglobe_splits_and_list_file(tmp_path: Path) -> None:
    train, val, test = (split_ids(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (454, 207, 142)
    assert len(set(train) | set(val) | set(test)) == 454 + 207 + 142
    assert all(re.fullmatch(r"\d+", i) for i in train + val + test)
    assert "6399" in train  # MagNet's train.txt lists the shared sample
    rgb, expected = deepglobe_mask()
    make_deepglobe(tmp_path, [test[0]], rgb)
    with pytest.raises(FileNotFoundError, match=r"282 listed file\(s\) missing"):
        create_dataset("deepglobe", root=tmp_path, split="test")
    lst = tmp_path / "one.txt"
    lst.write_text(f"land-train/{test[0]}_sat.jpg\tland-train/{test[0]}_mask.png\n")
    ds = create_dataset("deepglobe", root=tmp_path, split="test", list_file=lst)
    assert ds.ids() == [test[0]]
    np.testing.assert_array_equal(ds[0].label, expected)
    with pytest.raises(FileNotFoundError, match="land-train"):
        create_dataset("deepglobe", root=tmp_path / "land-train", split="val")


DEEPGLOBE = SHARED / "deepglobe"


@pytest.mark.data
@pytest.mark.skipif(not DEEPGLOBE.is_dir(), reason="../shared/data/deepglobe absent")
def test_deepglobe_real_tile() -> None:
    ds = create_dataset("deepglobe", root=DEEPGLOBE, split="all")
    assert ds.ids() == ["6399"]
    sample = ds[0]
    assert sample.image.shape == (2448, 2448, 3) and sample.label.shape == (2448, 2448)
    assert sample.label.max() <= 6
    raw = cv2.imread(str(DEEPGLOBE / "land-train/6399_mask.png"))[..., ::-1]
    code = (raw[..., 0].astype(np.int32) << 16) | (raw[..., 1].astype(np.int32) << 8) | raw[..., 2]
    counts = np.bincount(sample.label.ravel(), minlength=7)
    for k, (r, g, b) in enumerate(DEEPGLOBE_RGB.values()):
        assert counts[k] == np.count_nonzero(code == (r << 16 | g << 8 | b))
    assert counts[1] == 0 and counts[3] > 0  # the README: no urban; rangeland present
    np.testing.assert_array_equal(rgb_to_class(raw, "strict"), sample.label)  # only pure colours


# ---------------------------------------------------------------------------------------------
# Gleason


def make_gleason(root: Path, folder: str, grey: np.ndarray, channels: int = 1) -> None:
    name = "slide001_core003"
    write_rgb(root / "images" / folder / f"{name}.jpg", random_image(*grey.shape))
    label = grey if channels == 1 else np.repeat(grey[..., None], 3, axis=2)
    write_grey(root / "gt" / folder / f"{name}_classimg_nonconvex.png", label)


def test_gleason_grey_levels(tmp_path: Path) -> None:
    grey = np.array([[0, 50, 100, 150, 200, 0]] * 3, np.uint8)
    make_gleason(tmp_path, "validation", grey)
    make_gleason(tmp_path, "train", grey, channels=3)
    val = create_dataset("gleason", root=tmp_path, split="val")
    assert val.ids() == ["slide001_core003"]
    np.testing.assert_array_equal(val[0].label, np.array([[0, 1, 2, 3, 4, 0]] * 3))
    np.testing.assert_array_equal(Gleason(tmp_path, "train")[0].label, val[0].label)  # grey saved as RGB
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        Gleason(tmp_path, "validation")


def test_gleason_bad_grey_level(tmp_path: Path) -> None:
    grey = np.array([[0, 50, 75, 255]], np.uint8)
    make_gleason(tmp_path, "validation", grey)
    with pytest.raises(DataFormatError, match=r"_classimg_nonconvex\.png: unexpected label value\(s\) 75 \(1 px\), 255 \(1 px\)"):
        create_dataset("gleason", root=tmp_path, split="val")[0]


def test_gleason_missing_gt_folder(tmp_path: Path) -> None:
    (tmp_path / "images" / "validation").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"gt/validation"):
        create_dataset("gleason", root=tmp_path, split="val")


# ---------------------------------------------------------------------------------------------
# Inria


def make_inria(root: Path, tiles: list[str], gt: np.ndarray) -> None:
    base = root / "AerialImageDataset" / "train"
    for t in tiles:
        write_rgb(base / "images" / f"{t}.tif", random_image(*gt.shape))
        write_grey(base / "gt" / f"{t}.tif", gt)


def test_inria_reads_geotiff_layout(tmp_path: Path) -> None:
    gt = np.zeros((8, 10), np.uint8)
    gt[2:5, 3:7] = 255
    make_inria(tmp_path, ["austin1", "vienna36"], gt)
    for root in (tmp_path, tmp_path / "AerialImageDataset"):
        ds = create_dataset("inria", root=root, split="all")
        assert ds.ids() == ["austin1", "vienna36"]
        np.testing.assert_array_equal(ds[1].label, gt // 255)
        np.testing.assert_array_equal(ds[0].image, random_image(8, 10))
    with pytest.raises(FileNotFoundError, match=r"\d+ listed file\(s\) missing"):
        create_dataset("inria", root=tmp_path, split="official_val")  # needs <city>1..5


def test_inria_bad_label_value(tmp_path: Path) -> None:
    gt = np.zeros((8, 10), np.uint8)
    gt[0, 0] = 1  # a 0/1 mask saved without the x255 is not the official encoding
    make_inria(tmp_path, ["chicago3"], gt)
    with pytest.raises(DataFormatError, match=r"chicago3\.tif: unexpected label value\(s\) 1 \(1 px\); allowed: \{0, 255\}"):
        create_dataset("inria", root=tmp_path, split="all")[0]


def test_inria_splits_follow_documented_rule() -> None:
    splits_dir = Path(__file__).resolve().parents[1] / "configs" / "splits"
    shipped = {}
    for split, size in (("train", 126), ("val", 27), ("test", 27)):
        lines = (splits_dir / f"inria_{split}.txt").read_text().splitlines()
        shipped[split] = [s for s in lines if s and not s.startswith("#")]
        assert len(shipped[split]) == size
        assert shipped[split] == hash_split(split)
    everything = [t for ids in shipped.values() for t in ids]
    assert sorted(everything) == sorted(f"{c}{n}" for c in CITIES for n in range(1, 37))
    for split in ("val", "test"):
        per_city = Counter(re.sub(r"\d+$", "", t) for t in shipped[split])
        assert set(per_city) == set(CITIES) and set(per_city.values()) <= {5, 6}


INRIA = SHARED / "inria"


@pytest.mark.data
@pytest.mark.skipif(not INRIA.is_dir(), reason="../shared/data/inria absent")
def test_inria_real_geotiffs() -> None:
    ds = create_dataset("inria", root=INRIA, split="all")
    sample = ds[0]
    assert sample.image.shape == (1000, 1000, 3) and set(np.unique(sample.label)) == {0, 1}
    tile = INRIA / "tile_gt_5000" / "aerial_sample.tif"
    label = read_label(tile)
    assert label.shape == (5000, 5000) and set(np.unique(label)) == {0, 1}
    np.testing.assert_array_equal(label[2000:3000, 2000:3000], sample.label)  # README: crop of the tile
