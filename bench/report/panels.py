"""Qualitative panels in the manner of the MagNet supplement's figures, from saved label maps.

Layouts (:data:`PANEL_LAYOUTS`, ``layout=`` of :func:`render_panels`, ``bench show --layout``):

- ``crops`` (the default): one PNG per crop that fits a screen,
  ``<tables_dir>/panels/<stem>.crop<k>.png`` (:mod:`bench.report.panel_crops`);
- ``grid``: the full grid, one PNG per image, ``<tables_dir>/panels/<stem>.png``;
- ``both``.

``<stem>`` is the image id (``<image_id>@<WxH>`` for an input size other than the config's). The
grid's top row shows the whole image with the crop boxes and the whole ground truth. Then, per
crop, two rows:

- labels: image | ground truth | coarse | each method, coloured in the dataset's palette;
- errors: a class legend | the coarse map's errors | each method's errors relative to the coarse
  map (:data:`ERROR_COLOURS`): green = wrong in coarse and right in the method (fixed),
  red = right in coarse and wrong in the method (broken), dark = wrong in both, white = right in
  both, grey = ignored in the ground truth.

Crops are upscaled with nearest neighbour (whole pixels, no smoothing), so a 1-pixel pole stays a
crisp band of ``factor`` pixels. They are given (``crop=(x, y, w, h)``) or chosen automatically
where the maps disagree most (:func:`disagreement_score`, :func:`choose_crops`).

The maps come from ``bench.evaluation.predictions`` (saved during the sweep). A missing map is an error that
names the files and how to produce them (:class:`MissingPredictions`), unless the caller asks for
a lenient pass (the end of ``bench run``), which leaves the method out and says so in its notes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import BenchConfig, format_size
from bench.core.interface import DatasetInfo
from bench.evaluation.predictions import COARSE, load_label_map, prediction_path, read_unit_info
from bench.report.panel_crops import draw_crop_panels
from bench.report.panel_maps import (  # noqa: F401 - re-exported: the panels' names from before the split
    ERROR_COLOURS, IGNORE_COLOUR, Box, PanelInput, coarse_error_map, colorize, error_map)
from bench.report.panel_maps import cut as _cut

CELL_PX = 384
"""Target on-screen size (pixels) of the longer side of one crop cell."""

PANEL_LAYOUTS = ("crops", "grid", "both")
"""``crops``: one screen-wide PNG per crop; ``grid``: every crop of an image in one PNG; ``both``."""


class MissingPredictions(FileNotFoundError):
    """Saved label maps needed for a panel are absent; the message says how to produce them."""


@dataclass
class PanelResult:
    """What :func:`render_panels` did: files written, and notes on what it left out."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- choosing crops --------------------------------------------------------------------------

def disagreement_score(gt: np.ndarray, maps: Sequence[np.ndarray], ignore_index: int | None,
                       thin_classes: Sequence[int] = (), thin_weight: float = 20.0) -> np.ndarray:
    """(H, W) float32 per-pixel interest: where the maps (coarse and methods) disagree.

    A pixel scores 1 when the maps do not all predict the same class, times ``1 + thin_weight``
    when its ground truth is a thin class (poles, signs, people: the structures panels are for; at
    the default weight a window's few hundred disagreeing thin pixels compete with thousands of
    pixels of a large region's confusion).
    Ignored pixels and pixels where every map agrees (right or equally wrong) score 0.
    """
    stack = np.stack([np.asarray(m) for m in maps])
    disagree = (stack != stack[0]).any(axis=0)
    if ignore_index is not None:
        disagree &= gt != ignore_index
    weight = 1.0 + thin_weight * np.isin(gt, list(thin_classes))
    return (disagree * weight).astype(np.float32)


