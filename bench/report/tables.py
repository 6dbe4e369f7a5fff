"""Tables derived from records only, in the supplement's and the paper's shapes (Markdown and LaTeX).

- Table 1: the backbone's one-pass input size sweep (mIoU, mBA, time in s, memory), plus MagNet rows.
- Table 2: mBA and per-class IoU per method (the supplement's order, ``table2_methods``), with the
  supplement's Improvement row: per column, the best of "ours" minus the best of "previous"
  (``ours`` in the config, default the MagNet family). Best of ours is red (LaTeX) / bold
  (Markdown), best of previous blue / italic. A separate "MagNet − Downsample" row gives the gain
  over one downsampled pass of the same backbone.
- Table 3: mIoU per method (``table3_methods``, with cited rows such as Inria's "GLNet (reported in
  [5])" from the config's ``cited``), the paper's value and the difference where the config records
  one measured with the run's backbone (:func:`paper_comparable`), mBA, time and memory.
- Comparison: mIoU and memory per method beside the paper's (the main paper's per-dataset table,
  MagNet's Table 8 for DeepGlobe), cited rows below.

Every mIoU column is a named variant (``metric_columns``, :data:`bench.evaluation.metrics.MIOU_VARIANTS`),
defined in the notes under the table, as are the mBA radii at the evaluated resolution, the timed
region, the memory definition and the significance test. Captions are one line.

Significance (``bootstrap`` resamples, 0 disables): a paired bootstrap over images
(``bench.evaluation.significance``) tests Table 2's Improvement for mIoU and mBA (the best of ours against the
best of previous, per metric), MagNet − Downsample, and in Tables 1 and 3 the best row by mIoU
against the runner-up (the best row of another method at the same input size). A difference whose
95 % interval lies above zero gets ``†``, one whose interval lies below zero ``↓``: a mark never
reads "better" for a difference that is negative.

All numbers are recomputed from the per-image records (confusion counts, mBA, time, memory), so a
change of metric policy needs no rerun.

A unit that does not cover every image of its split is partial: its row says "k of n images", the
notes name each failed image with its reason, and it gets no Δ against the paper. A partial row is
compared (best marks, best vs runner-up, Improvement, marks) only with rows over the very same
images: never with a complete one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import BenchConfig, format_size
from bench.core.interface import DatasetInfo
from bench.evaluation.metrics import VARIANT_HEADERS
from bench.report.table_format import HIGHER, NOTES_FILE, notes_latex, notes_markdown, relative_paths, to_latex, to_markdown
from bench.report.table_model import (
    Table,
    UnitResult,
    comparable,
    competing,
    fmt_diff,
    fmt_mem,
    fmt_pct,
    fmt_time_ms,
    fmt_time_s,
    printed_value,
    row_index,
    row_label,
    status_row,
)
from bench.report.table_notes import (
    BIOU_HEADER,
    Compare,
    add_significance,
    biou_caption,
    biou_note,
    biou_shown,
    biou_value,
    brief_notes,
    cited_entry,
    cited_label,
    cited_note,
    comparer,
    comparison_text,
    data_note,
    excluded_classes,
    headline_column,
    mark_cells,
    mba_note,
    metric_cols,
    metric_columns,
    metric_notes,
    paper_cols,
    paper_note,
    paper_sources,
    paper_value,
    significance_note,
    timing_note,
    variant_value,
)

DAGGER = HIGHER  # the mark of a significantly higher value (older name)


# --- Table 1 --------------------------------------------------------------------------------------

def table1_keys(cfg: BenchConfig) -> list[tuple[str, str]]:
    """Table 1's (method, "WxH") rows in order: each Table-1 method at every size, then the MagNet rows."""
    sizes = [format_size(cfg.input_size)] + [format_size(s) for s in cfg.table1_sizes]
    keys = [(m, s) for m in cfg.table1_methods for s in dict.fromkeys(sizes)]
    keys += [(m, format_size(cfg.input_size)) for m in cfg.methods if m.startswith("magnet")]
    return list(dict.fromkeys(keys))


