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

Every mIoU column is a named variant (``metric_columns``, :data:`bench.metrics.MIOU_VARIANTS`),
defined in the notes under the table, as are the mBA radii at the evaluated resolution, the timed
region, the memory definition and the significance test. Captions are one line.

Significance (``bootstrap`` resamples, 0 disables): a paired bootstrap over images
(``bench.significance``) tests Table 2's Improvement for mIoU and mBA (the best of ours against the
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import records
from bench.config import BenchConfig, format_size, parse_size
from bench.interface import DatasetInfo
from bench.measure import summarize
from bench.metrics import (MIOU_VARIANTS, VARIANT_HEADERS, describe_variant, iou_per_class, mba_radii, mean_iou,
                           metric_variant)
from bench.significance import BootstrapResult, DiffInterval, paired_bootstrap
from bench.table_format import HIGHER, LOWER, tex_escape, to_latex, to_markdown  # noqa: F401 - re-exported

STATUS_TEXT = {"unavailable": "unavailable", "missing_checkpoint": "no weights", "stale_checkpoint": "stale weights",
               "reference_mismatch": "weights differ from manifest", "oom": "OOM", "error": "error"}
DAGGER = HIGHER  # the mark of a significantly higher value (older name)


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
            the table.
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
                    ours_names=list(self.ours_names), cited=set(self.cited), rule_before=set(self.rule_before),
                    wide=self.wide, small=self.small, size=self.size)
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
        items = [f"{i} ({_short(r, max_reason)})" for i, r in sorted(self.failed.items())[:max_ids]]
        more = f" and {len(self.failed) - max_ids} more" if len(self.failed) > max_ids else ""
        if items:
            return f"{text}; failed: {', '.join(items)}{more}"
        return f"{text}; stopped: {_short(self.message, max_reason)}" if self.message else f"{text}; not finished"


def _short(text: str, limit: int) -> str:
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
    return UnitResult(method, first.get("display_name") or display, size, len(images), "ok",
                      miou=mean_iou(iou, excluded), iou=iou.tolist(),
                      mba=float(np.mean(mbas)) if mbas else float("nan"), mba_skipped=len(images) - len(mbas),
                      time=summarize([r["time_ms"] for r in images.values()]),
                      memory=float(max(mems)) if mems else float("nan"), mem_method=first.get("mem_method", ""),
                      device=prov.get("device_name", ""), threads=prov.get("threads"), images=images,
                      expected=expected, failed=failed, message=(failure or {}).get("message", ""), cm=cm)


# --- cell formats ---------------------------------------------------------------------------------

def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.{digits}f}"


def _diff(value: float, digits: int = 2, plus: bool = True) -> str:
    if value is None or np.isnan(value):
        return "–"
    return f"{100 * value:+.{digits}f}" if plus else f"{100 * value:.{digits}f}"


def _time_ms(res: UnitResult) -> str:
    t = res.time
    return "–" if not t or t["n"] == 0 else f"{t['median']:.0f} ({t['iqr']:.0f})"


def _time_s(res: UnitResult) -> str:
    """The median alone, in seconds, as the supplement's Table 1 prints it (Table 3 has the IQR)."""
    t = res.time
    return "–" if not t or t["n"] == 0 else f"{t['median'] / 1000:.3f}"


def _mem(res: UnitResult) -> str:
    return "–" if np.isnan(res.memory) else f"{res.memory:.0f}"


def _index(rows: Sequence[Any], row: Any) -> int:
    """Position of ``row`` in ``rows`` by identity (two units may hold equal numbers)."""
    return next(i for i, r in enumerate(rows) if r is row)


def _printed(value: float, digits: int) -> float:
    """``value`` (a fraction) as printed with ``digits`` decimals of percent, back as a fraction."""
    return round(100 * value, digits) / 100


def _label(res: UnitResult) -> str:
    """The method cell: its name, with the coverage of a partial unit."""
    return f"{res.display} ({res.n_images} of {res.n_total} images)" if res.partial else res.display


def _status_row(res: UnitResult, width: int) -> list[str]:
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


# --- metric variants and notes --------------------------------------------------------------------

def excluded_classes(cfg: BenchConfig, info: DatasetInfo) -> tuple[int, ...]:
    """Classes left out of the mIoU mean: the config's ``excluded``, else the dataset's own."""
    return tuple(cfg.excluded if cfg.excluded is not None else info.excluded_from_mean)


