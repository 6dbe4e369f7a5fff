"""One qualitative panel per crop, sized for a screen (issue 24 item 5).

The whole-image grid of :func:`bench.report.panels.draw_panel` puts every crop and every method in
one figure (14 columns, 5535x2522 px on the synthetic default): fitted to a screen its labels are a
few pixels high. A crop panel shows one crop only:

- per block of at most :data:`MAX_COLUMNS` columns, a row of label maps (image | ground truth |
  coarse | each method, in the dataset's palette) and under it the error maps against the coarse
  map (:data:`bench.report.panel_maps.ERROR_COLOURS`: green fixed, red broken);
- more methods wrap into further blocks below, so the width stays at most :data:`SCREEN_PX`;
- a legend of the crop's classes and the error colours at the bottom.

Every crop cell is the crop upscaled by a whole factor (nearest neighbour), so 1-px structures stay
crisp bands. The font is sized from the panel's width so that a label is at least
:data:`LABEL_PX_AT_VIEW` px high when the PNG is shown :data:`VIEW_PX` px wide (and never smaller
than that at its own size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.report.panel_maps import ERROR_COLOURS, Box, PanelInput, coarse_error_map, colorize, cut, error_map

SCREEN_PX = 1600
"""Widest a crop panel gets (pixels): a laptop screen's width with the browser's margins."""

VIEW_PX = 1200
"""The display width (pixels) at which labels must stay legible."""

LABEL_PX_AT_VIEW = 13.0
"""Font size (pixels, the em size) of every label when the panel is shown :data:`VIEW_PX` wide:
13 px is the smallest body text size browsers and UI guidelines use for reading."""

MAX_COLUMNS = 5
"""Cells per row; further methods wrap into another block of rows."""

CELL_MAX_PX = 400
"""Largest crop cell (pixels): a small crop is upscaled by a whole factor up to this size."""

DPI = 100
MARGIN_PX = 12
GAP_PX = 8


@dataclass(frozen=True)
class CropLayout:
    """Pixel geometry of one crop panel.

    Attributes:
        columns: cells per row.
        blocks: rows of label maps (each with its row of error maps under it).
        cell: (w, h) of one cell in pixels (the crop times ``factor``, or shrunk to fit).
        factor: whole upscale factor of the crop (1 when the crop is shrunk).
        width: panel width in pixels (at most :data:`SCREEN_PX`).
        font_px: label font size in pixels at the panel's own size.
    """

    columns: int
    blocks: int
    cell: tuple[int, int]
    factor: int
    width: int
    font_px: float

    @property
    def line_px(self) -> int:
        """Height of one line of labels (font plus leading)."""
        return int(math.ceil(1.5 * self.font_px))


def crop_layout(n_cells: int, crop_w: int, crop_h: int) -> CropLayout:
    """The geometry of a panel of ``n_cells`` cells of a ``crop_w`` x ``crop_h`` crop."""
    columns = max(1, min(MAX_COLUMNS, n_cells))
    avail = (SCREEN_PX - 2 * MARGIN_PX - GAP_PX * (columns - 1)) // columns
    side = max(crop_w, crop_h)
    factor = max(1, min(CELL_MAX_PX, avail) // side)
    if side * factor <= avail:
        cell = (crop_w * factor, crop_h * factor)
    else:  # a crop wider than a cell is shrunk (no longer pixel-exact)
        factor, scale = 1, avail / side
        cell = (max(1, int(crop_w * scale)), max(1, int(crop_h * scale)))
    width = 2 * MARGIN_PX + columns * cell[0] + GAP_PX * (columns - 1)
    font_px = LABEL_PX_AT_VIEW * max(1.0, width / VIEW_PX)
    return CropLayout(columns, math.ceil(n_cells / columns), cell, factor, width, font_px)


def label_px_at(layout: CropLayout, shown_px: int = VIEW_PX) -> float:
    """Label font size (pixels) when the panel is shown ``shown_px`` wide."""
    return layout.font_px * shown_px / layout.width


def _cells(panel: PanelInput, box: Box) -> tuple[list[tuple[np.ndarray, str]], list[tuple[np.ndarray, str] | None]]:
    """The label cells and the error cells under them (None: nothing under the image and the GT)."""
    info = panel.info
    gt, coarse = cut(panel.gt, box), cut(panel.coarse, box)
    valid = gt != info.ignore_index if info.ignore_index is not None else np.ones(gt.shape, bool)
    colour = lambda labels: colorize(labels, info.palette, info.ignore_index)  # noqa: E731
    tops = [(cut(panel.image, box), "image"), (colour(gt), "ground truth"), (colour(coarse), "coarse")]
    bottoms: list[tuple[np.ndarray, str] | None] = [
        None, None, (coarse_error_map(gt, coarse, info.ignore_index), f"coarse wrong {int(((coarse != gt) & valid).sum())} px")]
    for title, labels in panel.methods.items():
        pred = cut(labels, box)
        fixed = int(((coarse != gt) & (pred == gt) & valid).sum())
        broken = int(((coarse == gt) & (pred != gt) & valid).sum())
        tops.append((colour(pred), title))
        bottoms.append((error_map(gt, coarse, pred, info.ignore_index), f"fixed {fixed} / broken {broken} px"))
    return tops, bottoms


def _legend_items(panel: PanelInput, box: Box) -> list[tuple[tuple[int, int, int], str]]:
    present = np.unique(cut(panel.gt, box))
    items = [(_rgb(panel.info.palette[int(c)]), panel.info.class_names[int(c)])
             for c in present if c != panel.info.ignore_index]
    names = {"fixed": "fixed: coarse wrong, method right", "broken": "broken: coarse right, method wrong",
             "both_wrong": "wrong in both", "both_right": "right in both", "ignore": "ignored"}
    return items + [(ERROR_COLOURS[k], v) for k, v in names.items()]


def _rgb(colour: Sequence[int]) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in colour)
    return r, g, b


def draw_crop_panel(panel: PanelInput, k: int, path: Path) -> Path:
    """Write the panel of crop ``k`` (0-based) of ``panel`` as a PNG; returns ``path``.

    The PNG is :attr:`CropLayout.width` pixels wide (at most :data:`SCREEN_PX`).
    """
    import matplotlib.pyplot as plt

    fig, _ = crop_figure(panel, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def crop_figure(panel: PanelInput, k: int) -> tuple[Any, CropLayout]:
    """The matplotlib figure of crop ``k`` (0-based) of ``panel`` (at :data:`DPI`), and its layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    box = panel.crops[k]
    tops, bottoms = _cells(panel, box)
    lay = crop_layout(len(tops), box[2], box[3])
    legend = _legend_items(panel, box)
    legend_cols = max(1, min(4, lay.width // int(22 * lay.font_px)))
    legend_rows = math.ceil(len(legend) / legend_cols)
    block_h = 2 * (lay.line_px + lay.cell[1]) + GAP_PX
    head = 2 * lay.line_px + MARGIN_PX
    height = head + lay.blocks * block_h + legend_rows * lay.line_px + 2 * MARGIN_PX
    fig = plt.figure(figsize=(lay.width / DPI, height / DPI), dpi=DPI)
    pt = lay.font_px * 72 / DPI  # matplotlib sizes fonts in points
    x, y, w, h = box
    fig.text(MARGIN_PX / lay.width, 1 - MARGIN_PX / height, f"{panel.info.name} {panel.image_id}, crop {k + 1} of "
             f"{len(panel.crops)} at x,y = {x},{y} ({w}x{h} px, shown x{lay.factor})", fontsize=pt, va="top")
    fig.text(MARGIN_PX / lay.width, 1 - (MARGIN_PX + lay.line_px) / height, panel.caption, fontsize=pt, va="top",
             color="0.3")
    for i, (top, bottom) in enumerate(zip(tops, bottoms)):
        row, col = divmod(i, lay.columns)
        left = MARGIN_PX + col * (lay.cell[0] + GAP_PX)
        y_top = head + row * block_h + lay.line_px
        for cell, y_cell in ((top, y_top), (bottom, y_top + lay.cell[1] + lay.line_px)):
            if cell is None:
                continue
            ax = fig.add_axes((left / lay.width, 1 - (y_cell + lay.cell[1]) / height,
                               lay.cell[0] / lay.width, lay.cell[1] / height))
            ax.imshow(cell[0], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(cell[1], fontsize=pt, pad=0.2 * lay.font_px)
    handles = [Patch(facecolor=(r / 255, g / 255, b / 255), edgecolor="0.5", label=text) for (r, g, b), text in legend]
    fig.legend(handles=handles, loc="lower left", ncol=legend_cols, fontsize=pt, frameon=False,
               bbox_to_anchor=(MARGIN_PX / lay.width, MARGIN_PX / height), borderaxespad=0, handlelength=1.2)
    return fig, lay


def crop_paths(folder: Path, stem: str) -> list[Path]:
    """The crop panels ``<stem>.crop<k>.png`` in ``folder``, in crop order."""
    found = folder.glob(f"{stem}.crop*.png")
    return sorted(found, key=lambda p: int(p.name[len(stem) + len(".crop"):-len(".png")] or 0))


def draw_crop_panels(panel: PanelInput, folder: Path, stem: str) -> list[Path]:
    """One PNG per crop, ``<folder>/<stem>.crop<k>.png`` (k from 1); older crop files of ``stem`` go."""
    for old in crop_paths(folder, stem):
        old.unlink()
    return [draw_crop_panel(panel, k, folder / f"{stem}.crop{k + 1}.png") for k in range(len(panel.crops))]

