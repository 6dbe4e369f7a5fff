"""The BIG protocol's tables in the papers' layout, measured or cited.

Layout (CascadePSP, CRM and SegRefiner print it so): one row per coarse source, one column per
refiner after a first "Coarse" column (the coarse mask itself), cells ``IoU/mBA`` in percent with
two decimals (``IoU/mBA/BIoU`` with Boundary IoU), and a last "Avg Improve" row: per column, the
mean over the sources of (refined - coarse).

The Avg Improve row is computed from the cells *as printed*, with exact decimal arithmetic and
half-up rounding (:func:`avg_improve`): that is the only rule that reproduces SegRefiner's printed
row (CascadePSP's mBA mean is exactly 14.045 and is printed 14.05; binary floats make it
14.04499... and ``round``/``format`` give 14.04). Measured tables use the same rule, so a reader
can recheck the row from the table.

:data:`PUBLISHED_BIG` holds SegRefiner's Table 1 (BIG test), cited rows typeset in italics in
LaTeX and named as cited in the notes.

A ``track: refinement`` run's own tables (:func:`render_track`, written by ``bench run`` and
``bench table``) are built from its records in the same layout: one row per coarse source, the
``downsample`` unit of that source as the coarse column, IoU/mBA/BIoU cells and the Avg Improve row
(:func:`track_tables`), then each method's time and peak memory per image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bench.evaluation.big_score import THRESHOLDS, SetScore
from bench.evaluation.track import TrackScore, pool
from bench.report.table_model import Table

AVG_ROW = "Avg Improve"
COARSE_COLUMN = "Coarse"
CENT = Decimal("0.01")

# SegRefiner (Wang et al., NeurIPS 2023), README Table 1 = figures/tab_big.png of
# MengyuWang826/SegRefiner at 53419a2; IoU/mBA in percent on the BIG test set, as printed.
PUBLISHED_SOURCE = "SegRefiner README Table 1 (figures/tab_big.png, MengyuWang826/SegRefiner 53419a2)"
PUBLISHED_COLUMNS = ("Coarse", "SegFix", "MGMatting", "CascadePSP", "CRM", "SegRefiner")
PUBLISHED_BIG: dict[str, tuple[str, ...]] = {
    "FCN-8s": ("72.39/53.63", "72.69/55.21", "72.31/57.32", "77.87/67.04", "79.62/69.47", "86.95/72.81"),
    "DeepLabV3+": ("89.42/60.25", "89.95/64.34", "90.49/67.48", "92.23/74.59", "91.84/74.96", "94.86/77.64"),
    "RefineNet": ("90.20/62.03", "90.73/65.95", "90.98/68.40", "92.79/74.77", "92.89/75.50", "95.12/76.93"),
    "PSPNet": ("90.49/59.63", "91.01/63.25", "91.62/66.73", "93.93/75.32", "94.18/76.09", "95.30/77.46"),
}
# SegRefiner's own cells carry a standard deviation (its sampling is random), printed beside them
PUBLISHED_STD = {"FCN-8s": ("0.06", "0.05"), "DeepLabV3+": ("0.04", "0.05"), "RefineNet": ("0.05", "0.05"),
                 "PSPNet": ("0.03", "0.04")}


@dataclass(frozen=True)
class BigCell:
    """One (coarse source, column) cell as printed: percent with two decimals, or None where unknown.

    Attributes:
        iou: pooled IoU, percent.
        mba: mean boundary accuracy, percent.
        biou: pooled Boundary IoU, percent, or None when the table has no BIoU.
    """

    iou: Decimal | None
    mba: Decimal | None
    biou: Decimal | None = None

    @classmethod
    def parse(cls, text: str) -> BigCell:
        """``"72.39/53.63"`` (or ``"a/b/c"`` with BIoU) as printed in a paper."""
        parts = [Decimal(p) for p in text.split("/")]
        if len(parts) not in (2, 3):
            raise ValueError(f"a BIG cell is 'IoU/mBA' or 'IoU/mBA/BIoU', got {text!r}")
        return cls(*parts)  # type: ignore[arg-type]

    def values(self, biou: bool) -> tuple[Decimal | None, ...]:
        return (self.iou, self.mba, self.biou) if biou else (self.iou, self.mba)


def percent(value: float) -> Decimal | None:
    """A fraction in [0, 1] as the percent printed with two decimals (the harness's ``f"{100 * v:.2f}"``);
    None for NaN."""
    return None if value is None or np.isnan(value) else Decimal(f"{100 * value:.2f}")


def measured_cell(score: SetScore, refined: bool) -> BigCell:
    """The printed cell of a scored set: its coarse masks, or (``refined``) its refined masks."""
    if refined:
        return BigCell(percent(score.refined_iou), percent(score.refined_mba), percent(score.refined_biou))
    return BigCell(percent(score.iou), percent(score.mba), percent(score.biou))


def avg_improve(coarse: Sequence[Decimal | None], refined: Sequence[Decimal | None]) -> Decimal | None:
    """Mean of ``refined - coarse`` over the sources, exact, rounded half-up to two decimals.

    Args:
        coarse: the coarse column's printed values, one per source.
        refined: a refiner's printed values, in the same order.

    Returns:
        The rounded mean, or None when a value is missing or there are no sources.
    """
    if len(coarse) != len(refined):
        raise ValueError(f"{len(coarse)} coarse values but {len(refined)} refined values")
    if not coarse or any(v is None for v in (*coarse, *refined)):
        return None
    total = sum((r - c for c, r in zip(coarse, refined, strict=True)), Decimal(0))  # type: ignore[operator]
    return (total / len(coarse)).quantize(CENT, rounding=ROUND_HALF_UP)


def _text(values: Sequence[Decimal | None]) -> str:
    return "/".join("–" if v is None else f"{v:.2f}" for v in values)


def big_table(cells: Mapping[str, Mapping[str, BigCell]], columns: Sequence[str], *, name: str, caption: str,
              notes: Sequence[str] = (), biou: bool = False, cited: bool = False, first: str = "Coarse source",
              label: str = "") -> Table:
    """A table in the papers' layout.

    Args:
        cells: source -> column -> cell; every source must have every column. The first column is
            the coarse one (its Avg Improve is 0.00 by definition, computed like the others).
        columns: the column names, coarse first.
        name: file stem.
        caption: one line.
        notes: definitions printed under the table.
        biou: cells carry Boundary IoU as a third value.
        cited: every row is a published value (italics in LaTeX).
        first: the first column's header (the set's name in the papers).
        label: the Markdown caption's prefix.
    """
    sources = list(cells)
    missing = [(s, c) for s in sources for c in columns if c not in cells[s]]
    if missing:
        raise ValueError(f"BIG table {name}: no cell for {missing[:3]}")
    rows = [[source, *(_text(cells[source][c].values(biou)) for c in columns)] for source in sources]
    avg = [AVG_ROW]
    n_values = 3 if biou else 2
    for column in columns:
        per_metric = []
        for k in range(n_values):
            base = [cells[s][columns[0]].values(biou)[k] for s in sources]
            mine = [cells[s][column].values(biou)[k] for s in sources]
            per_metric.append(avg_improve(base, mine))
        avg.append(_text(per_metric))
    rows.append(avg)
    table = Table(name, caption, [first, *columns], rows=rows, notes=list(notes), label=label,
                  rule_before={len(rows) - 1}, wide=len(columns) + 1 > 6)
    if cited:
        table.cited = set(range(len(rows)))
    return table


def _metric_note(biou: bool, ratio: float | None) -> str:
    cells = "IoU/mBA/BIoU" if biou else "IoU/mBA"
    text = (f"Cells: {cells} in percent. IoU pooled over the set (summed intersections over summed unions); "
            "mBA the per-image mean of CascadePSP's boundary accuracy over five radii 1 + int(((W + H) / 300 - 1) "
            "/ 5 * i), i = 0..4, from each image's own size")
    if biou:
        text += f"; BIoU Boundary IoU pooled over the set, dilation ratio {ratio:g} of the image diagonal"
    return text + ". Avg Improve: the mean over the coarse sources of (refined - coarse), from the printed cells, " \
                  "rounded half-up."


def measured_table(scores: Mapping[str, Mapping[str, SetScore]], *, biou: bool = False, name: str = "big",
                   set_name: str = "Coarse source", what: str = "") -> Table:
    """The table of scored sets: one row per coarse source, the coarse column then one column per method.

    Args:
        scores: source -> method -> its :class:`SetScore` (one threshold and ratio throughout); the
            method ``""`` stands for the coarse masks alone (no refined column).
        biou: add Boundary IoU to every cell.
        name: file stem.
        set_name: the first column's header.
        what: the scored folder, named in the caption.

    Raises:
        ValueError: no scores, or scores made with different thresholds, ratios or coarse results.
    """
    every = [s for per in scores.values() for s in per.values()]
    if not every:
        raise ValueError("no scored sets to table")
    thresholds = {s.threshold for s in every}
    ratios = {s.ratio for s in every}
    if len(thresholds) > 1 or len(ratios) > 1:
        raise ValueError(f"scores made with different thresholds {sorted(thresholds)} or ratios {sorted(ratios)}")
    methods = list(next(iter(scores.values())))
    cells: dict[str, dict[str, BigCell]] = {}
    for source, per in scores.items():
        if list(per) != methods:
            raise ValueError(f"source {source!r} has methods {list(per)}, not {methods}")
        first = next(iter(per.values()))
        cells[source] = {COARSE_COLUMN: measured_cell(first, refined=False)}
        for method, score in per.items():
            if measured_cell(score, refined=False) != cells[source][COARSE_COLUMN]:
                raise ValueError(f"source {source!r}: method {method!r} was scored against other coarse masks")
            if method:
                cells[source][method] = measured_cell(score, refined=True)
    columns = [COARSE_COLUMN, *(m for m in methods if m)]
    threshold, ratio = thresholds.pop(), ratios.pop()
    notes = [_metric_note(biou, ratio),
             f"Masks binarised at {THRESHOLDS[threshold]} (`{threshold}`); refined masks of another size resized "
             "to the ground truth's with PIL's bilinear filter first."]
    empty = {s: per[methods[0]].empty_coarse if methods else () for s, per in scores.items()}
    empty = {s: e for s, e in empty.items() if e}
    if empty:
        notes.append("Objects with an empty coarse mask (scored like the others): "
                     + "; ".join(f"{s}: {len(e)} ({', '.join(e[:5])}{', ...' if len(e) > 5 else ''})"
                                 for s, e in empty.items()) + ".")
    skipped = {s: next(iter(per.values())).no_boundary for s, per in scores.items()}
    skipped = {s: e for s, e in skipped.items() if e}
    if skipped:
        notes.append("Left out of mBA (ground truth without a boundary): "
                     + "; ".join(f"{s}: {', '.join(e)}" for s, e in skipped.items()) + ".")
    n = {next(iter(per.values())).n_objects for per in scores.values()}
    caption = f"BIG protocol, {'/'.join(map(str, sorted(n)))} objects per coarse source" + (f", {what}" if what else "")
    return big_table(cells, columns, name=name, caption=caption, notes=notes, biou=biou, first=set_name)


def published_table(name: str = "big_published") -> Table:
    """SegRefiner's Table 1 (BIG test, IoU/mBA), every row cited, Avg Improve recomputed from its cells."""
    cells = {s: {c: BigCell.parse(t) for c, t in zip(PUBLISHED_COLUMNS, row, strict=True)}
             for s, row in PUBLISHED_BIG.items()}
    std = "; ".join(f"{s} ±{i}/±{m}" for s, (i, m) in PUBLISHED_STD.items())
    notes = [f"Cited, not measured here: every row is {PUBLISHED_SOURCE}.",
             _metric_note(False, None),
             "The papers' scorers binarise at > 128 (CascadePSP, CRM) or >= 128 (SegRefiner); each column is as "
             f"its paper printed it. SegRefiner's IoU/mBA standard deviations: {std}."]
    return big_table(cells, PUBLISHED_COLUMNS, name=name, caption="BIG test set, published (cited)", notes=notes,
                     cited=True, first="BIG test")


