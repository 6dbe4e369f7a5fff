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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from bench.evaluation.big_score import THRESHOLDS, SetScore
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
