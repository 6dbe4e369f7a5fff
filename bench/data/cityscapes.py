"""Cityscapes fine annotations (2048x1024, 19 train classes, 255 ignored).

Layout (the unzipped ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``)::

    <root>/
      leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

``labelIds`` (0..33) are mapped to the 19 trainIds as MagNet does (magnet.md §6.1); every other id,
and the license-plate id -1 (stored as 255), becomes 255. ``label_type="labelTrainIds"`` reads the
``*_gtFine_labelTrainIds.png`` files made by cityscapesScripts instead (they are rasterised from the
polygons and differ from the mapped labelIds at about 0.5 % of boundary pixels).
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

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts labels.py; magnet.md §6.1).
LABEL_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

IGNORE = 255
THIN_CLASSES = (5, 6, 7, 11, 12, 17, 18)  # pole, light, sign, person, rider, motorcycle, bicycle

INFO = DatasetInfo(
    name="cityscapes",
    class_names=CLASS_NAMES,
    ignore_index=IGNORE,
    palette=PALETTE,
    excluded_from_mean=(),
    thin_classes=THIN_CLASSES,
)


def label_to_train_table() -> np.ndarray:
    """(256,) uint8 table labelId -> trainId, 255 for everything not evaluated."""
    table = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN.items():
        table[label_id] = train_id
    return table


_TABLE = label_to_train_table()
_LABEL_IDS_ALLOWED = np.r_[np.arange(34), 255]  # 255 is the license plate's -1 written as uint8
_TRAIN_IDS_ALLOWED = np.r_[np.arange(19), 255]
_IDENTITY = np.arange(256, dtype=np.uint8)

_LAYOUT = """\
  <root>/
    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (or _gtFine_labelTrainIds.png)
  with <split> one of train, val, test"""

_IMAGE_SUFFIX = "_leftImg8bit"
LABEL_TYPES = ("labelIds", "labelTrainIds")


class Cityscapes(PairedDataset):
    """Cityscapes reader.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``train``, ``val`` or ``test`` (ignored when ``list_file`` is given).
        list_file: optional MagNet list file (``image<TAB>label`` relative to root).
        label_type: ``labelIds`` (mapped to trainIds, MagNet) or ``labelTrainIds`` (read as is).
    """

    info: ClassVar[DatasetInfo] = INFO
    display_name: ClassVar[str] = "Cityscapes"
    layout: ClassVar[str] = _LAYOUT
    nominal_size: ClassVar[tuple[int, int] | None] = (2048, 1024)
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __init__(
        self,
        root: str | Path | None,
        split: str = "val",
        list_file: str | Path | None = None,
        label_type: str = "labelIds",
    ) -> None:
        if label_type not in LABEL_TYPES:
            raise ValueError(f"Cityscapes: label_type must be one of {LABEL_TYPES}, got {label_type!r}")
        self.label_type = label_type
        base = require_root(self.display_name, root, _LAYOUT)
        super().__init__(base, split, self.select_pairs(base, split, list_file, self._walk, (_IMAGE_SUFFIX,)))

    def _walk(self, root: Path, split: str) -> list[Pair]:
        image_dir = require_dir(self.display_name, root / "leftImg8bit" / split, _LAYOUT)
        label_dir = require_dir(self.display_name, root / "gtFine" / split, _LAYOUT)
        pairs = []
        for image in sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}.png")):
            frame = image.name[: -len(f"{_IMAGE_SUFFIX}.png")]
            label = label_dir / image.parent.name / f"{frame}_gtFine_{self.label_type}.png"
            pairs.append(Pair(frame, image, label))
        return pairs

    def decode_label(self, path: Path) -> np.ndarray:
        """labelIds -> trainIds (or trainIds checked), (H, W) uint8 with 255 ignored."""
        values = as_grey(read_raw(path), path)
        if self.label_type == "labelTrainIds":
            return lookup(values, _IDENTITY, path, _TRAIN_IDS_ALLOWED)
        return lookup(values, _TABLE, path, _LABEL_IDS_ALLOWED)