def metric_columns(cfg: BenchConfig, info: DatasetInfo) -> list[str]:
    """The config's ``metric_columns``, checked against the variants and the dataset's classes.

    Raises:
        ValueError: an unknown variant, or a two-class variant on a dataset of another size.
    """
    cols = list(cfg.metric_columns)
    for name in cols:
        if name not in MIOU_VARIANTS:
            raise ValueError(f"metric_columns: unknown mIoU variant {name!r}; known: {list(MIOU_VARIANTS)}")
        if name in ("miou_2class", "iou_building") and info.num_classes != 2:
            raise ValueError(f"metric_columns: {name!r} needs a two-class dataset (Inria); "
                             f"{info.name} has {info.num_classes} classes")
    return cols


def variant_value(res: UnitResult, name: str, cfg: BenchConfig, info: DatasetInfo) -> float:
    """The variant ``name`` of a unit with results (NaN when it has none)."""
    if res.status != "ok" or res.cm is None:
        return float("nan")
    return metric_variant(name, res.cm, cfg.absent, excluded_classes(cfg, info))


def headline_column(cfg: BenchConfig, info: DatasetInfo) -> str | None:
    """The shown variant that equals the config's mIoU (what the bootstrap tests), or None."""
    excluded = excluded_classes(cfg, info)
    for name in metric_columns(cfg, info):
        if name == "miou" or (name == "miou_2class" and not excluded) or \
                (name == "miou_mmseg" and not excluded and cfg.absent == "nan"):
            return name
    return None


def evaluated_size(cfg: BenchConfig) -> tuple[int, int] | None:
    """The (w, h) at which labels are scored: ``data.size``, else the dataset's nominal size."""
    if cfg.data.get("size"):
        return parse_size(cfg.data["size"])
    from bench.datasets import dataset_class

    try:
        cls = dataset_class(cfg.dataset)
    except KeyError:
        return None
    size = getattr(cls, "nominal_size", None) or getattr(cls, "default_size", None)
    return tuple(size) if size else None


def mba_note(cfg: BenchConfig, results: Sequence[UnitResult]) -> str:
    """The mBA definition with the radii used at the evaluated resolution."""
    sizes = sorted({tuple(r["label_size"]) for res in results for r in res.images.values() if r.get("label_size")})
    if not sizes and evaluated_size(cfg):
        sizes = [evaluated_size(cfg)]
    skipped = sum(r.mba_skipped for r in results if r.status == "ok")
    where = "; ".join(f"radii {{{','.join(map(str, mba_radii(h, w)))}}} px at {w}x{h}" for w, h in sizes)
    where = where or "radii from each image's (W+H)/300"
    return (f"mBA: CascadePSP's boundary accuracy at the evaluated resolution ({where}; five radii "
            f"1 + int((r_max - 1) / 5 * i), r_max = (W+H)/300), OpenCV ellipse, ignore pixels excluded, "
            f"mean over images ({skipped} image(s) without a boundary skipped).")


def metric_notes(cfg: BenchConfig, info: DatasetInfo, names: Sequence[str]) -> list[str]:
    """One note per shown mIoU variant, and where the counts come from."""
    excluded = excluded_classes(cfg, info)
    out = [f"IoU from one confusion matrix summed over the images, ignore index {info.ignore_index}."]
    out += [describe_variant(n, info.class_names, cfg.absent, excluded) + "." for n in names]
    if "miou" not in names:  # the bootstrap and Table 2's mean still use the config's policy: say which
        out.append(describe_variant("miou", info.class_names, cfg.absent, excluded).replace(
            "mIoU:", "mIoU (what the bootstrap tests; not a column here):", 1)
                   + ".")
    return out


def timing_note(cfg: BenchConfig, results: Sequence[UnitResult], seconds: bool = False) -> list[str]:
    """The timed region and the memory definition."""
    ok = [r for r in results if r.status == "ok"]
    mem_methods = sorted({r.mem_method for r in ok if r.mem_method})
    devices = sorted({r.device for r in ok if r.device})
    threads = sorted({r.threads for r in ok if r.threads})
    mem_def = ("peak torch.cuda.max_memory_allocated per image (weights + activations, no CUDA context)"
               if mem_methods == ["cuda_allocator"] else
               "peak resident-set growth over the post-setup baseline, per image, in a fresh process per row (max over images)")
    what = "median s" if seconds else "median (IQR) ms"
    return [f"Time: {what} per image of the coarse pass plus refine() (image decode, weight loading and "
            f"scoring excluded; {cfg.warmup} warm-up call(s)) on {', '.join(devices) or '?'}, "
            f"{', '.join(map(str, threads)) or '?'} thread(s), fp32.",
            f"Memory (MiB, 2^20 bytes): {mem_def}."]


