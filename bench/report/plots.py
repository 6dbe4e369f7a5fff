"""Plots from the same per-unit aggregates as the tables (``bench.report.tables.collect``), as PNGs.

Written to ``<tables_dir>/plots/``:

- ``accuracy_vs_time.png``: mIoU and mBA (%) against the median time per image (ms, log axis),
  one labelled point per (method, input size);
- ``accuracy_vs_memory.png``: the same against peak memory (MiB, the tables' definition);
- ``input_size.png``: Table 1's input-size sweep, mIoU (%) and memory (MiB) against the input
  size, one line per Table-1 method (MagNet rows are single points at the sweep's input size).

Units that did not run ok are left out, and :func:`render_plots` says which in its notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import BenchConfig, parse_size
from bench.report.results import load_results
from bench.report.tables import table1_keys

Results = Mapping[tuple[str, str], Any]
"""``{(method, "WxH"): bench.report.table_model.UnitResult}`` as ``bench.report.tables.collect`` returns."""

MARKERS = "osD^vP*Xh<>"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _ok(results: Results) -> list[Any]:
    """Units with finished metrics, in the results' order."""
    return [r for r in results.values() if r.status == "ok" and r.n_images > 0]


def memory_label(units: Sequence[Any]) -> str:
    """Axis label naming the memory definition the units were measured with."""
    kinds = {u.mem_method for u in units if u.mem_method}
    if kinds == {"cuda_allocator"}:
        return "peak memory (MiB, CUDA allocated)"
    return "peak memory (MiB, resident-set growth)" if kinds else "peak memory (MiB)"


def _colours(units: Sequence[Any]) -> dict[str, Any]:
    plt = _plt()
    methods = list(dict.fromkeys(u.method for u in units))
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _markers(units: Sequence[Any]) -> dict[str, str]:
    sizes = sorted({u.size for u in units}, key=lambda s: np.prod(parse_size(s)))
    return {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(sizes)}


def _cost(unit: Any, cost: str) -> float:
    if cost == "time":
        return float(unit.time.get("median", float("nan"))) if unit.time else float("nan")
    return float(unit.memory)


