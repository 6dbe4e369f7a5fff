"""The tables' data model: :class:`Table` (render-agnostic cells, marks and notes), :class:`UnitResult`
(one unit's aggregates recomputed from its image records), the cell formats, and which rows compete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.evaluation import records
from bench.runtime.measure import summarize
from bench.evaluation.boundary import biou_per_class
from bench.evaluation.metrics import iou_per_class, mean_iou
from bench.core.interface import DatasetInfo

STATUS_TEXT = {"unavailable": "unavailable", "missing_checkpoint": "no weights", "stale_checkpoint": "stale weights",
               "reference_mismatch": "weights differ from manifest", "oom": "OOM", "error": "error"}


@dataclass
class Table:
    """A render-agnostic table.

    Attributes:
        name: file stem (``table2``).
        caption: one line, without the number (LaTeX numbers tables itself).
        header: column titles.
        rows: rows of cell strings.
        bold: cells in bold.
        rule_before: row indices preceded by a rule.
        notes: the definitions (metric variant, timed region, memory, significance), printed under
            the Markdown table and in the run's notes file.
        brief: at most three short lines (metric variant, timed region, marks) that the LaTeX table
            prints instead of ``notes``, pointing to the notes file; [] prints ``notes`` when they are
            three lines or fewer, else only the pointer.
        label: ``"Table 2"``: the Markdown caption's prefix.
        best_ours: cells holding the best value of "ours" in their column (red / bold).
        best_previous: cells holding the best value of the previous methods (blue / italic).
        ours_names: display names of "ours" (for the LaTeX colour comment).
        cited: rows of published values (italic in LaTeX).
        rotate_header: LaTeX sets the header cells from column ``rotate_from`` on rotated by 90°.
        rotate_from: first rotated column.
        wide: LaTeX ``table*`` (spans both columns of a two-column paper); the builders set it for
            tables of more than six columns, which do not fit one column of CVPR's template.
        small: LaTeX ``\\tabcolsep`` of a table set in the font ``size`` ("" keeps the defaults).
        size: LaTeX font size command of a ``small`` table (``footnotesize``, ``scriptsize``).
    """

    name: str
    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    label: str = ""
    brief: list[str] = field(default_factory=list)
    best_ours: set[tuple[int, int]] = field(default_factory=set)
    best_previous: set[tuple[int, int]] = field(default_factory=set)
    ours_names: list[str] = field(default_factory=list)
    cited: set[int] = field(default_factory=set)
    rotate_header: bool = False
    rotate_from: int = 1
    wide: bool = False
    small: str = ""
    size: str = "footnotesize"

    @property
    def text(self) -> str:
        """Caption and notes as one paragraph (what a reader sees around the table)."""
        return " ".join([self.caption, *self.notes])

    def select(self, names: Sequence[str]) -> Table:
        """A copy with only the columns named in ``names``; marks follow their column."""
        keep = [j for j, h in enumerate(self.header) if h in names]
        out = Table(self.name, self.caption, [self.header[j] for j in keep], notes=list(self.notes), label=self.label,
                    brief=list(self.brief),
                    ours_names=list(self.ours_names), cited=set(self.cited), rule_before=set(self.rule_before),
                    wide=self.wide, small=self.small, size=self.size, rotate_header=self.rotate_header,
                    rotate_from=sum(1 for j in keep if j < self.rotate_from))  # the same first rotated column
        out.rows = [[row[j] for j in keep] for row in self.rows]
        for attr in ("bold", "best_ours", "best_previous"):
            setattr(out, attr, {(i, keep.index(j)) for i, j in getattr(self, attr) if j in keep})
        return out


@dataclass
class UnitResult:
    """Aggregates of one (method, input size) recomputed from its image records."""

    method: str
    display: str
    size: str
    n_images: int
    status: str
    miou: float = float("nan")
    iou: list[float] = field(default_factory=list)
    mba: float = float("nan")
    mba_skipped: int = 0
    time: dict[str, float] = field(default_factory=dict)
    memory: float = float("nan")
    mem_method: str = ""
    device: str = ""
    threads: int | None = None
    message: str = ""
    # the unit's image records by image id, kept for the paired bootstrap (not shown, not compared)
    images: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    expected: int | None = None  # images the unit should cover (None: records from before n_expected)
    failed: dict[str, str] = field(default_factory=dict)  # image id -> why it could not be evaluated
    cm: np.ndarray | None = field(default=None, repr=False, compare=False)  # (C, C) summed over images
    # Boundary IoU: mean over the kept classes and per class, pooled over the images from the records'
    # band counts at ratio ``biou_ratio``; NaN / [] / None when some image lacks counts (older records)
    # or the images were scored at different ratios (``biou_note`` says which)
    biou: float = float("nan")
    biou_class: list[float] = field(default_factory=list)
    biou_ratio: float | None = None
    biou_missing: int = 0  # images without Boundary IoU counts (records written before they were)

    @property
    def n_total(self) -> int:
        """The images the unit should cover (recorded ok or failed, when ``expected`` is unknown)."""
        return self.expected if self.expected is not None else self.n_images + len(self.failed)

    @property
    def partial(self) -> bool:
        """True for a unit with results that does not cover every image of its split."""
        return self.status == "ok" and (bool(self.failed) or self.n_images < self.n_total)

    def coverage(self, max_ids: int = 3, max_reason: int = 400) -> str:
        """``"7 of 8 images; failed: <id> (<reason>)"``; the unit's last failure when no image is named."""
        text = f"{self.n_images} of {self.n_total} images"
        items = [f"{i} ({short_name(r, max_reason)})" for i, r in sorted(self.failed.items())[:max_ids]]
        more = f" and {len(self.failed) - max_ids} more" if len(self.failed) > max_ids else ""
        if items:
            return f"{text}; failed: {', '.join(items)}{more}"
        return f"{text}; stopped: {short_name(self.message, max_reason)}" if self.message else f"{text}; not finished"