def _variant_cells(cfg: BenchConfig, info: DatasetInfo, r: UnitResult, names: Sequence[str]) -> list[str]:
    return [fmt_pct(variant_value(r, n, cfg, info)) for n in names]


def _biou_cells(cfg: BenchConfig, r: UnitResult, shown: bool) -> list[str]:
    """The BIoU cell of a row when the table shows the column ("–" for records without counts)."""
    return [fmt_pct(biou_value(r, cfg))] if shown else []


def table1(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult],
           compare: Compare | None = None) -> Table:
    """The supplement's Table 1: the one-pass backbone at each input size (time in s), and MagNet."""
    rows = [results[k] for k in table1_keys(cfg) if k in results]
    names = metric_columns(cfg, info)
    show = any(paper_value(cfg, r.method, r.size) for r in rows)
    biou = biou_shown(cfg, rows)
    header = (["Method", "Input size", *(VARIANT_HEADERS[n] for n in names)] + (["Paper", "Δ"] if show else [])
              + ["mBA (%)", *([BIOU_HEADER] if biou else []), "Time (s)", "Memory (MiB)"])
    caption = biou_caption(cfg, f"Accuracy, time and memory of one pass of the backbone against its input size, "
                                f"and MagNet, on {info.name} {cfg.split}.", biou)
    table = Table("table1", caption, header, label="Table 1", small="2pt", wide=len(header) > 6)
    for r in rows:
        body = (_variant_cells(cfg, info, r, names) + paper_cols(cfg, info, r, show, names)
                + [fmt_pct(r.mba), *_biou_cells(cfg, r, biou), fmt_time_s(r), fmt_mem(r)] if r.status == "ok"
                else status_row(r, len(header) - 2))
        table.rows.append([row_label(r), r.size, *body])
    table.notes = (data_note(cfg, info, rows) + metric_notes(cfg, info, names) + [mba_note(cfg, rows),
                                                                                  biou_note(cfg, info, rows)]
                   + timing_note(cfg, rows, seconds=True))
    table.brief = brief_notes(cfg, info, rows, names, biou=biou, timed="s")
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows)) if n]
    add_significance(table, cfg, info, rows, compare, lambda r: row_index(rows, r))
    return table


# --- Table 2 --------------------------------------------------------------------------------------

def ours_methods(cfg: BenchConfig) -> list[str]:
    """The methods counted as "ours": the config's ``ours``, default the MagNet family."""
    return list(cfg.ours) if cfg.ours is not None else [m for m in cfg.methods if m.startswith("magnet")]


def table2_order(cfg: BenchConfig) -> list[str]:
    """Table 2's methods in order: ``table2_methods``, default previous then ours in ``methods`` order."""
    if cfg.table2_methods is not None:
        return list(cfg.table2_methods)
    ours = set(ours_methods(cfg))
    return [m for m in cfg.methods if m not in ours] + [m for m in cfg.methods if m in ours]


@dataclass
class _Column:
    """One numeric column of Table 2: its header and each row's value (fraction, NaN when none)."""

    header: str
    values: list[float]


def _best(values: Sequence[float], rows: Sequence[int]) -> tuple[float, list[int]]:
    """The largest non-NaN value among ``rows`` and the rows holding it (NaN and [] when none)."""
    vals = [(values[i], i) for i in rows if not np.isnan(values[i])]
    if not vals:
        return float("nan"), []
    top = max(v for v, _ in vals)
    return top, [i for v, i in vals if v == top]


def _digits_equal(a: float, b: float, digits: int) -> bool:
    """Equal as printed: the supplement ranks the rounded values."""
    return round(100 * a, digits) == round(100 * b, digits)


