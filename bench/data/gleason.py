"""Gleason 2019 TMA cores as MagNet preprocessed them (5000x5000, 5 grey-coded classes).

Layout (MagNet's deleted list files, magnet.md §6.3)::

    <root>/
      images/{train,validation}/slideXXX_coreYYY.jpg
      gt/{train,validation}/slideXXX_coreYYY_classimg_nonconvex.png

Labels are grey levels 0/50/100/150/200 mapped to classes 0..4; any other level is an error that
lists the offending values. Split ``val`` reads the ``validation`` folders (195/49 cores in MagNet).

The class names follow the usual Gleason 2019 reading (background, benign, Gleason grades 3-5);
MagNet's mapping from the raw annotator labels to these five levels was never published
(issues #11/#27), so the names are [unverified]. No Gleason data is available to test against.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.data.base import (
    Pair,
    PairedDataset,
    as_grey,
    lookup,
    read_raw,
    require_dir,
    require_root,
)
from bench.core.data_types import DatasetInfo

CLASS_NAMES = ("background", "benign", "gleason_3", "gleason_4", "gleason_5")
GREY_LEVELS = (0, 50, 100, 150, 200)
PALETTE = tuple((g, g, g) for g in GREY_LEVELS)

INFO = DatasetInfo(
    name="gleason",
    class_names=CLASS_NAMES,
    ignore_index=None,
    palette=PALETTE,
    excluded_from_mean=(),
    thin_classes=(),
)

_TABLE = np.zeros(256, np.uint8)
for _cls, _grey in enumerate(GREY_LEVELS):
    _TABLE[_grey] = _cls

_FOLDERS = {"train": "train", "val": "validation"}
_LABEL_SUFFIX = "_classimg_nonconvex.png"

_LAYOUT = """\
  <root>/
    images/train/<slide>_<core>.jpg
    images/validation/<slide>_<core>.jpg
    gt/train/<slide>_<core>_classimg_nonconvex.png        grey 0/50/100/150/200
    gt/validation/<slide>_<core>_classimg_nonconvex.png"""


class Gleason(PairedDataset):
    """Gleason 2019 reader (MagNet's preprocessed layout).

    Args:
        root: folder holding ``images/`` and ``gt/``.
        split: ``train`` or ``val`` (the ``validation`` folders).
        list_file: optional MagNet list file (``image<TAB>label`` relative to root); overrides split.
    """

    info: ClassVar[DatasetInfo] = INFO
    display_name: ClassVar[str] = "Gleason"
    layout: ClassVar[str] = _LAYOUT
    nominal_size: ClassVar[tuple[int, int] | None] = (5000, 5000)
    SPLITS: ClassVar[tuple[str, ...]] = tuple(_FOLDERS)

    def __init__(self, root: str | Path | None, split: str = "val", list_file: str | Path | None = None) -> None:
        base = require_root(self.display_name, root, _LAYOUT)
        super().__init__(base, split, self.select_pairs(base, split, list_file, self._walk))

    def _walk(self, base: Path, split: str) -> list[Pair]:
        folder = _FOLDERS[split]
        image_dir = require_dir(self.display_name, base / "images" / folder, _LAYOUT)
        label_dir = require_dir(self.display_name, base / "gt" / folder, _LAYOUT)
        return [Pair(p.stem, p, label_dir / f"{p.stem}{_LABEL_SUFFIX}") for p in sorted(image_dir.glob("*.jpg"))]

    def decode_label(self, path: Path) -> np.ndarray:
        """Grey 0/50/100/150/200 -> (H, W) uint8 classes 0..4."""
        return lookup(as_grey(read_raw(path), path), _TABLE, path, GREY_LEVELS)