def short_name(text: str, limit: int) -> str:
    """The last line of ``text`` that says something (a traceback's error), cut to ``limit``."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def aggregate(recs: Sequence[dict[str, Any]], key: str, method: str, size: str, info: DatasetInfo,
              absent: str, excluded: Sequence[int], display: str) -> UnitResult:
    """Recompute one unit's metrics from its records."""
    images = records.latest_by_image(recs, key)
    failed, expected = records.failed_images(recs, key), records.expected_images(recs, key)
    failure = records.unit_status(recs, key)
    if not images:
        status = failure["status"] if failure else ("error" if failed else "not run")
        message = (failure or {}).get("message", "") or "; ".join(f"{i}: {r}" for i, r in sorted(failed.items()))
        return UnitResult(method, display, size, 0, status, message=message, expected=expected, failed=failed)
    first = next(iter(images.values()))
    cm = np.sum([np.asarray(r["cm"], dtype=np.int64) for r in images.values()], axis=0)
    iou = iou_per_class(cm, absent)
    mbas = [r["mba"] for r in images.values() if r.get("mba") is not None and not np.isnan(r["mba"])]
    cuda = first.get("mem_method") == "cuda_allocator"
    mem_field = "mem_peak_mib" if cuda else "mem_peak_delta_mib"
    mems = [r[mem_field] for r in images.values() if r.get(mem_field) is not None]
    prov = first.get("provenance", {})
    biou, biou_class, ratio, missing = pooled_biou(images.values(), info.num_classes, absent, excluded)
    return UnitResult(method, first.get("display_name") or display, size, len(images), "ok",
                      miou=mean_iou(iou, excluded), iou=iou.tolist(), biou=biou, biou_class=biou_class,
                      biou_ratio=ratio, biou_missing=missing,
                      mba=float(np.mean(mbas)) if mbas else float("nan"), mba_skipped=len(images) - len(mbas),
                      time=summarize([r["time_ms"] for r in images.values()]),
                      memory=float(max(mems)) if mems else float("nan"), mem_method=first.get("mem_method", ""),
                      device=prov.get("device_name", ""), threads=prov.get("threads"), images=images,
                      expected=expected, failed=failed, message=(failure or {}).get("message", ""), cm=cm)