def table2(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult],
           compare: Compare | None = None, digits: int = 1) -> Table:
    """The supplement's Table 2: mBA and per-class IoU, best of ours (red) and of previous (blue),
    the Improvement row (best of ours minus best of previous, per column) and MagNet − Downsample."""
    size = format_size(cfg.input_size)
    order = table2_order(cfg)
    rows = [results[(m, size)] for m in dict.fromkeys(order) if (m, size) in results]
    ours = set(ours_methods(cfg))
    names = metric_columns(cfg, info)
    excluded = excluded_classes(cfg, info)
    shown = [c for c in range(info.num_classes) if c not in excluded]  # the classes the mean averages
    columns = [_Column("mBA (%)", [r.mba if r.status == "ok" else float("nan") for r in rows])]
    biou = biou_shown(cfg, rows)
    if biou:
        columns.append(_Column(BIOU_HEADER, [biou_value(r, cfg) for r in rows]))
    columns += [_Column(VARIANT_HEADERS[n], [variant_value(r, n, cfg, info) for r in rows]) for n in names]
    columns += [_Column(info.class_names[c], [r.iou[c] if r.status == "ok" and r.iou else float("nan") for r in rows])
                for c in shown]
    what = "mBA, BIoU and per-class IoU" if biou else "mBA and per-class IoU"
    table = Table("table2", biou_caption(cfg, f"{what} (%) of every method at input size {size} on {info.name} "
                                              f"{cfg.split}.", biou), ["Method", *(c.header for c in columns)], label="Table 2",
                  rotate_header=True, rotate_from=1, wide=True, small="2pt", size="scriptsize")
    table.ours_names = [r.display for r in rows if r.method in ours]
    for i, r in enumerate(rows):
        cells = [fmt_pct(col.values[i], digits) for col in columns]
        table.rows.append([row_label(r)] + (cells if r.status == "ok" else status_row(r, len(columns))))
    ranked = {i for i, r in enumerate(rows) if any(r is c for c in competing(rows))}
    ours_rows = [i for i in ranked if rows[i].method in ours]
    prev_rows = [i for i in ranked if rows[i].method not in ours]
    improvement: list[float] = []
    best_names: dict[str, dict[str, list[str]]] = {"ours": {}, "previous": {}}  # side -> row -> its best columns
    for j, col in enumerate(columns, start=1):
        top_o, at_o = _best(col.values, ours_rows)
        top_p, at_p = _best(col.values, prev_rows)
        # a tie as printed is a tie: every row that prints the best value is marked
        table.best_ours |= {(i, j) for i in ours_rows if not np.isnan(col.values[i]) and not np.isnan(top_o)
                            and _digits_equal(col.values[i], top_o, digits)}
        table.best_previous |= {(i, j) for i in prev_rows if not np.isnan(col.values[i]) and not np.isnan(top_p)
                                and _digits_equal(col.values[i], top_p, digits)}
        for side, at in (("ours", at_o), ("previous", at_p)):
            for i in at:
                best_names[side].setdefault(rows[i].display, []).append(col.header.replace(" (%)", ""))
        # the supplement subtracts the printed values: round first, so the row adds up digit for digit
        improvement.append(float("nan") if np.isnan(top_o) or np.isnan(top_p)
                           else printed_value(top_o, digits) - printed_value(top_p, digits))
    notes = data_note(cfg, info, rows)
    improvement_row = None
    if ours_rows and prev_rows:
        improvement_row = len(table.rows)
        table.rule_before.add(len(table.rows))
        table.rows.append(["Improvement"] + [fmt_diff(d, digits, plus=False) for d in improvement])
    else:
        lacks_ours = not ours_rows  # the side without a complete row: ours, else the previous methods
        left = [r for r in rows if r.status == "ok" and (r.method in ours) == lacks_ours]
        why = (f"{' and '.join(r.display for r in left if r.partial)} did not cover every image; "
               if any(r.partial for r in left) else "")
        notes.append(f"Improvement not shown: {why}no complete row of "
                     f"{'ours' if lacks_ours else 'a previous method'}.")
    ours_text = ", ".join(r.display for r in rows if r.method in ours) or "none"
    prev_text = ", ".join(r.display for r in rows if r.method not in ours) or "none"
    notes.append(f"Ours: {ours_text} (config `ours`); previous: {prev_text}. Best of ours per column in red (LaTeX) / "
                 f"bold (Markdown), best of previous in blue / italics. Improvement = best of ours minus best of "
                 f"previous, per column, of the printed values (the supplement's definition).")
    left_out = [r.display for (m, s), r in results.items() if s == size and m not in order]
    if left_out:  # a swept method (a plugin, GLNet) is never dropped without a word
        notes.append(f"Not in this table (not in `table2_methods`): {', '.join(sorted(left_out))}; "
                     f"`table2_methods=[...]` lists Table 2's rows.")
    for side in ("ours", "previous"):
        if best_names[side]:
            notes.append(f"Best of {side}: " + "; ".join(f"{m} ({', '.join(cols)})"
                                                         for m, cols in best_names[side].items()) + ".")
    base = next((r for r in rows if r.method == "downsample" and r.status == "ok"), None)
    magnet = next((r for r in rows if r.method == "magnet" and r.status == "ok"), None)
    gain = None
    if base and magnet and comparable(base, magnet):
        gain = len(table.rows)
        if not (ours_rows and prev_rows):
            table.rule_before.add(gain)
        i_b, i_m = row_index(rows, base), row_index(rows, magnet)
        table.rows.append([f"{magnet.display} − {base.display}"]
                          + [fmt_diff(printed_value(col.values[i_m], digits) - printed_value(col.values[i_b], digits), digits, plus=False)
                             for col in columns])
        notes.append(f"{magnet.display} − {base.display}: the gain over one downsampled pass of the same backbone "
                     f"(not the supplement's Improvement).")
    elif base and magnet:
        notes.append(f"{magnet.display} − {base.display} not shown: "
                     f"{' and '.join(r.display for r in (base, magnet) if r.partial)} did not cover every image.")
    if excluded and any(c in excluded for c in range(info.num_classes)):
        notes.append("Not shown: " + ", ".join(f"class {c} '{info.class_names[c]}'" for c in excluded)
                     + " (excluded from the mean, still counted in the confusion matrix).")
    notes += metric_notes(cfg, info, names) + [mba_note(cfg, rows), biou_note(cfg, info, rows)]
    table.brief = brief_notes(cfg, info, rows, names, biou=biou, marks=["red/blue: best of ours/previous"])
    if compare is not None:
        notes.append(significance_note(cfg))
        cols = metric_cols(table, cfg, info)
        if improvement_row is not None:
            notes.append(_improvement_test(table, improvement_row, rows, columns[0].values, ours_rows, prev_rows,
                                           compare, cols, cfg, info))
        if gain is not None and magnet is not None and base is not None:  # gain is set only with both
            res = compare(magnet, base)
            if res is not None:
                mark_cells(table, gain, res, cols)
                notes.append(f"{magnet.display} − {base.display}: {comparison_text(magnet, base, res)}.")
    table.notes = notes
    return table


