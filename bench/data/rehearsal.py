"""Rehearsal data: the generated scenes written as files in the real datasets' layouts, at real sizes.

A researcher's run reads Cityscapes, DeepGlobe or Inria from disk at 2048x1024, 2448x2448 or
5000x5000; the synthetic datasets are drawn in memory at a few hundred pixels. This module writes
the same generators' samples as the readers expect the real files (issue 21, item 7), so that a
whole sweep (`bench run cityscapes data_root=<folder> train=true`) can be rehearsed at real scale
without the licensed data:

- :func:`write_cityscapes`: :class:`bench.data.synthetic_streets.SyntheticStreets` at 2048x1024 as
  ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` (RGB) and
  ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`` (8-bit grey) over the real
  Cityscapes id set: each trainId is written as its labelId (``LABEL_TO_TRAIN`` inverted) and the
  void ids are stamped where the real annotation has them (:func:`stamp_void`): ego vehicle (1)
  along the bottom, rectification border (2) at the sides, out of roi (3) along the top, and
  unlabeled (0), static (4), dynamic (5), ground (6), parking (9), rail track (10), guard rail
  (14), bridge (15), tunnel (16), polegroup (18), caravan (29), trailer (30) and the licence plate
  (-1, stored as 255) as small patches. The reader maps all of them to 255 (ignored).
- :func:`write_deepglobe`: :class:`bench.data.synthetic_aerial.SyntheticAerial` at 2448x2448 as
  ``land-train/<id>_sat.jpg`` and the colour mask ``land-train/<id>_mask.png`` (the official
  RGB coding), under ids of the shipped split lists, plus list files (``lists/<split>.txt``)
  holding only the written tiles, for ``data.list_file=`` / ``train_data.list_file=``.
- :func:`write_inria`: the same aerial tiles at 5000x5000 (or a smaller ``size``: a crop of the
  real tile's scale) as ``AerialImageDataset/train/images/<id>.tif`` and the building mask
  ``train/gt/<id>.tif`` (0 background / 255 building: the roofs the generator draws, as
  :func:`building_mask` recovers them), ids from the shipped split lists, list files likewise.

Every sample depends only on (seed, split, index, size), as the generators' own; the files are
written atomically (a temporary name, then a rename), so a killed generation leaves no torn file,
and a file already present is kept (a rerun completes what is missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.data.base import read_id_file
from bench.data.cityscapes import LABEL_TO_TRAIN
from bench.data.deepglobe import PALETTE as DEEPGLOBE_PALETTE
from bench.data.deepglobe import split_ids as deepglobe_ids
from bench.data.synthetic_aerial import AMPLITUDES as AERIAL_AMPLITUDES
from bench.data.synthetic_aerial import URBAN, SyntheticAerial, _Tile
from bench.data.synthetic_common import compose, finish, sample_rng, smooth_noise
from bench.data.synthetic_streets import SyntheticStreets

CITYSCAPES_SIZE = (2048, 1024)  # (w, h) of every Cityscapes frame
DEEPGLOBE_SIZE = (2448, 2448)
INRIA_SIZE = (5000, 5000)
# the real cities of each split (cityscapesScripts); frames are named after them
CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster"),
          "test": ("berlin", "bielefeld", "bonn")}
TRAIN_TO_LABEL = {train: label for label, train in LABEL_TO_TRAIN.items()}  # trainId -> labelId
LICENSE_PLATE = 255  # the licence plate's id -1, as an 8-bit PNG stores it
# labelIds that are not evaluated (mapped to 255): every id of 0..33 but the 19 of LABEL_TO_TRAIN
VOID_IDS = tuple(i for i in range(34) if i not in LABEL_TO_TRAIN)
EGO_VEHICLE, RECTIFICATION_BORDER, OUT_OF_ROI = 1, 2, 3
_PATCH_IDS = tuple(i for i in VOID_IDS if i not in (EGO_VEHICLE, RECTIFICATION_BORDER, OUT_OF_ROI)) + (LICENSE_PLATE,)


@dataclass(frozen=True)
class Written:
    """What one generator wrote.

    Attributes:
        root: the dataset folder (what ``data_root=`` takes).
        files: every image and label file of the layout, in split order (written now or kept).
        lists: ``{split: list file}`` (DeepGlobe and Inria; empty for Cityscapes, whose reader walks
            the folders).
    """

    root: Path
    files: tuple[Path, ...]
    lists: dict[str, Path]


def _atomic_write(path: Path, encode: Callable[[Path], bool]) -> None:
    """Write ``path`` through a temporary file in the same folder (``encode(tmp)`` writes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # same extension: OpenCV picks the codec from it
    if not encode(tmp):
        raise OSError(f"cannot write {path} (OpenCV refused the encoding)")
    os.replace(tmp, path)


def _write_image(path: Path, array: np.ndarray, params: Sequence[int] = ()) -> None:
    """An RGB (H, W, 3) or grey (H, W) uint8 array as an image file (OpenCV writes BGR)."""
    data = array[..., ::-1] if array.ndim == 3 else array
    _atomic_write(path, lambda tmp: bool(cv2.imwrite(str(tmp), np.ascontiguousarray(data), list(params))))


# --- Cityscapes ----------------------------------------------------------------------------------

def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 trainIds 0..18 -> the labelIds the official ``*_gtFine_labelIds.png`` holds.

    Raises:
        ValueError: a value outside 0..18.
    """
    if train_ids.size and int(train_ids.max()) > 18:
        raise ValueError(f"trainIds outside 0..18: {sorted(v for v in np.unique(train_ids).tolist() if v > 18)}")
    table = np.zeros(256, np.uint8)
    for train, label in TRAIN_TO_LABEL.items():
        table[train] = label
    return table[train_ids]


def stamp_void(label_ids: np.ndarray, index: int) -> np.ndarray:
    """Put every void id where a real Cityscapes annotation has it (a copy; see the module docstring).

    Sizes scale with the width (2048 px: an ego-vehicle band of 5 % of the height, a 4 px
    rectification border, a 6 px out-of-roi band, patches of 1.5 % of the width); the patches sit
    in a row at two fifths of the height, shifted by ``index`` so frames differ.

    Args:
        label_ids: (H, W) uint8 labelIds.
        index: the frame's index in its split.

    Returns:
        (H, W) uint8 labelIds holding every id of ``VOID_IDS`` and the licence plate (255).
    """
    out = label_ids.copy()
    h, w = out.shape
    s = w / CITYSCAPES_SIZE[0]
    ego = max(1, round(0.05 * h))
    out[h - ego:] = EGO_VEHICLE
    border = max(1, round(4 * s))
    out[:, :border] = RECTIFICATION_BORDER
    out[:, w - border:] = RECTIFICATION_BORDER
    out[:max(1, round(6 * s))] = OUT_OF_ROI
    side = max(1, round(0.015 * w))
    y0 = min(h - ego - side, (2 * h) // 5)
    step = max(side + 1, (w - 2 * border) // (len(_PATCH_IDS) + 1))
    for k, value in enumerate(_PATCH_IDS):
        x0 = border + (k * step + index * side) % max(1, w - 2 * border - side)
        out[y0:y0 + side, x0:x0 + side] = value
    return out


def frame_name(split: str, index: int) -> tuple[str, str]:
    """``(city, "<city>_<seq>_<frame>")`` of frame ``index`` of ``split``, as Cityscapes names them."""
    cities = CITIES.get(split, CITIES["val"])
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_000019"


def write_cityscapes(root: str | Path, counts: dict[str, int], size: tuple[int, int] = CITYSCAPES_SIZE,
                     seed: int = 0) -> Written:
    """Write the street scenes in the Cityscapes layout (see the module docstring).

    Args:
        root: the dataset folder (created).
        counts: frames per split, e.g. ``{"train": 4, "val": 2}``.
        size: (w, h); the real frames are 2048x1024 (tests use small sizes).
        seed: the generator's base seed.

    Returns:
        The files of the layout.
    """
    root = Path(root)
    files = []
    for split, n in counts.items():
        data = SyntheticStreets(split=split, n_images=n, size=size, seed=seed)
        for i in range(n):
            city, frame = frame_name(split, i)
            image = root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png"
            label = root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png"
            if not (image.is_file() and label.is_file()):
                sample = data[i]
                _write_image(image, sample.image)
                _write_image(label, stamp_void(to_label_ids(sample.label), i))
            files += [image, label]
    return Written(root, tuple(files), {})


# --- DeepGlobe and Inria -------------------------------------------------------------------------

def colour_mask(classes: np.ndarray) -> np.ndarray:
    """(H, W) uint8 DeepGlobe classes 0..6 -> (H, W, 3) uint8 RGB in the official colour coding."""
    return np.asarray(DEEPGLOBE_PALETTE, np.uint8)[classes]


def _list_file(root: Path, split: str, pairs: Sequence[tuple[Path, Path]]) -> Path:
    path = root / "lists" / f"{split}.txt"
    text = "".join(f"{i.relative_to(root)}\t{g.relative_to(root)}\n" for i, g in pairs)
    _atomic_write(path, lambda tmp: tmp.write_text(text) >= 0)
    return path


def write_deepglobe(root: str | Path, counts: dict[str, int], size: tuple[int, int] = DEEPGLOBE_SIZE,
                    seed: int = 0, quality: int = 95) -> Written:
    """Write aerial tiles in the DeepGlobe layout under the first ids of the shipped split lists.

    Args:
        root: the dataset folder (created); ``land-train/`` and ``lists/`` go in it.
        counts: tiles per split (``train``, ``val``, ``test``).
        size: (w, h); the real tiles are 2448x2448.
        seed: the generator's base seed.
        quality: JPEG quality of the ``_sat.jpg`` (the real files are JPEGs).

    Returns:
        The files and one list file per split (``data.list_file=<root>/lists/test.txt``).
    """
    root = Path(root)
    files, lists = [], {}
    for split, n in counts.items():
        ids = deepglobe_ids(split)[:n]
        data = SyntheticAerial(split=split, n_images=len(ids), size=size, seed=seed)
        pairs = []
        for i, ident in enumerate(ids):
            image, mask = root / "land-train" / f"{ident}_sat.jpg", root / "land-train" / f"{ident}_mask.png"
            if not (image.is_file() and mask.is_file()):
                sample = data[i]
                _write_image(image, sample.image, (cv2.IMWRITE_JPEG_QUALITY, quality))
                _write_image(mask, colour_mask(sample.label))
            pairs.append((image, mask))
        files += [p for pair in pairs for p in pair]
        lists[split] = _list_file(root, split, pairs)
    return Written(root, tuple(files), lists)


class _BuildingTile(_Tile):
    """An aerial tile that also records which pixels its building roofs cover last.

    Drawing is the parent's, call for call (the same random draws); ``owner`` is set to 1 where
    a roof polygon paints the colour layer and to 0 where anything else paints over it.
    """

    def __init__(self, rng: np.random.Generator, width: int, height: int, index: int) -> None:
        super().__init__(rng, width, height, index)
        self.owner = np.zeros((height, width), np.uint8)
        self._roof = False
        canvas_draw = self.canvas._draw

        def draw(fn, label, colour, texture):  # noqa: ANN001, ANN202 - Canvas._draw's signature
            if colour is not None:
                fn(self.owner, 1 if self._roof else 0)
            canvas_draw(fn, label, colour, texture)

        self.canvas._draw = draw  # type: ignore[method-assign]

    def building(self, x: float, y: float, theta: float, label: int | None) -> None:
        poly = self.canvas.poly
        calls = []

        def roof_last(pts, lab, colour, texture):  # noqa: ANN001, ANN202 - Canvas.poly's signature
            calls.append(None)
            self._roof = len(calls) == 2  # the parent draws the shadow, then the roof
            poly(pts, lab, colour, texture)
            self._roof = False

        self.canvas.poly = roof_last  # type: ignore[method-assign]
        try:
            super().building(x, y, theta, label)
        finally:
            self.canvas.poly = poly  # type: ignore[method-assign]

    def grid(self, inside: np.ndarray, theta: float, spacing: float, width: float, colour: tuple) -> None:
        before = self.canvas.colour.copy()
        super().grid(inside, theta, spacing, width, colour)
        self.owner[(self.canvas.colour != before).any(-1)] = 0  # the grid paints by indexing, not _draw


def building_mask(rng: np.random.Generator, width: int, height: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One aerial tile and its building mask.

    Draws the tile exactly as :class:`SyntheticAerial` does for the same ``rng`` (same image) and
    keeps the pixels whose colour a roof set last and that stay urban (footprints cut off at a
    district's edge and roofs under a river or cloud are not buildings).

    Returns:
        ((H, W, 3) uint8 RGB image, (H, W) uint8 mask: 255 building, 0 background).
    """
    tile = _BuildingTile(rng, width, height, index)
    # SyntheticAerial.render's steps on this tile (tests/test_rehearsal.py: the same image)
    stripes = tile.draw()
    fields = [rng.standard_normal((height, width), dtype=np.float32),
              smooth_noise(rng, (height, width), max(1.5, 3.0 * tile.s)),
              smooth_noise(rng, (height, width), max(8.0, 80.0 * tile.s)), stripes]
    image = finish(compose(tile.canvas, AERIAL_AMPLITUDES, fields), rng, tile.s)
    label = tile.canvas.label
    mask = (tile.owner == 1) & (label == URBAN)
    return image, np.where(mask, 255, 0).astype(np.uint8)


def write_inria(root: str | Path, counts: dict[str, int], size: tuple[int, int] = INRIA_SIZE,
                seed: int = 0) -> Written:
    """Write aerial tiles with building masks in the Inria layout under ids of the shipped split lists.

    Args:
        root: the folder that gets ``AerialImageDataset/`` (what ``data_root=`` takes).
        counts: tiles per split (``train``, ``val``, ``test``).
        size: (w, h); the real tiles are 5000x5000 (a smaller size: a crop at the same scale).
        seed: the generator's base seed.
    """
    from bench.data.inria import SPLIT_DIR

    root = Path(root)
    base = root / "AerialImageDataset"
    files, lists = [], {}
    for split, n in counts.items():
        ids = read_id_file(SPLIT_DIR / f"inria_{split}.txt")[:n]
        pairs = []
        for i, ident in enumerate(ids):
            image, gt = base / "train" / "images" / f"{ident}.tif", base / "train" / "gt" / f"{ident}.tif"
            if not (image.is_file() and gt.is_file()):
                rgb, mask = building_mask(sample_rng(seed, f"inria-{split}", i, size), size[0], size[1], i)
                _write_image(image, rgb)
                _write_image(gt, mask)
            pairs.append((image, gt))
        files += [p for pair in pairs for p in pair]
        lists[split] = _list_file(base, split, pairs)
    return Written(root, tuple(files), lists)