# --- the track's tables from a run folder (``track: refinement``) ------------------------------------------------

TRACK_TABLE = "track"
TRACK_COST_TABLE = "track_cost"
COARSE_METHOD = "downsample"  # its unit on a source is that source's coarse map brought to full size, scored


@dataclass(frozen=True)
class TrackUnit:
    """One unit of a track run as its records give it.

    Attributes:
        method: registry key; size: ``"WxH"``; source: the coarse source.
        display: the method's row name.
        score: its pooled scores (None: no image record).
        status: ``ok``, ``partial`` or the unit's failure status (``not run`` without records).
        times: per-image ``time_ms`` (ms); memory: per-image peak memory (MiB); mem_method: how.
    """

    method: str
    size: str
    source: str
    display: str
    score: TrackScore | None
    status: str
    times: tuple[float, ...] = ()
    memory: tuple[float, ...] = ()
    mem_method: str = ""


def parse_label(label: str) -> tuple[str, str, str]:
    """``"densecrf@256x192/fcn"`` -> ``("densecrf", "256x192", "fcn")``; no ``/source``: ``backbone``."""
    name, _, rest = label.rpartition("@")
    size, _, source = rest.partition("/")
    return name, size, source or "backbone"


def track_units(out_dir: str | Path) -> list[TrackUnit]:
    """Every unit of the run folder ``out_dir`` (``run.json``'s ``units``) from its records alone, in the order
    their records were first appended (the sweep's: source by source), units without records last.

    Raises:
        UserError: no ``run.json`` with units (not a run folder, or a sweep that never started).
    """
    from bench.core.errors import UserError
    from bench.evaluation import records, run_folder

    data = run_folder.read(out_dir) or {}
    units = data.get("units") or {}
    if not units:
        raise UserError(f"{out_dir}: no run.json with units; expected the out_dir of a bench run of a track config")
    recs = run_folder.restrict(records.load(Path(out_dir)), data.get("image_ids"))
    # sweep order (run.json's keys are sorted): the order the records were appended in, then the unrecorded
    first = {str(r.get("unit_key")): i for i, r in reversed(list(enumerate(recs)))}
    out = []
    for label, key in sorted(units.items(), key=lambda kv: first.get(kv[1], len(recs))):
        name, size, source = parse_label(label)
        images = records.latest_by_image(recs, key)
        failure = records.unit_status(recs, key)
        display = next((r.get("display_name") for r in images.values() if r.get("display_name")), None) \
            or (failure or {}).get("display_name") or name
        if not images:
            out.append(TrackUnit(name, size, source, display, None, str((failure or {}).get("status", "not run"))))
            continue
        expected = records.expected_images(recs, key)
        first = next(iter(images.values()))
        field = "mem_peak_mib" if first.get("mem_method") == "cuda_allocator" else "mem_peak_delta_mib"
        status = "partial" if expected is not None and len(images) < expected else "ok"
        out.append(TrackUnit(name, size, source, display, pool(images), status,
                             tuple(float(r["time_ms"]) for r in images.values() if r.get("time_ms") is not None),
                             tuple(float(r[field]) for r in images.values() if r.get(field) is not None),
                             str(first.get("mem_method", ""))))
    return out