def data_note(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult]) -> list[str]:
    """The partial-unit note (if any) and the split."""
    n = max((r.n_total for r in results if r.status == "ok"), default=0)
    partial = partial_note(results)
    return ([partial] if partial else []) + [f"{info.name} {cfg.split}, {n} images."]


def caption_notes(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult]) -> str:
    """Every definition as one paragraph (the older single-caption form, kept for callers)."""
    return " ".join(data_note(cfg, info, results) + metric_notes(cfg, info, metric_columns(cfg, info))
                    + [mba_note(cfg, results)] + timing_note(cfg, results))


# --- published values -----------------------------------------------------------------------------

def _paper(cfg: BenchConfig, method: str, size: str) -> dict[str, Any] | None:
    """The published value of a unit, or None when there is none or it is not comparable."""
    ref = cfg.paper.get(f"{method}@{size}")
    return ref if ref and paper_comparable(cfg, ref) else None


def paper_comparable(cfg: BenchConfig, ref: Mapping[str, Any]) -> bool:
    """A cited value is comparable when it records no backbone or the run's own (the input size is in its key)."""
    return ref.get("backbone") in (None, cfg.backbone)


def paper_note(cfg: BenchConfig, rows: Sequence[UnitResult]) -> str:
    """The sentence for published values left out as not comparable ("" when none)."""
    hidden = [ref for r in rows if (ref := cfg.paper.get(f"{r.method}@{r.size}")) and not paper_comparable(cfg, ref)]
    if not hidden:
        return ""
    cited = ", ".join(sorted({str(ref["backbone"]) for ref in hidden}))
    return (f"Paper values not shown: {len(hidden)} were measured with backbone {cited}, this run uses "
            f"{cfg.backbone}, so they are not comparable.")


def paper_sources(cfg: BenchConfig, rows: Sequence[UnitResult], key: str = "miou") -> str:
    """Which variant each shown paper value is compared with, and its source ("" when none)."""
    parts = []
    for r in rows:
        ref = _paper(cfg, r.method, r.size)
        if ref and ref.get(key) is not None:
            metric = f", compared with {ref['metric']}" if ref.get("metric") else ""
            parts.append(f"{r.display}@{r.size}: {ref.get('source', 'no source given')}{metric}")
    return f"Paper: {'; '.join(parts)}." if parts else ""


def cited_entry(cfg: BenchConfig, ident: str) -> Mapping[str, Any]:
    """The config's ``cited[ident]``, checked.

    Raises:
        ValueError: no such entry, or one without ``name`` or ``source``.
    """
    if ident not in cfg.cited:
        raise ValueError(f"cited:{ident} is not in the config's cited rows (known: {sorted(cfg.cited)})")
    entry = cfg.cited[ident]
    if not isinstance(entry, Mapping) or not entry.get("name") or not entry.get("source"):
        raise ValueError(f"cited.{ident} must be a mapping with 'name' and 'source', got {entry!r}")
    return entry


def cited_label(entry: Mapping[str, Any]) -> str:
    """``GLNet (reported in [5])``: a cited row's method cell."""
    return f"{entry['name']} (reported in {entry['ref']})" if entry.get("ref") else f"{entry['name']} (cited)"


def cited_note(entries: Sequence[Mapping[str, Any]]) -> str:
    """The sources of the cited rows ("" when none)."""
    if not entries:
        return ""
    parts = [f"{cited_label(e)}: {e['source']}" + (f" (holds {e['metric']})" if e.get("metric") else "")
             for e in entries]
    return "Cited rows (published values, not measured here; italic in LaTeX): " + "; ".join(parts) + "."


def _paper_cols(cfg: BenchConfig, info: DatasetInfo, res: UnitResult, show: bool, shown: Sequence[str]) -> list[str]:
    if not show:
        return []
    ref = _paper(cfg, res.method, res.size)
    if not ref or ref.get("miou") is None:
        return ["", ""]
    metric = ref.get("metric", "miou")
    ours = variant_value(res, metric, cfg, info) if metric in MIOU_VARIANTS else float("nan")
    delta = "–" if np.isnan(ours) or res.partial else f"{100 * ours - ref['miou']:+.2f}"
    return [f"{ref['miou']:.2f}", delta]