def pooled_biou(images: Iterable[dict[str, Any]], num_classes: int, absent: str,
                excluded: Sequence[int]) -> tuple[float, list[float], float | None, int]:
    """A unit's Boundary IoU from its image records, pooled like the confusion matrix.

    Each record's per-class ``biou_inter`` and ``biou_union`` (pixels) are summed over the images,
    then ``I_c / U_c`` per class with the ``absent`` policy and the mean over the classes not in
    ``excluded``, as for the mIoU (:mod:`bench.evaluation.boundary`).

    Returns:
        ``(mean, per_class, ratio, missing)``: the mean in [0, 1], the (C,) per-class values, the
        dilation ratio every image was scored at, and the number of images without counts. When
        an image lacks counts or the ratios differ, the mean is NaN, ``per_class`` is [] and
        ``ratio`` None: a pool over some of the images would not be the unit's value.
    """
    recs = list(images)
    have = [r for r in recs if r.get("biou_inter") is not None and r.get("biou_union") is not None]
    missing = len(recs) - len(have)
    ratios = {float(r.get("biou_ratio", float("nan"))) for r in have}
    if missing or not have or len(ratios) != 1:
        return float("nan"), [], None, missing
    inter = np.sum([np.asarray(r["biou_inter"], dtype=np.int64) for r in have], axis=0)
    union = np.sum([np.asarray(r["biou_union"], dtype=np.int64) for r in have], axis=0)
    if inter.shape != (num_classes,) or union.shape != (num_classes,):
        raise ValueError(f"Boundary IoU counts of shape {inter.shape} in the records, expected ({num_classes},)")
    per_class = biou_per_class(inter, union, absent)
    return mean_iou(per_class, excluded), per_class.tolist(), ratios.pop(), 0


# --- cell formats ---------------------------------------------------------------------------------

def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.{digits}f}"


def fmt_diff(value: float, digits: int = 2, plus: bool = True) -> str:
    if value is None or np.isnan(value):
        return "–"
    return f"{100 * value:+.{digits}f}" if plus else f"{100 * value:.{digits}f}"


def fmt_time_ms(res: UnitResult) -> str:
    t = res.time
    return "–" if not t or t["n"] == 0 else f"{t['median']:.0f} ({t['iqr']:.0f})"


def fmt_time_s(res: UnitResult) -> str:
    """The median alone, in seconds, as the supplement's Table 1 prints it (Table 3 has the IQR)."""
    t = res.time
    return "–" if not t or t["n"] == 0 else f"{t['median'] / 1000:.3f}"


def fmt_mem(res: UnitResult) -> str:
    return "–" if np.isnan(res.memory) else f"{res.memory:.0f}"


def row_index(rows: Sequence[Any], row: Any) -> int:
    """Position of ``row`` in ``rows`` by identity (two units may hold equal numbers)."""
    return next(i for i, r in enumerate(rows) if r is row)


def printed_value(value: float, digits: int) -> float:
    """``value`` (a fraction) as printed with ``digits`` decimals of percent, back as a fraction."""
    return round(100 * value, digits) / 100


def row_label(res: UnitResult) -> str:
    """The method cell: its name, with the coverage of a partial unit."""
    return f"{res.display} ({res.n_images} of {res.n_total} images)" if res.partial else res.display


def status_row(res: UnitResult, width: int) -> list[str]:
    return [STATUS_TEXT.get(res.status, res.status)] + ["–"] * (width - 1)


# --- which rows compete ---------------------------------------------------------------------------

def partial_note(results: Sequence[UnitResult]) -> str:
    """The sentence naming every partial unit and its failed images ("" when none)."""
    parts = [f"{r.display} at {r.size}: {r.coverage()}" for r in results if r.partial]
    if not parts:
        return ""
    return ("PARTIAL units (not every image evaluated; compared only with units over the same images): "
            + "; ".join(parts) + ".")


def competing(rows: Sequence[UnitResult]) -> list[UnitResult]:
    """The rows that may be ranked against each other: the complete ones, or, when every row with
    results is partial, those rows if they share one image set."""
    ok = [r for r in rows if r.status == "ok"]
    complete = [r for r in ok if not r.partial]
    if complete:
        return complete
    return ok if ok and all(set(r.images) == set(ok[0].images) for r in ok) else []


def comparable(a: UnitResult, b: UnitResult) -> bool:
    """Two units may be compared: both complete, or both partial over the very same images."""
    if not (a.partial or b.partial):
        return True
    return a.partial and b.partial and set(a.images) == set(b.images)