def _improvement_test(table: Table, row: int, rows: Sequence[UnitResult], mbas: Sequence[float], ours_rows: list[int],
                      prev_rows: list[int], compare: Compare, cols: Mapping[str, int | None],
                      cfg: BenchConfig, info: DatasetInfo) -> str:
    """Bootstrap the Improvement of mIoU and mBA (best of ours vs best of previous for each), mark it."""
    head = headline_column(cfg, info)
    parts: list[str] = []
    tested: list[tuple[UnitResult, UnitResult, str]] = []  # (ours, previous, metric) per sentence
    for metric in ("miou", "mba"):
        # mIoU: the config's policy, what the bootstrap recomputes; mBA: Table 2's first column
        values = [r.miou for r in rows] if metric == "miou" else list(mbas)
        _, at_o = _best(values, ours_rows)
        _, at_p = _best(values, prev_rows)
        if not at_o or not at_p:
            continue
        a, b = rows[at_o[0]], rows[at_p[0]]
        res = compare(a, b)
        if res is None:
            parts.append(f"{'mIoU' if metric == 'miou' else 'mBA'}: {a.display} - {b.display} share no image, not tested")
            continue
        mark_cells(table, row, res, {metric: cols[metric]})
        if tested and tested[-1][0] is a and tested[-1][1] is b:  # one pair for both metrics: one sentence
            parts[-1] = comparison_text(a, b, res)
        else:
            parts.append(comparison_text(a, b, res, (metric,)))
        tested.append((a, b, metric))
    where = "" if head else " (the tested mIoU is not a column here: no mark for it)"
    return f"Improvement tested (best of ours - best of previous, per metric){where}: " + "; ".join(parts) + "."