# --- significance ---------------------------------------------------------------------------------

Compare = Callable[[UnitResult, UnitResult], BootstrapResult | None]
BEST_VS_RUNNER_UP = ("Best vs runner-up (the best row by mIoU against the best row of another method at the same "
                     "input size)")


def comparer(cfg: BenchConfig, info: DatasetInfo) -> Compare | None:
    """The paired bootstrap of two units with the tables' metric policy, or None when ``cfg.bootstrap`` is 0.

    The returned function gives A - B for ``compare(a, b)``, or None when a unit did not run or
    the two share no image.
    """
    if cfg.bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples (0 disables), got {cfg.bootstrap}")
    if cfg.bootstrap == 0:
        return None
    excluded = excluded_classes(cfg, info)

    def compare(a: UnitResult, b: UnitResult) -> BootstrapResult | None:
        if a.status != "ok" or b.status != "ok" or not set(a.images) & set(b.images) or not comparable(a, b):
            return None
        return paired_bootstrap(a.images, b.images, absent=cfg.absent, excluded=excluded,
                                n_resamples=cfg.bootstrap, seed=cfg.seed)

    return compare


def mark(d: DiffInterval) -> str:
    """``†`` when the interval lies above zero, ``↓`` when below, ``""`` when it holds zero."""
    if not d.excludes_zero:
        return ""
    return HIGHER if d.low > 0 else LOWER


def significance_note(cfg: BenchConfig) -> str:
    """What the significance marks mean: B, seed, what is resampled, the interval."""
    return (f"Significance: paired bootstrap over images ({cfg.bootstrap} resamples with replacement of the images "
            f"both compared rows share, numpy seed {cfg.seed}; each resample recomputes the mIoU from the summed "
            f"per-image confusion matrices and the mBA as the mean over the drawn images); {HIGHER} marks a "
            f"difference whose 95% percentile interval lies above zero (significantly higher), {LOWER} one whose "
            f"interval lies below zero (significantly lower), no mark an interval that holds zero.")


def _fmt_interval(d: DiffInterval) -> str:
    """``+3.03 [+1.10, +5.00]†``: the difference and its interval in points, with the mark."""
    if np.isnan(d.diff):
        return "–"
    ci = "no interval" if np.isnan(d.low) else f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]"
    return f"{100 * d.diff:+.2f} {ci}{mark(d)}"


def _comparison_text(a: UnitResult, b: UnitResult, res: BootstrapResult, metrics: Sequence[str] = ("miou", "mba")) -> str:
    parts = [f"{'mIoU' if m == 'miou' else 'mBA'} {_fmt_interval(getattr(res, m))}" for m in metrics]
    return f"{a.display} - {b.display} at {a.size} on {res.n_images} paired image(s): {', '.join(parts)}"


def _mark_cells(table: Table, row: int, res: BootstrapResult, columns: Mapping[str, int | None]) -> None:
    """Append the sign-correct mark to ``row``'s cells of ``columns`` (``{"miou": j, "mba": j}``)."""
    for metric, col in columns.items():
        if col is not None:
            table.rows[row][col] += mark(getattr(res, metric))


def _metric_cols(table: Table, cfg: BenchConfig, info: DatasetInfo) -> dict[str, int | None]:
    head = headline_column(cfg, info)
    miou = table.header.index(VARIANT_HEADERS[head]) if head and VARIANT_HEADERS[head] in table.header else None
    return {"miou": miou, "mba": table.header.index("mBA (%)") if "mBA (%)" in table.header else None}


def best_vs_runner_up(rows: Sequence[UnitResult]) -> tuple[UnitResult, UnitResult | None] | None:
    """The best ok row by mIoU (the first one on a tie) and the best ok row of another method at the
    same input size (None when there is none); None when no row has an mIoU."""
    ok = [r for r in competing(rows) if not np.isnan(r.miou)]
    if not ok:
        return None
    best = max(ok, key=lambda r: r.miou)
    others = [r for r in ok if r.method != best.method and r.size == best.size]
    return best, (max(others, key=lambda r: r.miou) if others else None)