def _track_cell(unit: TrackUnit | None) -> BigCell:
    if unit is None or unit.score is None or unit.status != "ok":
        return BigCell(None, None, None)
    return BigCell(percent(unit.score.iou), percent(unit.score.mba), percent(unit.score.biou))


def track_tables(cfg: Any, units: Sequence[TrackUnit]) -> list[Table]:
    """The track's tables of one run: scores in the papers' layout, each method's time and memory, and
    (dataset ``big``) SegRefiner's published BIG table, cited.

    Args:
        cfg: the run's config (``input_size``, ``methods``, ``dataset``, ``data``, ``biou_ratio``).
        units: :func:`track_units` of its folder.

    The scores table: one row per coarse source (sweep order), the first column the ``downsample``
    unit on that source (the coarse map itself, at full size), then one column per other method
    at ``input_size`` (``methods`` order); cells IoU/mBA/BIoU in percent; an Avg Improve row. A
    unit that did not finish shows "–" and is named in the notes.
    """
    size = f"{int(cfg.input_size[0])}x{int(cfg.input_size[1])}"
    mine = [u for u in units if u.size == size]
    found = list(dict.fromkeys(u.source for u in mine))
    sources = [s for s in cfg.coarse_sources or () if s in found] + [s for s in found if s not in (cfg.coarse_sources or ())]
    by = {(u.method, u.source): u for u in mine}
    refiners = [m for m in dict.fromkeys(cfg.methods) if m != COARSE_METHOD and any(u.method == m for u in mine)]
    names = {m: next(u.display for u in mine if u.method == m) for m in refiners}
    columns = [COARSE_COLUMN, *(names[m] for m in refiners)]
    cells = {s: {COARSE_COLUMN: _track_cell(by.get((COARSE_METHOD, s))),
                 **{names[m]: _track_cell(by.get((m, s))) for m in refiners}} for s in sources}
    ratios = {u.score.ratio for u in mine if u.score is not None}
    ratio = ratios.pop() if len(ratios) == 1 else cfg.biou_ratio
    threshold = dict(cfg.data).get("threshold", "gt128") if cfg.dataset == "big" else None
    notes = [_metric_note(True, ratio),
             "Coarse: the `downsample` unit on each source, i.e. the coarse map brought to the image's size and "
             "scored; every other column refines that same map through refine(image, coarse). A source other than "
             "`backbone` is a coarse mask given with the data, passed at the image's full resolution as one-hot "
             "probabilities; `backbone` is the harness's own coarse pass at the input size "
             f"{size}."]
    notes.append(f"Ground truth and coarse masks binarised at {THRESHOLDS[threshold]} (`data.threshold: {threshold}`) "
                 "when read; refined maps are the methods' full-resolution label maps (no resize)." if threshold else
                 "Ground truth and coarse maps are 0/1 as the dataset gives them; refined maps are the methods' "
                 "full-resolution label maps (no resize).")
    empty: dict[str, tuple[str, ...]] = {}
    for s in sources:
        coarse = by.get((COARSE_METHOD, s))
        stems: tuple[str, ...] = coarse.score.empty if coarse is not None and coarse.score is not None else \
            next((u.score.empty_coarse for u in mine if u.source == s and u.score is not None), ())
        if stems:
            empty[s] = stems
    if empty:
        notes.append("Objects with an empty coarse mask (scored like the others): "
                     + "; ".join(f"{s}: {len(e)} ({', '.join(e[:5])}{', ...' if len(e) > 5 else ''})"
                                 for s, e in empty.items()) + ".")
    skipped = {s: by[(COARSE_METHOD, s)].score.no_boundary for s in sources  # type: ignore[union-attr]
               if (COARSE_METHOD, s) in by and by[(COARSE_METHOD, s)].score is not None
               and by[(COARSE_METHOD, s)].score.no_boundary}  # type: ignore[union-attr]
    if skipped:
        notes.append("Left out of mBA (ground truth without a boundary): "
                     + "; ".join(f"{s}: {', '.join(e)}" for s, e in skipped.items()) + ".")
    unfinished = [f"{u.method} on {u.source} ({u.status})" for u in mine if u.status != "ok"]
    if COARSE_METHOD not in cfg.methods:
        notes.append("No coarse column: add downsample to methods (its unit scores each source's coarse map).")
    if unfinished:
        notes.append("Not finished, shown as –: " + ", ".join(unfinished) + ".")
    n = sorted({u.score.n_images for u in mine if u.score is not None})
    caption = (f"Refinement track, {cfg.dataset} {cfg.split}, {'/'.join(map(str, n)) or 'no'} images per coarse "
               f"source, BIoU dilation ratio {ratio:g}")
    table = big_table(cells, columns, name=TRACK_TABLE, caption=caption, notes=notes, biou=True,
                      first="Coarse source", label="Track")
    tables = [table, _cost_table(cfg, mine, [COARSE_METHOD, *refiners])]
    if cfg.dataset == "big":  # a BIG folder: the papers' numbers beside it, every row cited
        tables.append(published_table())
    return tables