# --- Table 3 and the comparison table -------------------------------------------------------------

def _placed_rows(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult],
                 order: Sequence[str]) -> list[UnitResult | Mapping[str, Any]]:
    """Rows in ``order``: a measured unit at the input size, or a cited entry for ``cited:<id>``."""
    size = format_size(cfg.input_size)
    out: list[UnitResult | Mapping[str, Any]] = []
    for m in dict.fromkeys(order):
        if m.startswith("cited:"):
            out.append(cited_entry(cfg, m[len("cited:"):]))
        elif (m, size) in results:
            out.append(results[(m, size)])
    return out


def table3(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult],
           compare: Compare | None = None) -> Table:
    """mIoU per method at the input size (the supplement's Table 3 for Inria), with cited rows."""
    placed = _placed_rows(cfg, results, cfg.table3_methods if cfg.table3_methods is not None else cfg.methods)
    rows = [r for r in placed if isinstance(r, UnitResult)]
    cited = [r for r in placed if not isinstance(r, UnitResult)]
    names = metric_columns(cfg, info)
    show = bool(cited) or any(paper_value(cfg, r.method, r.size) for r in rows)
    biou = biou_shown(cfg, rows)
    header = (["Method", *(VARIANT_HEADERS[n] for n in names)] + (["Paper", "Δ"] if show else [])
              + ["mBA (%)", *([BIOU_HEADER] if biou else []), "Time (ms)", "Memory (MiB)"])
    what = "mIoU, mBA, BIoU, time" if biou else "mIoU, mBA, time"
    table = Table("table3", biou_caption(cfg, f"{what} and memory per method at input size "
                                              f"{format_size(cfg.input_size)} on {info.name} {cfg.split}.", biou), header, label="Table 3", small="3pt", wide=len(header) > 6)
    for r in placed:
        if not isinstance(r, UnitResult):
            table.cited.add(len(table.rows))
            paper = ([f"{r['miou']:.2f}" if r.get("miou") is not None else "–", "–"] if show else [])
            table.rows.append([cited_label(r)] + ["–"] * len(names) + paper + ["–"] * (4 if biou else 3))
            continue
        body = (_variant_cells(cfg, info, r, names) + paper_cols(cfg, info, r, show, names)
                + [fmt_pct(r.mba), *_biou_cells(cfg, r, biou), fmt_time_ms(r), fmt_mem(r)] if r.status == "ok"
                else status_row(r, len(header) - 1))
        table.rows.append([row_label(r), *body])
    table.notes = (data_note(cfg, info, rows) + metric_notes(cfg, info, names) + [mba_note(cfg, rows),
                                                                                  biou_note(cfg, info, rows)]
                   + timing_note(cfg, rows))
    table.brief = brief_notes(cfg, info, rows, names, biou=biou, timed="ms",
                              marks=["italics: cited values"] if cited else [])
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows), cited_note(cited)) if n]
    measured_rows = [i for i, r in enumerate(placed) if isinstance(r, UnitResult)]
    add_significance(table, cfg, info, rows, compare, lambda r: measured_rows[rows.index(r)])
    return table