def _best_vs_runner_up(table: Table, rows: Sequence[UnitResult], compare: Compare, cols: Mapping[str, int | None],
                       row_of: Callable[[UnitResult], int]) -> str:
    """Test the best row against the runner-up, mark the best row's cells, return the note."""
    pair = best_vs_runner_up(rows)
    if pair is None:
        return f"{BEST_VS_RUNNER_UP}: no row to compare."
    best, runner = pair
    if runner is None:
        return f"{BEST_VS_RUNNER_UP}: none, {best.display} at {best.size} is the only method at that size."
    res = compare(best, runner)
    if res is None:
        return f"{BEST_VS_RUNNER_UP}: {best.display} - {runner.display}: no image in common, not tested."
    _mark_cells(table, row_of(best), res, cols)
    return (f"{BEST_VS_RUNNER_UP}: {_comparison_text(best, runner, res)}; the marks are on the best row's cells "
            f"({LOWER}: that row is significantly lower there).")


def _add_significance(table: Table, cfg: BenchConfig, info: DatasetInfo, rows: Sequence[UnitResult],
                      compare: Compare | None, row_of: Callable[[UnitResult], int]) -> None:
    if compare is None:
        return
    table.notes += [significance_note(cfg),
                    _best_vs_runner_up(table, rows, compare, _metric_cols(table, cfg, info), row_of)]


# --- Table 1 --------------------------------------------------------------------------------------

def table1_keys(cfg: BenchConfig) -> list[tuple[str, str]]:
    """Table 1's (method, "WxH") rows in order: each Table-1 method at every size, then the MagNet rows."""
    sizes = [format_size(cfg.input_size)] + [format_size(s) for s in cfg.table1_sizes]
    keys = [(m, s) for m in cfg.table1_methods for s in dict.fromkeys(sizes)]
    keys += [(m, format_size(cfg.input_size)) for m in cfg.methods if m.startswith("magnet")]
    return list(dict.fromkeys(keys))


def _variant_cells(cfg: BenchConfig, info: DatasetInfo, r: UnitResult, names: Sequence[str]) -> list[str]:
    return [_pct(variant_value(r, n, cfg, info)) for n in names]


