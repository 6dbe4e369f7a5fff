"""Inria Aerial Image Labeling (5000x5000 GeoTIFF tiles, building vs background).

Layout (the official ``AerialImageDataset`` folder; the root may be that folder or its parent)::

    <root>/AerialImageDataset/
      train/images/<city><n>.tif     RGB 5000x5000
      train/gt/<city><n>.tif         grey, 255 = building, 0 = background

with <city> in austin, chicago, kitsap, tyrol-w, vienna and <n> in 1..36 (180 labelled tiles).

Splits:

- ``train``/``val``/``test`` (126/27/27): a GLNet-style 70/15/15 split. GLNet split the tiles
  randomly and published the lists only on Google Drive (GLNet issue #24), and the list posted in
  ISDNet issue #20 could not be read in full here, so this split is our own: within each city the
  tiles are ordered by ``sha256("magnet-bench/inria/<city><n>")``, the five per-city orders are
  interleaved city by city (austin, chicago, kitsap, tyrol-w, vienna), and the first 27 tiles of
  that sequence form ``test``, the next 27 ``val``, the remaining 126 ``train``. The lists are
  shipped as ``configs/splits/inria_{train,val,test}.txt`` (a test re-derives them from the rule).
  Pass ``list_file=`` to use another split, e.g. GLNet's.
- ``official_train``/``official_val`` (155/25): the challenge's suggestion, tiles 1-5 of every
  city for validation.
- ``all``: every tile present under ``train/images``.

Labels 0/255 map to 0/1; any other value raises an error listing the values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.data.base import (
    Pair,
    PairedDataset,
    as_grey,
    lookup,
    read_id_file,
    read_raw,
    require_dir,
    require_root,
)
from bench.core.data_types import DatasetInfo

CLASS_NAMES = ("background", "building")
PALETTE = ((0, 0, 0), (255, 255, 255))
CITIES = ("austin", "chicago", "kitsap", "tyrol-w", "vienna")
TILES_PER_CITY = 36
SPLIT_SIZES = {"test": 27, "val": 27, "train": 126}
SPLIT_DIR = Path(__file__).resolve().parents[2] / "configs" / "splits"

INFO = DatasetInfo(
    name="inria",
    class_names=CLASS_NAMES,
    ignore_index=None,
    palette=PALETTE,
    excluded_from_mean=(),
    thin_classes=(),
)

_TABLE = np.zeros(256, np.uint8)
_TABLE[255] = 1

_LAYOUT = """\
  <root>/AerialImageDataset/        (or <root>/ itself)
    train/images/<city><n>.tif      RGB GeoTIFF 5000x5000
    train/gt/<city><n>.tif          grey GeoTIFF, 0 background / 255 building
  <city> in austin, chicago, kitsap, tyrol-w, vienna; <n> in 1..36"""


def all_tiles() -> list[str]:
    """The 180 labelled tile ids, city by city, n = 1..36."""
    return [f"{city}{n}" for city in CITIES for n in range(1, TILES_PER_CITY + 1)]


def hash_split(split: str) -> list[str]:
    """Derive the shipped train/val/test lists from the rule in the module docstring.

    Returns:
        The ids of ``split`` sorted by (city, n).
    """

    def key(tile: str) -> str:
        return hashlib.sha256(f"magnet-bench/inria/{tile}".encode()).hexdigest()

    per_city = [sorted((f"{c}{n}" for n in range(1, TILES_PER_CITY + 1)), key=key) for c in CITIES]
    sequence = [tiles[k] for k in range(TILES_PER_CITY) for tiles in per_city]
    start = {"test": 0, "val": SPLIT_SIZES["test"], "train": SPLIT_SIZES["test"] + SPLIT_SIZES["val"]}[split]
    chosen = set(sequence[start : start + SPLIT_SIZES[split]])
    return [t for t in all_tiles() if t in chosen]


def official_split(split: str) -> list[str]:
    """``official_val``: tiles 1-5 of each city; ``official_train``: the other 155."""
    val = split == "official_val"
    return [f"{c}{n}" for c in CITIES for n in range(1, TILES_PER_CITY + 1) if (n <= 5) == val]


class InriaAerial(PairedDataset):
    """Inria Aerial reader.

    Args:
        root: ``AerialImageDataset`` or its parent.
        split: ``train``, ``val``, ``test``, ``official_train``, ``official_val`` or ``all``.
        list_file: optional list file (``image<TAB>label`` relative to the resolved
            ``AerialImageDataset`` folder); overrides split.
    """

    info: ClassVar[DatasetInfo] = INFO
    display_name: ClassVar[str] = "Inria Aerial"
    layout: ClassVar[str] = _LAYOUT
    nominal_size: ClassVar[tuple[int, int] | None] = (5000, 5000)
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test", "official_train", "official_val", "all")

    def __init__(self, root: str | Path | None, split: str = "val", list_file: str | Path | None = None) -> None:
        base = require_root(self.display_name, root, _LAYOUT)
        if (base / "AerialImageDataset").is_dir():
            base = base / "AerialImageDataset"
        super().__init__(base, split, self.select_pairs(base, split, list_file, self._walk))

    def _walk(self, base: Path, split: str) -> list[Pair]:
        image_dir = require_dir(self.display_name, base / "train" / "images", _LAYOUT)
        label_dir = require_dir(self.display_name, base / "train" / "gt", _LAYOUT)
        if split == "all":
            ids = [p.stem for p in sorted(image_dir.glob("*.tif"))]
        elif split.startswith("official_"):
            ids = official_split(split)
        else:
            ids = read_id_file(SPLIT_DIR / f"inria_{split}.txt")
        return [Pair(i, image_dir / f"{i}.tif", label_dir / f"{i}.tif") for i in ids]

    def decode_label(self, path: Path) -> np.ndarray:
        """0/255 -> (H, W) uint8 0/1."""
        return read_label(path)


def read_label(path: Path) -> np.ndarray:
    """Read one Inria ground-truth GeoTIFF as (H, W) uint8 0/1 (255 = building -> 1)."""
    return lookup(as_grey(read_raw(path), path), _TABLE, path, (0, 255))