def comparison_table(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> Table:
    """mIoU and memory per method beside the paper's (MagNet's Table 8 for DeepGlobe); cited rows below."""
    size = format_size(cfg.input_size)
    rows = [results[(m, size)] for m in cfg.methods if (m, size) in results]
    names = metric_columns(cfg, info)
    header = ["Method", *(VARIANT_HEADERS[n] for n in names), "Mem. (MiB)", "Paper mIoU (%)", "Paper mem. (MB)"]
    table = Table("comparison", f"mIoU and memory per method on {info.name} {cfg.split} at input size {size}, "
                                f"beside the published values.", header, label="Comparison", small="3pt", wide=len(header) > 5)
    for r in rows:
        ref = paper_value(cfg, r.method, r.size) or {}
        paper = [f"{ref['miou']:.2f}" if ref.get("miou") is not None else "–",
                 f"{ref['memory']:.0f}" if ref.get("memory") is not None else "–"]
        body = (_variant_cells(cfg, info, r, names) + [fmt_mem(r)] if r.status == "ok"
                else status_row(r, len(names) + 1))
        table.rows.append([row_label(r), *body, *paper])
    entries = [cited_entry(cfg, ident) for ident in cfg.cited]
    if entries:
        table.rule_before.add(len(table.rows))
    for e in entries:
        table.cited.add(len(table.rows))
        table.rows.append([cited_label(e)] + ["–"] * (len(names) + 1)
                          + [f"{e['miou']:.2f}" if e.get("miou") is not None else "–",
                             f"{e['memory']:.0f}" if e.get("memory") is not None else "–"])
    table.notes = data_note(cfg, info, rows) + metric_notes(cfg, info, names) + timing_note(cfg, rows)[1:]
    table.brief = brief_notes(cfg, info, rows, names, mba=False, significance=False,
                              marks=["paper memory in MB as printed"] + (["italics: cited values"] if entries else []))
    if any(row[-1] != "–" for row in table.rows):
        table.notes.append("Paper memory: MB as printed (the tool and the GPU are not stated; GPU tools print MiB as "
                           "MB); ours is measured as defined above, on another machine: compare the ranking, not the "
                           "numbers.")
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows), cited_note(entries)) if n]
    return table


# --- collection and files -------------------------------------------------------------------------

def collect(cfg: BenchConfig, info: DatasetInfo, keys: dict[tuple[str, tuple[int, int]], str | None],
            recs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], UnitResult]:
    """UnitResult per (method, "WxH"), from the records alone (``bench.report.results.collect``)."""
    from bench.report.results import collect as collect_records

    return collect_records(cfg, info, keys, recs)


def build_tables(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> list[Table]:
    """Tables 1, 2 and 3 (the supplement's)."""
    compare = comparer(cfg, info)
    return [table1(cfg, info, results, compare), table2(cfg, info, results, compare),
            table3(cfg, info, results, compare)]


def build_all_tables(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> list[Table]:
    """Tables 1, 2, 3 and the per-dataset comparison (what :func:`render` writes)."""
    return [*build_tables(cfg, info, results), comparison_table(cfg, info, results)]


def write_tables(tables: Sequence[Table], folder: Path, run: str | Path = "") -> list[Path]:
    """``<name>.md`` and ``<name>.tex`` per table, ``tables.md`` with all of them, and the run's notes
    file (``notes.md``, ``notes.tex``: every table's full definitions, which the LaTeX tables point to).

    Args:
        tables: the tables, in order.
        folder: where they go.
        run: the run folder the records came from, named in the notes (made relative, never absolute).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in tables:
        for suffix, text in ((".md", to_markdown(t)), (".tex", to_latex(t))):
            path = folder / f"{t.name}{suffix}"
            path.write_text(text)
            paths.append(path)
    combined = folder / "tables.md"
    combined.write_text("\n".join(to_markdown(t) for t in tables))
    run_text = relative_paths(str(run)) if str(run) else ""
    for suffix, text in ((".md", notes_markdown(tables, run_text)), (".tex", notes_latex(tables, run_text))):
        path = folder / f"{NOTES_FILE}{suffix}"
        path.write_text(text)
        paths.append(path)
    return [combined, *paths]


def load_results(cfg: BenchConfig) -> dict[tuple[str, str], UnitResult]:
    """The aggregates of the run folder ``cfg.out_path`` (``bench.report.results.load_results``: records only)."""
    from bench.report.results import load_results as load_run

    return load_run(cfg)


def render(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult] | None = None) -> list[Path]:
    """Write the tables of ``cfg`` (from ``results``, default :func:`load_results`); returns the files written."""
    from bench.data import dataset_info

    results = load_results(cfg) if results is None else results
    return write_tables(build_all_tables(cfg, dataset_info(cfg), results), cfg.tables_path, cfg.out_path)