def table1(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult],
           compare: Compare | None = None) -> Table:
    """The supplement's Table 1: the one-pass backbone at each input size (time in s), and MagNet."""
    rows = [results[k] for k in table1_keys(cfg) if k in results]
    names = metric_columns(cfg, info)
    show = any(_paper(cfg, r.method, r.size) for r in rows)
    header = (["Method", "Input size", *(VARIANT_HEADERS[n] for n in names)] + (["Paper", "Δ"] if show else [])
              + ["mBA (%)", "Time (s)", "Memory (MiB)"])
    table = Table("table1", f"Accuracy, time and memory of one pass of the backbone against its input size, "
                            f"and MagNet, on {info.name} {cfg.split}.", header, label="Table 1", small="2.5pt", wide=len(header) > 6)
    for r in rows:
        body = (_variant_cells(cfg, info, r, names) + _paper_cols(cfg, info, r, show, names)
                + [_pct(r.mba), _time_s(r), _mem(r)] if r.status == "ok" else _status_row(r, len(header) - 2))
        table.rows.append([_label(r), r.size, *body])
    table.notes = (data_note(cfg, info, rows) + metric_notes(cfg, info, names) + [mba_note(cfg, rows)]
                   + timing_note(cfg, rows, seconds=True))
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows)) if n]
    _add_significance(table, cfg, info, rows, compare, lambda r: _index(rows, r))
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
    columns += [_Column(VARIANT_HEADERS[n], [variant_value(r, n, cfg, info) for r in rows]) for n in names]
    columns += [_Column(info.class_names[c], [r.iou[c] if r.status == "ok" and r.iou else float("nan") for r in rows])
                for c in shown]
    table = Table("table2", f"mBA and per-class IoU (%) of every method at input size {size} on {info.name} "
                            f"{cfg.split}.", ["Method", *(c.header for c in columns)], label="Table 2",
                  rotate_header=True, rotate_from=1, wide=True, small="1.2pt", size="scriptsize")
    table.ours_names = [r.display for r in rows if r.method in ours]
    for i, r in enumerate(rows):
        cells = [_pct(col.values[i], digits) for col in columns]
        table.rows.append([_label(r)] + (cells if r.status == "ok" else _status_row(r, len(columns))))
    ranked = {i for i, r in enumerate(rows) if any(r is c for c in competing(rows))}
    ours_rows = [i for i in ranked if rows[i].method in ours]
    prev_rows = [i for i in ranked if rows[i].method not in ours]
    improvement, best_names = [], {"ours": {}, "previous": {}}
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
                           else _printed(top_o, digits) - _printed(top_p, digits))
    notes = data_note(cfg, info, rows)
    improvement_row = None
    if ours_rows and prev_rows:
        improvement_row = len(table.rows)
        table.rule_before.add(len(table.rows))
        table.rows.append(["Improvement"] + [_diff(d, digits, plus=False) for d in improvement])
    else:
        side = ours if not ours_rows else None
        left = [r for r in rows if r.status == "ok" and (r.method in ours) == (side is not None)]
        why = (f"{' and '.join(r.display for r in left if r.partial)} did not cover every image; "
               if any(r.partial for r in left) else "")
        notes.append(f"Improvement not shown: {why}no complete row of "
                     f"{'ours' if side is not None else 'a previous method'}.")
    ours_text = ", ".join(r.display for r in rows if r.method in ours) or "none"
    prev_text = ", ".join(r.display for r in rows if r.method not in ours) or "none"
    notes.append(f"Ours: {ours_text} (config `ours`); previous: {prev_text}. Best of ours per column in red (LaTeX) / "
                 f"bold (Markdown), best of previous in blue / italics. Improvement = best of ours minus best of "
                 f"previous, per column, of the printed values (the supplement's definition).")
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
        i_b, i_m = _index(rows, base), _index(rows, magnet)
        table.rows.append([f"{magnet.display} − {base.display}"]
                          + [_diff(_printed(col.values[i_m], digits) - _printed(col.values[i_b], digits), digits, plus=False)
                             for col in columns])
        notes.append(f"{magnet.display} − {base.display}: the gain over one downsampled pass of the same backbone "
                     f"(not the supplement's Improvement).")
    elif base and magnet:
        notes.append(f"{magnet.display} − {base.display} not shown: "
                     f"{' and '.join(r.display for r in (base, magnet) if r.partial)} did not cover every image.")
    if excluded and any(c in excluded for c in range(info.num_classes)):
        notes.append("Not shown: " + ", ".join(f"class {c} '{info.class_names[c]}'" for c in excluded)
                     + " (excluded from the mean, still counted in the confusion matrix).")
    notes += metric_notes(cfg, info, names) + [mba_note(cfg, rows)]
    if compare is not None:
        notes.append(significance_note(cfg))
        cols = _metric_cols(table, cfg, info)
        if improvement_row is not None:
            notes.append(_improvement_test(table, improvement_row, rows, columns[0].values, ours_rows, prev_rows,
                                           compare, cols, cfg, info))
        if gain is not None:
            res = compare(magnet, base)
            if res is not None:
                _mark_cells(table, gain, res, cols)
                notes.append(f"{magnet.display} − {base.display}: {_comparison_text(magnet, base, res)}.")
    table.notes = notes
    return table