def _cost_table(cfg: Any, units: Sequence[TrackUnit], methods: Sequence[str]) -> Table:
    """Each method's time (median and IQR over every image of every source) and peak memory per image."""
    from bench.runtime.measure import summarize

    rows, cuda = [], False
    for m in methods:
        mine = [u for u in units if u.method == m and u.score is not None]
        if not mine:
            continue
        times = summarize([t for u in mine for t in u.times])
        mems = [x for u in mine for x in u.memory]
        cuda |= any(u.mem_method == "cuda_allocator" for u in mine)
        time_text = "–" if times["n"] == 0 else f"{times['median']:.0f} ({times['iqr']:.0f})"
        rows.append([mine[0].display + (" (coarse)" if m == COARSE_METHOD else ""), time_text,
                     f"{max(mems):.0f}" if mems else "–", str(times["n"])])
    given = sorted({u.source for u in units if u.source != "backbone"})
    notes = [f"Time: median (IQR) ms per image over every image of every coarse source; on a source given with the "
             f"data ({', '.join(given) or 'none here'}) it is refine() alone (the coarse map is given: no coarse pass "
             f"to time), on `backbone` the coarse pass plus refine(), as in the semantic tables. Memory (MiB): "
             + ("peak CUDA allocation per image." if cuda else "peak resident-set growth per image (CPU).")]
    return Table(TRACK_COST_TABLE, f"Refinement track, {cfg.dataset}: time and memory per image at "
                 f"{int(cfg.input_size[0])}x{int(cfg.input_size[1])}", ["Method", "Time (ms)", "Memory (MiB)", "Images"],
                 rows=rows, notes=notes, label="Track cost")


def render_track(cfg: Any) -> list[Path]:
    """Write the track's tables of the run folder ``cfg.out_path`` into ``cfg.tables_path`` (Markdown and LaTeX).

    Returns:
        ``[tables.md, <name>.md, <name>.tex, ...]``, as the semantic tables' writer does.
    """
    from bench.report.tables import write_tables

    return write_tables(track_tables(cfg, track_units(cfg.out_path)), cfg.tables_path, cfg.out_path)
