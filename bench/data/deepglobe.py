"""DeepGlobe 2018 land cover (2448x2448, 7 colour-coded classes, class 0 "unknown").

Layout (the Development-phase ``land-train.zip`` unzipped under the root)::

    <root>/
      land-train/<id>_sat.jpg
      land-train/<id>_mask.png

Splits are GLNet's train/crossvali/test lists, which MagNet ships as ``data/list/deepglobe``
(454/207/142 ids, all from the 803 labelled images); the ids live in
``configs/splits/deepglobe_{train,val,test}.txt``. ``split="all"`` takes every pair found.

Label colours (RGB, the official coding; MagNet's table matches it once its BGR read is undone):
unknown (0,0,0), urban (0,255,255), agriculture (255,255,0), rangeland (255,0,255),
forest (0,255,0), water (0,0,255), barren (255,255,255).

``colour_match`` decides what happens to pixels whose colour is not one of these seven:

- ``"exact"`` (default, MagNet): they become class 0 "unknown";
- ``"threshold"``: every channel is binarised at 128 first, as the DeepGlobe challenge's own
  evaluation does, so near-colours from lossy saving map to their class; red (the one 1-bit
  combination outside the table) becomes 0;
- ``"strict"``: they raise :class:`~bench.data.base.DataFormatError` listing the colours.

Nothing is ignored (``ignore_index`` None, as in MagNet), and class 0 is left out of the mIoU
mean while its pixels still count as errors of whatever is predicted there.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.data.base import (
    DataFormatError,
    Pair,
    PairedDataset,
    read_id_file,
    read_raw,
    require_dir,
    require_root,
)
from bench.core.data_types import DatasetInfo

CLASS_NAMES = ("unknown", "urban", "agriculture", "rangeland", "forest", "water", "barren")
PALETTE = ((0, 0, 0), (0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255))

INFO = DatasetInfo(
    name="deepglobe",
    class_names=CLASS_NAMES,
    ignore_index=None,
    palette=PALETTE,
    excluded_from_mean=(0,),
    thin_classes=(),
)

SPLIT_DIR = Path(__file__).resolve().parents[2] / "configs" / "splits"
COLOUR_MATCHES = ("exact", "threshold", "strict")

_LAYOUT = """\
  <root>/
    land-train/<id>_sat.jpg     RGB 2448x2448
    land-train/<id>_mask.png    RGB colour-coded mask"""


# Every table colour has channels in {0, 255}. Exact matching therefore reads each channel as a
# ternary digit (0 -> 0, 255 -> 1, anything else -> 2) and looks the 27 combinations up.
_TERNARY = np.full(256, 2, np.uint8)
_TERNARY[0], _TERNARY[255] = 0, 1
_EXACT_TABLE = np.full(27, 255, np.uint8)  # 255: no class has this colour
# Threshold mode: 3-bit index 4R + 2G + B of the binarised colour -> class (red, 4, is unknown).
_BIT_TABLE = np.zeros(8, np.uint8)
for _cls, (_r, _g, _b) in enumerate(PALETTE):
    _EXACT_TABLE[9 * (_r // 255) + 3 * (_g // 255) + _b // 255] = _cls
    _BIT_TABLE[4 * (_r >> 7) + 2 * (_g >> 7) + (_b >> 7)] = _cls


def rgb_to_class(rgb: np.ndarray, colour_match: str = "exact", path: Path | str = "<array>") -> np.ndarray:
    """Map a DeepGlobe RGB mask to class ids.

    Args:
        rgb: (H, W, 3) uint8 RGB mask.
        colour_match: ``exact``, ``threshold`` or ``strict`` (see the module docstring).
        path: file name for error messages.

    Returns:
        (H, W) uint8 class ids in 0..6.

    Raises:
        DataFormatError: ``strict`` and some colour is not in the table.
    """
    if colour_match == "threshold":
        bits = rgb >> 7
        return _BIT_TABLE[4 * bits[..., 0] + 2 * bits[..., 1] + bits[..., 2]]
    digits = _TERNARY[rgb]
    classes = _EXACT_TABLE[9 * digits[..., 0] + 3 * digits[..., 1] + digits[..., 2]]
    unmatched = classes == 255
    if colour_match == "strict" and unmatched.any():
        bad, counts = np.unique(rgb[unmatched], axis=0, return_counts=True)
        shown = ", ".join(f"({r},{g},{b}) ({n} px)" for (r, g, b), n in zip(bad[:10], counts[:10]))
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataFormatError(f"{path}: colour(s) not in the DeepGlobe table: {shown}{more}; allowed RGB: {PALETTE}")
    classes[unmatched] = 0
    return classes


class DeepGlobe(PairedDataset):
    """DeepGlobe land-cover reader.

    Args:
        root: folder holding ``land-train/``.
        split: ``train`` (454), ``val`` (207), ``test`` (142) or ``all`` (every pair present).
        list_file: optional MagNet list file (``image<TAB>label`` relative to root); overrides split.
        colour_match: ``exact`` (MagNet), ``threshold`` or ``strict``.
    """

    info: ClassVar[DatasetInfo] = INFO
    display_name: ClassVar[str] = "DeepGlobe"
    layout: ClassVar[str] = _LAYOUT
    nominal_size: ClassVar[tuple[int, int] | None] = (2448, 2448)
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test", "all")

    def __init__(
        self,
        root: str | Path | None,
        split: str = "val",
        list_file: str | Path | None = None,
        colour_match: str = "exact",
    ) -> None:
        if colour_match not in COLOUR_MATCHES:
            raise ValueError(f"DeepGlobe: colour_match must be one of {COLOUR_MATCHES}, got {colour_match!r}")
        self.colour_match = colour_match
        base = require_root(self.display_name, root, _LAYOUT)
        super().__init__(base, split, self.select_pairs(base, split, list_file, self._walk, ("_sat",)))

    def _walk(self, base: Path, split: str) -> list[Pair]:
        folder = require_dir(self.display_name, base / "land-train", _LAYOUT)
        ids = split_ids(split) if split != "all" else _found_ids(folder)
        return [Pair(i, folder / f"{i}_sat.jpg", folder / f"{i}_mask.png") for i in ids]

    def decode_label(self, path: Path) -> np.ndarray:
        """RGB colour mask -> (H, W) uint8 class ids 0..6."""
        raw = read_raw(path)
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] not in (3, 4):
            raise DataFormatError(f"{path}: expected an 8-bit RGB colour mask, got shape {raw.shape} dtype {raw.dtype}")
        rgb = raw[..., 2::-1]  # OpenCV gives BGR(A)
        return rgb_to_class(rgb, self.colour_match, path)


def split_ids(split: str) -> list[str]:
    """The shipped GLNet/MagNet id list of ``split`` (train, val or test)."""
    return read_id_file(SPLIT_DIR / f"deepglobe_{split}.txt")


def _found_ids(folder: Path) -> list[str]:
    return sorted((p.name[: -len("_sat.jpg")] for p in folder.glob("*_sat.jpg")), key=_numeric_key)


def _numeric_key(text: str) -> tuple[int, str]:
    return (int(text), text) if text.isdigit() else (-1, text)