def _improvement_test(table: Table, row: int, rows: Sequence[UnitResult], mbas: Sequence[float], ours_rows: list[int],
                      prev_rows: list[int], compare: Compare, cols: Mapping[str, int | None],
                      cfg: BenchConfig, info: DatasetInfo) -> str:
    """Bootstrap the Improvement of mIoU and mBA (best of ours vs best of previous for each), mark it."""
    head = headline_column(cfg, info)
    parts, tested = [], []
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
        _mark_cells(table, row, res, {metric: cols[metric]})
        if tested and tested[-1][0] is a and tested[-1][1] is b:  # one pair for both metrics: one sentence
            parts[-1] = _comparison_text(a, b, res)
        else:
            parts.append(_comparison_text(a, b, res, (metric,)))
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
    show = bool(cited) or any(_paper(cfg, r.method, r.size) for r in rows)
    header = (["Method", *(VARIANT_HEADERS[n] for n in names)] + (["Paper", "Δ"] if show else [])
              + ["mBA (%)", "Time (ms)", "Memory (MiB)"])
    table = Table("table3", f"mIoU, mBA, time and memory per method at input size {format_size(cfg.input_size)} "
                            f"on {info.name} {cfg.split}.", header, label="Table 3", small="3pt", wide=len(header) > 6)
    for r in placed:
        if not isinstance(r, UnitResult):
            table.cited.add(len(table.rows))
            paper = ([f"{r['miou']:.2f}" if r.get("miou") is not None else "–", "–"] if show else [])
            table.rows.append([cited_label(r)] + ["–"] * len(names) + paper + ["–"] * 3)
            continue
        body = (_variant_cells(cfg, info, r, names) + _paper_cols(cfg, info, r, show, names)
                + [_pct(r.mba), _time_ms(r), _mem(r)] if r.status == "ok" else _status_row(r, len(header) - 1))
        table.rows.append([_label(r), *body])
    table.notes = (data_note(cfg, info, rows) + metric_notes(cfg, info, names) + [mba_note(cfg, rows)]
                   + timing_note(cfg, rows))
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows), cited_note(cited)) if n]
    measured_rows = [i for i, r in enumerate(placed) if isinstance(r, UnitResult)]
    _add_significance(table, cfg, info, rows, compare, lambda r: measured_rows[rows.index(r)])
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
        ref = _paper(cfg, r.method, r.size) or {}
        paper = [f"{ref['miou']:.2f}" if ref.get("miou") is not None else "–",
                 f"{ref['memory']:.0f}" if ref.get("memory") is not None else "–"]
        body = (_variant_cells(cfg, info, r, names) + [_mem(r)] if r.status == "ok"
                else _status_row(r, len(names) + 1))
        table.rows.append([_label(r), *body, *paper])
    entries = [cited_entry(cfg, ident) for ident in cfg.cited]
    if entries:
        table.rule_before.add(len(table.rows))
    for e in entries:
        table.cited.add(len(table.rows))
        table.rows.append([cited_label(e)] + ["–"] * (len(names) + 1)
                          + [f"{e['miou']:.2f}" if e.get("miou") is not None else "–",
                             f"{e['memory']:.0f}" if e.get("memory") is not None else "–"])
    table.notes = (data_note(cfg, info, rows) + metric_notes(cfg, info, names) + timing_note(cfg, rows)[1:]
                   + ["Paper memory: MB as printed (the tool and the GPU are not stated; GPU tools print MiB as MB); "
                      "ours is measured as defined above, on another machine: compare the ranking, not the numbers."])
    table.notes += [n for n in (paper_note(cfg, rows), paper_sources(cfg, rows), cited_note(entries)) if n]
    return table


# --- collection and files -------------------------------------------------------------------------

def collect(cfg: BenchConfig, info: DatasetInfo, keys: dict[tuple[str, tuple[int, int]], str | None],
            recs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], UnitResult]:
    """UnitResult per (method, "WxH"), from the records alone (``bench.results.collect``)."""
    from bench.results import collect as collect_records

    return collect_records(cfg, info, keys, recs)


def build_tables(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> list[Table]:
    """Tables 1, 2 and 3 (the supplement's)."""
    compare = comparer(cfg, info)
    return [table1(cfg, info, results, compare), table2(cfg, info, results, compare),
            table3(cfg, info, results, compare)]


def build_all_tables(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> list[Table]:
    """Tables 1, 2, 3 and the per-dataset comparison (what :func:`render` writes)."""
    return [*build_tables(cfg, info, results), comparison_table(cfg, info, results)]


def write_tables(tables: Sequence[Table], folder: Path) -> list[Path]:
    """``<name>.md`` and ``<name>.tex`` per table, plus ``tables.md`` with all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in tables:
        for suffix, text in ((".md", to_markdown(t)), (".tex", to_latex(t))):
            path = folder / f"{t.name}{suffix}"
            path.write_text(text)
            paths.append(path)
    combined = folder / "tables.md"
    combined.write_text("\n".join(to_markdown(t) for t in tables))
    return [combined, *paths]


def load_results(cfg: BenchConfig) -> dict[tuple[str, str], UnitResult]:
    """The aggregates of the run folder ``cfg.out_path`` (``bench.results.load_results``: records only)."""
    from bench.results import load_results as load_run

    return load_run(cfg)


def render(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult] | None = None) -> list[Path]:
    """Write the tables of ``cfg`` (from ``results``, default :func:`load_results`); returns the files written."""
    from bench.datasets import dataset_info

    results = load_results(cfg) if results is None else results
    return write_tables(build_all_tables(cfg, dataset_info(cfg), results), cfg.tables_path)