def window_sums(score: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H - h + 1, W - w + 1) float64: the sum of ``score`` in every w x h window (integral image)."""
    integral = np.pad(np.cumsum(np.cumsum(score, axis=0, dtype=np.float64), axis=1), ((1, 0), (1, 0)))
    return integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]


def default_crop_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of an automatic crop: a square a quarter of the shorter side (128 at 1024x512)."""
    side = max(8, min(shape) // 4)
    return min(side, shape[1]), min(side, shape[0])


def choose_crops(score: np.ndarray, size: tuple[int, int], n: int = 1, stride: int | None = None) -> list[Box]:
    """The ``n`` non-overlapping w x h windows with the highest summed score, best first.

    Args:
        score: (H, W) per-pixel score (:func:`disagreement_score`).
        size: (w, h) of the windows, clipped to the image.
        n: how many crops; fewer come back when no further window fits without overlap.
        stride: step (pixels) between candidate windows; default an eighth of the window.

    Returns:
        ``[(x, y, w, h), ...]``.
    """
    h_img, w_img = score.shape
    w, h = min(size[0], w_img), min(size[1], h_img)
    stride = stride or max(1, min(w, h) // 8)
    sums = window_sums(score, w, h)
    ys = np.unique(np.r_[np.arange(0, sums.shape[0], stride), sums.shape[0] - 1])
    xs = np.unique(np.r_[np.arange(0, sums.shape[1], stride), sums.shape[1] - 1])
    grid = sums[np.ix_(ys, xs)].copy()
    crops: list[Box] = []
    while len(crops) < n and np.isfinite(grid).any():
        iy, ix = np.unravel_index(np.argmax(grid), grid.shape)
        x, y = int(xs[ix]), int(ys[iy])
        crops.append((x, y, w, h))
        # windows overlapping the chosen one are no longer candidates
        grid[np.ix_(np.abs(ys - y) < h, np.abs(xs - x) < w)] = -np.inf
    return crops


def check_crop(box: Box, shape: tuple[int, int]) -> Box:
    """``box`` if it lies inside an (H, W) image with positive size.

    Raises:
        ValueError: otherwise, with the image size.
    """
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise ValueError(f"crop x,y,w,h={x},{y},{w},{h} does not fit in the {shape[1]}x{shape[0]} image")
    return x, y, w, h


def parse_crop(text: str) -> Box:
    """``"x,y,w,h"`` -> (x, y, w, h)."""
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise ValueError(f"a crop is 'x,y,w,h' in full-resolution pixels, got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


# --- drawing ---------------------------------------------------------------------------------

def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (h, w[, 3]) by an integer factor: every pixel a factor^2 block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def upscale_factor(crops: Sequence[Box]) -> int:
    """Integer factor that brings the longest crop side near :data:`CELL_PX` (at least 1)."""
    return max(1, round(CELL_PX / max(max(b[2], b[3]) for b in crops)))


def _off(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _show(ax: Any, rgb: np.ndarray, factor: int, title: str = "") -> None:
    ax.imshow(upscale(rgb, factor), interpolation="nearest")
    _off(ax)
    if title:
        ax.set_title(title, fontsize=9)


def _unit_rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    """0..255 RGB -> matplotlib's 0..1 RGB."""
    r, g, b = colour
    return r / 255, g / 255, b / 255


def _legends(ax: Any, panel: PanelInput, box: Box) -> None:
    from matplotlib.patches import Patch

    _off(ax)
    present = np.unique(_cut(panel.gt, box))
    classes = [int(c) for c in present if c != panel.info.ignore_index][:12]
    handles = [Patch(color=_unit_rgb(panel.info.palette[c]), label=panel.info.class_names[c]) for c in classes]
    names = {"fixed": "fixed (coarse wrong, method right)", "broken": "broken (coarse right, method wrong)",
             "both_wrong": "wrong in both", "both_right": "right in both", "ignore": "ignored"}
    handles += [Patch(facecolor=_unit_rgb(ERROR_COLOURS[k]), edgecolor="0.5", label=v) for k, v in names.items()]
    ax.legend(handles=handles, loc="center", fontsize=9, frameon=False, ncol=2)


def _overview(fig: Any, grid: Any, panel: PanelInput, ncols: int) -> None:
    from matplotlib.patches import Rectangle

    span = max(1, ncols // 2)
    gt_rgb = colorize(panel.gt, panel.info.palette, panel.info.ignore_index)
    for j, (rgb, title) in enumerate(((panel.image, "image (crops boxed)"), (gt_rgb, "ground truth"))):
        ax = fig.add_subplot(grid[0, j * span:(j + 1) * span])
        # shown smaller than full size: antialiasing keeps 1-px poles visible where nearest drops them
        ax.imshow(rgb, interpolation="antialiased")
        _off(ax)
        ax.set_title(title, fontsize=9)
        for k, (x, y, w, h) in enumerate(panel.crops):
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
            ax.text(x + 2, y + 2, str(k + 1), color="yellow", fontsize=8, va="top", fontweight="bold")


def draw_panel(panel: PanelInput, path: Path) -> Path:
    """Write one panel PNG (see the module docstring for the layout); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = panel.info
    ncols = 3 + len(panel.methods)
    factor = upscale_factor(panel.crops)
    cell_in, dpi, title_in, top_in = CELL_PX / 100, 100, 0.32, 0.8
    full_h, full_w = panel.gt.shape
    # the overview spans half the columns, at most two cells high
    overview_h = min(cell_in * max(1, ncols // 2) * full_h / full_w, 2 * cell_in)
    heights = [overview_h] + [cell_in] * (2 * len(panel.crops))
    wspace = 0.03  # fraction of a cell between columns
    width = cell_in * (ncols + wspace * (ncols - 1)) + 0.1
    # gridspec's hspace is a fraction of the mean row height: room for one line of titles
    height = sum(heights) + title_in * (len(heights) - 1) + top_in + 0.1
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights, left=0.05 / width, right=1 - 0.05 / width,
                            bottom=0.1 / height, top=1 - top_in / height, wspace=wspace,
                            hspace=title_in / float(np.mean(heights)))
    fig.suptitle(f"{info.name} {panel.image_id}  {panel.caption}", fontsize=12, y=1 - 0.1 / height, va="top")
    _overview(fig, grid, panel, ncols)
    colour = lambda labels: colorize(labels, info.palette, info.ignore_index)  # noqa: E731
    for k, box in enumerate(panel.crops):
        row = 1 + 2 * k
        gt, coarse = _cut(panel.gt, box), _cut(panel.coarse, box)
        cells = [(_cut(panel.image, box), f"image, crop {k + 1} ({box[0]},{box[1]} {box[2]}x{box[3]})"),
                 (colour(gt), "ground truth"), (colour(coarse), "coarse")]
        cells += [(colour(_cut(m, box)), title) for title, m in panel.methods.items()]
        for j, (rgb, title) in enumerate(cells):
            _show(fig.add_subplot(grid[row, j]), rgb, factor, title)
        _legends(fig.add_subplot(grid[row + 1, 0:2]), panel, box)
        valid = gt != info.ignore_index if info.ignore_index is not None else np.ones(gt.shape, bool)
        _show(fig.add_subplot(grid[row + 1, 2]), coarse_error_map(gt, coarse, info.ignore_index), factor,
              f"coarse wrong: {int(((coarse != gt) & valid).sum())} px")
        for j, (title, m) in enumerate(panel.methods.items()):
            pred = _cut(m, box)
            fixed = int(((coarse != gt) & (pred == gt) & valid).sum())
            broken = int(((coarse == gt) & (pred != gt) & valid).sum())
            _show(fig.add_subplot(grid[row + 1, 3 + j]), error_map(gt, coarse, pred, info.ignore_index), factor,
                  f"fixed {fixed} / broken {broken} px")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


# --- from a config ---------------------------------------------------------------------------

def default_image_ids(cfg: BenchConfig, ids: Sequence[str]) -> list[str]:
    """The images the sweep saved maps of: the split's first ``save_predictions`` (within ``limit``)."""
    n = min(cfg.save_predictions, len(ids) if cfg.limit is None else min(cfg.limit, len(ids)))
    return list(ids[:max(0, n)])


def how_to_produce(cfg: BenchConfig, methods: Sequence[str], size: tuple[int, int], n_images: int) -> str:
    """The hint of :class:`MissingPredictions`: which command saves the maps."""
    size_arg = f"input_size={format_size(size)}"
    return (f"Label maps are saved while a unit runs, for the split's first save_predictions images (now "
            f"{cfg.save_predictions}); a rerun into an out_dir whose records are complete skips every image and "
            f"saves nothing. Produce them, e.g.:\n  python -m bench run {cfg.dataset} out_dir=<new folder> "
            f"methods=[{','.join(methods)}] {size_arg} table1_sizes=[] limit={n_images} save_predictions={n_images}\n"
            f"then `python -m bench show {cfg.dataset} out_dir=<that folder> ...` (add your other overrides to both).")


def _display_name(cfg: BenchConfig, method: str, size: tuple[int, int]) -> str:
    name = read_unit_info(cfg.out_path, method, size).get("display_name")
    if name:
        return name
    try:
        from bench.core.registry import resolve

        return resolve(method).display_name or method
    except Exception:  # noqa: BLE001 - an unresolvable method keeps its key as title
        return method


def _samples(cfg: BenchConfig, image_ids: Sequence[str]) -> tuple[Any, dict[str, int]]:
    from bench.data.splits import open_split

    dataset = open_split(cfg, cfg.split)
    index = {i: k for k, i in enumerate(dataset.ids())}
    unknown = [i for i in image_ids if i not in index]
    if unknown:
        raise KeyError(f"image id(s) {unknown} are not in {cfg.dataset} {cfg.split}; ids: {list(index)[:10]}"
                       + (" ..." if len(index) > 10 else ""))
    return dataset, index


def _load_maps(cfg: BenchConfig, methods: Sequence[str], size: tuple[int, int], image_id: str,
               shape: tuple[int, int]) -> dict[str, np.ndarray]:
    maps = {}
    for m in (COARSE, *methods):
        path = prediction_path(cfg.out_path, m, size, image_id)
        maps[m] = load_label_map(path)
        if maps[m].shape != shape:
            raise ValueError(f"{path} is {maps[m].shape}, the ground truth of {image_id} is {shape}: saved with "
                             f"another data.size? Rerun the sweep with the current config")
    return maps


def panel_stem(cfg: BenchConfig, image_id: str, size: tuple[int, int]) -> str:
    """``<image_id>`` (``<image_id>@<WxH>`` off the config's input size): the panel files' stem."""
    return image_id if tuple(size) == tuple(cfg.input_size) else f"{image_id}@{format_size(size)}"


def panel_path(cfg: BenchConfig, image_id: str, size: tuple[int, int]) -> Path:
    """The grid of one image: ``<tables_dir>/panels/<stem>.png`` (:func:`panel_stem`)."""
    return cfg.tables_path / "panels" / f"{panel_stem(cfg, image_id, size)}.png"


def render_panels(cfg: BenchConfig, image_ids: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                  size: tuple[int, int] | None = None, crop: Box | None = None, n_crops: int = 2,
                  strict: bool = True, layout: str = "crops") -> PanelResult:
    """Panels of each image from the maps saved under ``cfg.out_path``: one per crop, or the grid.

    Args:
        image_ids: default :func:`default_image_ids`.
        methods: registry keys, in column order; default ``cfg.methods``.
        size: input size (w, h) of the units shown; default ``cfg.input_size``.
        crop: one fixed crop (x, y, w, h) for every image; default ``n_crops`` chosen crops.
        strict: raise on missing maps (``bench show``); False leaves out the methods (or images)
            without maps and says so in the notes (``bench run``).
        layout: one of :data:`PANEL_LAYOUTS`.

    Raises:
        ValueError: an unknown ``layout``.
        MissingPredictions: strict, and some maps are absent (lists them, says how to produce them).
        KeyError: an image id not in the split.
    """
    if layout not in PANEL_LAYOUTS:
        raise ValueError(f"panel layout is one of {', '.join(PANEL_LAYOUTS)}, got {layout!r}")
    w, h = size or cfg.input_size
    size = (w, h)
    methods = list(methods or cfg.methods)
    result = PanelResult()
    dataset, index = _samples(cfg, image_ids or [])
    image_ids = list(image_ids) if image_ids else default_image_ids(cfg, dataset.ids())
    if not image_ids:
        message = f"save_predictions={cfg.save_predictions}: no images selected for panels"
        if strict:
            raise MissingPredictions(message + "; pass --images or raise save_predictions.\n"
                                     + how_to_produce(cfg, methods, size, 2))
        result.notes.append(message)
        return result
    lacking = {i: [m for m in (COARSE, *methods) if not prediction_path(cfg.out_path, m, size, i).is_file()]
               for i in image_ids}
    missing = [prediction_path(cfg.out_path, m, size, i) for i, ms in lacking.items() for m in ms]
    if missing and strict:
        shown = "\n  ".join(str(p) for p in missing[:20])
        shown += f"\n  ... ({len(missing)} in all)" if len(missing) > 20 else ""
        raise MissingPredictions(f"missing saved label maps for the panels:\n  {shown}\n"
                                 + how_to_produce(cfg, methods, size, len(image_ids)))
    for image_id in image_ids:
        have = [m for m in methods if m not in lacking[image_id]]
        if COARSE in lacking[image_id] or not have:
            result.notes.append(f"panel {image_id}@{format_size(size)} skipped: no saved maps for {lacking[image_id]}")
            continue
        if lacking[image_id]:
            result.notes.append(f"panel {image_id}@{format_size(size)}: no saved maps for {lacking[image_id]}; left out")
        result.files += _render_one(cfg, dataset[index[image_id]], have, size, crop, n_crops, layout)
    if missing:
        result.notes.append("label maps are saved only for images a unit actually runs (a resumed sweep with "
                            f"complete records saves none); `python -m bench show {cfg.dataset}` prints the command "
                            "that makes them")
    return result


def _render_one(cfg: BenchConfig, sample: Any, methods: Sequence[str], size: tuple[int, int],
                crop: Box | None, n_crops: int, layout: str) -> list[Path]:
    info = cfg_info(cfg)
    maps = _load_maps(cfg, methods, size, sample.id, sample.label.shape)
    gt = sample.label.astype(np.int64)
    if crop is not None:
        crops, how = [check_crop(crop, gt.shape)], "given crop"
    else:
        score = disagreement_score(gt, list(maps.values()), info.ignore_index, info.thin_classes)
        crops, how = choose_crops(score, default_crop_size(gt.shape), n_crops), "crops where the maps disagree most"
    panel = PanelInput(sample.id, sample.image, gt, maps[COARSE],
                       {_display_name(cfg, m, size): maps[m] for m in methods}, crops, info,
                       caption=f"input {format_size(size)}, {how}")
    files = draw_crop_panels(panel, cfg.tables_path / "panels", panel_stem(cfg, sample.id, size)) \
        if layout in ("crops", "both") else []
    if layout in ("grid", "both"):  # the crop panels say their own factor in the title
        grid = dataclasses.replace(panel, caption=f"{panel.caption}, upscaled x{upscale_factor(crops)} (nearest)")
        files.append(draw_panel(grid, panel_path(cfg, sample.id, size)))
    return files


def cfg_info(cfg: BenchConfig) -> DatasetInfo:
    """The config's :class:`DatasetInfo` (palette, ignore index, thin classes)."""
    from bench.data import dataset_info

    return dataset_info(cfg)
