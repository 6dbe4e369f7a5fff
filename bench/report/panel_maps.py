"""What a panel shows and its colours: :class:`PanelInput`, the palette colouring and the error maps.

Shared by the full grid (:mod:`bench.report.panels`) and the per-crop panels
(:mod:`bench.report.panel_crops`); :mod:`bench.report.panels` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.core.interface import DatasetInfo

Box = tuple[int, int, int, int]
"""A crop (x, y, w, h) in full-resolution pixels."""

ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "fixed": (0, 170, 0),         # wrong in coarse, right in the method
    "broken": (220, 0, 0),        # right in coarse, wrong in the method
    "both_wrong": (40, 40, 40),   # wrong in both (also: wrong in the coarse error map)
    "both_right": (255, 255, 255),  # right in both (also: right in the coarse error map)
    "ignore": (150, 150, 150),    # ground truth is the ignore index
}
IGNORE_COLOUR = (0, 0, 0)
"""Colour of ignored ground-truth pixels in the palette-coloured maps (Cityscapes' void)."""


# --- colouring -------------------------------------------------------------------------------

def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int | None) -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) uint8 RGB in the dataset's palette.

    ``ignore_index`` pixels are :data:`IGNORE_COLOUR`.

    Raises:
        ValueError: a label that is neither a class id (0..C-1) nor the ignore index.
    """
    labels = np.asarray(labels)
    table = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    ignore = labels == ignore_index if ignore_index is not None else np.zeros(labels.shape, bool)
    bad = (~ignore) & ((labels < 0) | (labels >= len(table)))
    if bad.any():
        raise ValueError(f"labels {sorted(np.unique(labels[bad]).tolist())[:10]} are outside the palette's "
                         f"{len(table)} classes (ignore index {ignore_index})")
    out = table[np.where(ignore, 0, labels)]
    out[ignore] = IGNORE_COLOUR
    return out


def _paint(masks: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(shape + (3,), np.uint8)
    for name, mask in masks.items():
        out[mask] = ERROR_COLOURS[name]
    return out


def error_map(gt: np.ndarray, coarse: np.ndarray, pred: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """(H, W, 3) uint8 map of a method's errors relative to the coarse map (see ERROR_COLOURS).

    Args:
        gt, coarse, pred: (H, W) integer label maps of the same shape.
    """
    ignore = gt == ignore_index if ignore_index is not None else np.zeros(gt.shape, bool)
    c_ok, p_ok = (coarse == gt) & ~ignore, (pred == gt) & ~ignore
    return _paint({"both_right": c_ok & p_ok, "both_wrong": ~c_ok & ~p_ok & ~ignore, "fixed": ~c_ok & p_ok,
                   "broken": c_ok & ~p_ok, "ignore": ignore}, gt.shape)


def coarse_error_map(gt: np.ndarray, coarse: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """(H, W, 3) uint8: coarse right (white), wrong (dark), ignored (grey): the coarse map against itself."""
    return error_map(gt, coarse, coarse, ignore_index)


def cut(array: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return array[y:y + h, x:x + w]


@dataclass
class PanelInput:
    """Everything one panel shows.

    Attributes:
        image_id: the image's id (title, file name).
        image: (H, W, 3) uint8 RGB; gt, coarse: (H, W) integer labels.
        methods: ``{column title: (H, W) labels}`` in column order.
        crops: crop boxes (x, y, w, h).
        info: the dataset (palette, ignore index, class names).
        caption: a line under the title (size, how the crops were chosen).
    """

    image_id: str
    image: np.ndarray
    gt: np.ndarray
    coarse: np.ndarray
    methods: dict[str, np.ndarray]
    crops: list[Box]
    info: DatasetInfo
    caption: str = ""