def plot_accuracy_vs_cost(results: Results, cost: str, path: Path, title: str = "") -> Path | None:
    """mIoU and mBA (%) against ``cost`` ("time": median ms per image; "memory": MiB) as a PNG.

    Returns:
        ``path``, or None when no unit has both the cost and an accuracy.
    """
    if cost not in ("time", "memory"):
        raise ValueError(f"cost is 'time' or 'memory', got {cost!r}")
    units = [u for u in _ok(results) if np.isfinite(_cost(u, cost))]
    if not units:
        return None
    plt = _plt()
    colours, markers = _colours(units), _markers(units)
    several_sizes = len(markers) > 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
    for ax, metric, name in ((axes[0], "miou", "mIoU (%)"), (axes[1], "mba", "mBA (%)")):
        points = []
        for u in units:
            x, y = _cost(u, cost), 100 * float(getattr(u, metric))
            if np.isfinite(y):
                ax.scatter(x, y, color=colours[u.method], marker=markers[u.size], s=45, zorder=3)
                label = f"{u.display} {u.size}" if several_sizes else u.display
                # a partial unit's point is an average over fewer images: say so on the plot itself
                points.append((x, y, f"{label} ({u.n_images} of {u.n_total}, partial)" if u.partial else label))
        ax.set_ylabel(name)
        ax.set_xlabel("median time per image (ms, log scale)" if cost == "time" else memory_label(units))
        if cost == "time":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
        ax.grid(True, alpha=0.3)
        place_labels(ax, points)
    if several_sizes:
        handles = [plt.Line2D([], [], color="0.3", marker=m, linestyle="", label=s) for s, m in markers.items()]
        axes[1].legend(handles=handles, title="input size", fontsize=7, title_fontsize=7, loc="best")
    fig.suptitle(title or f"accuracy against {cost}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


OFFSETS = ((5, 4), (5, -11), (-5, 4), (-5, -11), (5, 14), (5, -21), (-5, 14), (-5, -21), (0, 24), (0, -31))
"""Candidate label offsets (points) from a marker, tried in order; negative x = label on the left."""


def _text_box(ann: Any, renderer: Any) -> Any:
    """Display bbox of an annotation's text alone (its own window extent includes the leader line)."""
    from matplotlib.text import Text

    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


def place_labels(ax: Any, points: Sequence[tuple[float, float, str]], fontsize: int = 7) -> list[Any]:
    """Annotate ``(x, y, text)`` points, each at the first offset whose text overlaps no earlier label.

    A label must stay inside the axes and clear of every marker and earlier label; when no
    candidate fits, the first is kept. Greedy and approximate, but it keeps neighbours such as two
    methods with equal mBA legible. Returns the annotations.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    ax.autoscale_view()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # markers count as taken space (about 8 px across at the plots' size and dpi)
    markers = [Bbox.from_extents(*(ax.transData.transform((x, y)) - 5), *(ax.transData.transform((x, y)) + 5))
               for x, y, _ in points]
    labels: list[Any] = []
    out = []
    for i, (x, y, text) in enumerate(points):
        placed = labels + markers[:i] + markers[i + 1:]  # a label may touch its own marker
        ann = ax.annotate(text, (x, y), xytext=OFFSETS[0], textcoords="offset points", fontsize=fontsize,
                          arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 4})
        for dx, dy in OFFSETS:
            ann.set_position((dx, dy))
            ann.set_horizontalalignment("left" if dx >= 0 else "right")
            box = _text_box(ann, renderer).expanded(1.05, 1.1)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
        else:  # no free spot: keep the first one
            ann.set_position(OFFSETS[0])
            ann.set_horizontalalignment("left")
            box = _text_box(ann, renderer)
        # a leader line only for labels pushed away from their marker
        ann.arrow_patch.set_visible(abs(ann.get_position()[1]) > 11)
        labels.append(box)
        out.append(ann)
    return out


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _plt().close(fig)
    return path


def size_sweep_units(cfg: BenchConfig, results: Results) -> dict[str, list[Any]]:
    """Table 1's ok units per method, sorted by input area: the sweep methods, then MagNet rows."""
    lines: dict[str, list[Any]] = {}
    for key in table1_keys(cfg):
        unit = results.get(key)
        if unit is not None and unit.status == "ok" and unit.n_images > 0:
            lines.setdefault(key[0], []).append(unit)
    for units in lines.values():
        units.sort(key=lambda u: np.prod(parse_size(u.size)))
    return lines


def plot_size_sweep(cfg: BenchConfig, results: Results, path: Path, title: str = "") -> Path | None:
    """mIoU (%) and memory (MiB) against the input size, one line per Table-1 method, as a PNG.

    The x axis is the input width on a log2 scale, ticks labelled ``WxH``.

    Returns:
        ``path``, or None when Table 1 has no finished unit.
    """
    lines = size_sweep_units(cfg, results)
    if not lines:
        return None
    plt = _plt()
    everyone = [u for units in lines.values() for u in units]
    colours = _colours(everyone)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for ax, name in ((axes[0], "mIoU (%)"), (axes[1], memory_label(everyone))):
        for method, units in lines.items():
            xs = [parse_size(u.size)[0] for u in units]
            ys = [100 * u.miou if name.startswith("mIoU") else u.memory for u in units]
            ax.plot(xs, ys, marker="o", color=colours[method], label=units[0].display)
        ticks = sorted({parse_size(u.size)[0]: u.size for u in everyone}.items())
        ax.set_xscale("log", base=2)
        ax.set_xticks([t for t, _ in ticks], [s for _, s in ticks])
        ax.minorticks_off()
        ax.set_xlabel("input size")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "Table 1: input size", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def render_plots(cfg: BenchConfig, results: Results | None = None) -> tuple[list[Path], list[str]]:
    """Write the three plots of ``cfg`` into ``<tables_dir>/plots/``.

    Args:
        results: the aggregates (default :func:`bench.report.results.load_results`).

    Returns:
        (files written, notes on what was left out).
    """
    results = load_results(cfg) if results is None else results
    folder = cfg.tables_path / "plots"
    n = max((u.n_images for u in _ok(results)), default=0)
    head = f"{cfg.dataset} {cfg.split}, {n} images"
    notes = [f"plots: {m}@{s} left out ({u.status})" for (m, s), u in results.items()
             if not (u.status == "ok" and u.n_images > 0)]
    notes += [f"plots: {m}@{s} is PARTIAL ({u.coverage()})" for (m, s), u in results.items() if u.partial]
    files = [plot_accuracy_vs_cost(results, "time", folder / "accuracy_vs_time.png", f"{head}: accuracy against time"),
             plot_accuracy_vs_cost(results, "memory", folder / "accuracy_vs_memory.png",
                                   f"{head}: accuracy against peak memory"),
             plot_size_sweep(cfg, results, folder / "input_size.png", f"{head}: Table 1, input size")]
    if not any(files):
        notes.append(f"plots: no finished unit in {cfg.out_path}; nothing plotted")
    return [f for f in files if f is not None], notes
