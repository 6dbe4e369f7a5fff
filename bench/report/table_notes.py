"""What a table says besides its cells: the named mIoU variants and their notes, the mBA radii, the
timed region and memory, published and cited values, and the paired-bootstrap marks († higher,
↓ lower) with their sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bench.core.config import BenchConfig, parse_size
from bench.core.interface import DatasetInfo
from bench.evaluation.boundary import boundary_width
from bench.evaluation.metrics import (
    MIOU_VARIANTS,
    VARIANT_HEADERS,
    describe_variant,
    mba_radii,
    metric_variant,
)
from bench.evaluation.significance import MIN_PAIRED_IMAGES, BootstrapResult, DiffInterval, paired_bootstrap
from bench.report.table_format import HIGHER, LOWER, NOTES_FILE
from bench.report.table_model import Table, UnitResult, comparable, competing, partial_note


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
    from bench.data import dataset_class

    try:
        cls = dataset_class(cfg.dataset)
    except KeyError:
        return None
    size = getattr(cls, "nominal_size", None) or getattr(cls, "default_size", None)
    return tuple(size) if size else None


def scored_sizes(cfg: BenchConfig, results: Sequence[UnitResult]) -> list[tuple[int, int]]:
    """The (w, h) of the scored label maps: the records' ``label_size``, else the evaluated size, else []."""
    sizes = sorted({tuple(r["label_size"]) for res in results for r in res.images.values() if r.get("label_size")})
    evaluated = None if sizes else evaluated_size(cfg)
    return [evaluated] if evaluated else [(int(w), int(h)) for w, h in sizes]


def mba_note(cfg: BenchConfig, results: Sequence[UnitResult]) -> str:
    """The mBA definition with the radii used at the evaluated resolution."""
    sizes = scored_sizes(cfg, results)
    skipped = sum(r.mba_skipped for r in results if r.status == "ok")
    where = "; ".join(f"radii {{{','.join(map(str, mba_radii(h, w)))}}} px at {w}x{h}" for w, h in sizes)
    where = where or "radii from each image's (W+H)/300"
    return (f"mBA: CascadePSP's boundary accuracy at the evaluated resolution ({where}; five radii "
            f"1 + int((r_max - 1) / 5 * i), r_max = (W+H)/300), OpenCV ellipse, ignore pixels excluded, "
            f"mean over images ({skipped} image(s) without a boundary skipped).")


# --- Boundary IoU ---------------------------------------------------------------------------------

BIOU_HEADER = "BIoU (%)"


def biou_ratio(cfg: BenchConfig) -> float:
    """The config's Boundary IoU dilation ratio (``biou_ratio``, 0.02 by default)."""
    return float(cfg.biou_ratio)


def biou_value(res: UnitResult, cfg: BenchConfig) -> float:
    """A unit's pooled Boundary IoU when its records were scored at the config's ratio, else NaN."""
    if res.status != "ok" or res.biou_ratio is None or res.biou_ratio != biou_ratio(cfg):
        return float("nan")
    return res.biou


def biou_shown(cfg: BenchConfig, results: Sequence[UnitResult]) -> bool:
    """Whether a table shows the BIoU column: some row has counts at the config's ratio."""
    return any(not np.isnan(biou_value(r, cfg)) for r in results)


def fmt_ratio(ratio: float) -> str:
    """``0.02``, ``0.005``: the ratio as the config gives it (no trailing zeros)."""
    return f"{ratio:g}"


def biou_caption(cfg: BenchConfig, caption: str, shown: bool) -> str:
    """``caption`` (ending in ".") with `` (BIoU dilation ratio 0.02)`` before its period when the table
    shows the BIoU column: every caption over BIoU names its ratio."""
    if not shown:
        return caption
    return caption.removesuffix(".") + f" (BIoU dilation ratio {fmt_ratio(biou_ratio(cfg))})."


def _biou_widths(cfg: BenchConfig, results: Sequence[UnitResult]) -> str:
    ratio = biou_ratio(cfg)
    return "; ".join(f"d = {boundary_width(h, w, ratio)} px at {w}x{h}" for w, h in scored_sizes(cfg, results))


def biou_note(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult]) -> str:
    """The Boundary IoU definition at the config's ratio, or why the column is missing or has gaps."""
    ratio = fmt_ratio(biou_ratio(cfg))
    ok = [r for r in results if r.status == "ok"]
    lacking = [r for r in ok if np.isnan(biou_value(r, cfg))]
    if ok and len(lacking) == len(ok):
        return (f"BIoU not shown: no row's records hold Boundary IoU counts at dilation ratio {ratio} (records "
                f"written before they were recorded, or at another `biou_ratio`); a run into a new `out_dir` "
                f"records them (a resumed run keeps its records).")
    widths = _biou_widths(cfg, results)
    excluded = excluded_classes(cfg, info)
    over = (f"mean over the classes of the mIoU (class(es) {', '.join(map(str, excluded))} excluded)" if excluded
            else "mean over the classes")
    text = (f"BIoU: Boundary IoU (Cheng et al., CVPR 2021), per class c the IoU of the inner bands of gt == c and "
            f"pred == c (mask pixels within d px, Chebyshev, of another label or the image border; "
            f"d = max(1, round({ratio} * sqrt(H^2 + W^2))){': ' + widths if widths else ''}; one (2d+1)^2 square "
            f"erosion), ignore pixels removed from both bands, band intersections and unions summed over the "
            f"images (like the confusion matrix), {over}; {describe_absent_short(cfg.absent)}.")
    if lacking:
        text += (f" – for {', '.join(r.display for r in lacking)}: records without counts at ratio {ratio} "
                 f"(written before they were recorded, or at another `biou_ratio`).")
    return text


def describe_absent_short(absent: str) -> str:
    return ("a class absent from both maps scores 0 (`zero`)" if absent == "zero"
            else "a class absent from both maps is left out of the mean (`nan`)")


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


# --- the LaTeX tables' short notes (at most three lines; the full ones go to the run's notes file) ------

def _short_variant(name: str, cfg: BenchConfig, info: DatasetInfo) -> str:
    excluded = excluded_classes(cfg, info)
    if name == "miou":
        kept = info.num_classes - len(set(excluded))
        absent = "0" if cfg.absent == "zero" else "left out"
        excl = f", class {', '.join(map(str, excluded))} excluded" if excluded else ""
        return f"mIoU over {kept} classes from the summed confusion matrix{excl}, absent classes {absent}"
    if name == "miou_2class":
        return "mIoU 2-class: mean of both classes"
    if name == "iou_building":
        return "IoU building: class 1 alone"
    return "mIoU mmseg: all classes, nanmean"


def brief_notes(cfg: BenchConfig, info: DatasetInfo, rows: Sequence[UnitResult], names: Sequence[str], *,
                mba: bool = True, biou: bool = False, timed: str = "", marks: Sequence[str] = (),
                significance: bool = True) -> list[str]:
    """The three short note lines of a LaTeX table: metric variant, timed region, marks (and where the
    full definitions are).

    Args:
        rows: the table's measured rows.
        names: the mIoU variants shown.
        mba, biou: the table shows mBA, BIoU.
        timed: ``"ms"`` or ``"s"`` for a table with a time column, ``""`` for none.
        marks: what the table's marks mean, short (colours, cited rows).
        significance: the table carries the paired-bootstrap marks when the config tests them.
    """
    metric = [_short_variant(n, cfg, info) for n in names]
    sizes = scored_sizes(cfg, rows)
    if mba:
        radii = "; ".join(f"{{{','.join(map(str, mba_radii(h, w)))}}}" for w, h in sizes) or "from (W+H)/300"
        metric.append(f"mBA: CascadePSP's, radii {radii} px")
    if biou:
        widths = "; ".join(str(boundary_width(h, w, biou_ratio(cfg))) for w, h in sizes)
        metric.append(f"BIoU: pooled, d = {widths or '?'} px (ratio {fmt_ratio(biou_ratio(cfg))})")
    out = ["; ".join(metric) + "."]
    ok = [r for r in rows if r.status == "ok"]
    if timed:
        devices = ", ".join(sorted({r.device for r in ok if r.device})) or "?"
        threads = ", ".join(map(str, sorted({r.threads for r in ok if r.threads}))) or "?"
        cuda = {r.mem_method for r in ok if r.mem_method} == {"cuda_allocator"}
        what = "median s" if timed == "s" else "median (IQR) ms"
        precision = "fp32" if not any(row_amp(r) for r in ok) else "AUTOCAST rows (see notes)"
        out.append(f"Time: {what} per image, coarse pass + refine(), {devices}, {threads} thread(s), {precision}; "
                   f"memory: {'peak CUDA allocation' if cuda else 'peak resident-set growth'} (MiB).")
    last = list(marks)
    if significance and cfg.bootstrap:
        last.append(f"{HIGHER}/{LOWER}: paired-bootstrap 95% interval above/below 0")
    if any(r.partial for r in rows):
        last.append("PARTIAL rows: k of n images")
    last.append(f"full definitions: {NOTES_FILE}.tex")
    line = "; ".join(last) + "."
    out.append(line[0].upper() + line[1:])
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
            f"{', '.join(map(str, threads)) or '?'} thread(s), {precision_text(ok)}.",
            f"Memory (MiB, 1024² bytes): {mem_def}.", batch_note(results), *sampling_notes(results)]


def sampling_notes(results: Sequence[UnitResult]) -> list[str]:
    """One line per row whose method averaged several seeds per image (its records' ``extras``: SegRefiner's
    ``samples``): how many, and how much a single seed's labels differ from the average (percent of
    pixels, mean ± std over the images of each image's mean over the seeds). None for a single draw."""
    out = []
    for r in results:
        extras = [rec["extras"] for rec in r.images.values() if (rec.get("extras") or {}).get("samples")]
        if r.status != "ok" or not extras:
            continue
        d = np.array([e["seed_disagreement_mean"] for e in extras], dtype=np.float64) * 100
        out.append(f"{r.display} @ {r.size}: {extras[0]['samples']} seeds averaged per mask; a single seed's labels "
                   f"differ from the average on {d.mean():.2f} ± {d.std():.2f}% of the pixels (over {len(d)} images).")
    return out


def row_amp(res: UnitResult) -> str | None:
    """The autocast dtype a unit's timed calls ran under (``amp=true``), from its image records; None: fp32."""
    recs = list(res.images.values())
    return (recs[0].get("provenance") or {}).get("amp") if recs else None


def precision_text(ok: Sequence[UnitResult]) -> str:
    """``fp32``, or which rows ran under autocast (``amp``): their labels may differ from fp32's."""
    amp = {r.display: a for r in ok if (a := row_amp(r))}
    if not amp:
        return "fp32"
    listed = ", ".join(f"{d} ({a})" for d, a in sorted(amp.items()))
    rest = "the other rows fp32; " if len(amp) < len(ok) else ""
    return (f"AUTOCAST (amp=true) for {listed}: {rest}mixed-precision labels may differ from fp32 ones "
            "(make gpu-check counts how many)")


NOT_RECORDED = "not recorded"


def row_batch(res: UnitResult) -> int | str | None:
    """The batch setting a unit ran at (``bench.core.batch``), from its image records.

    Returns:
        items per forward (int), None for a method that declares no batch option, or
        ``NOT_RECORDED`` for records written before the setting was recorded.
    """
    recs = list(res.images.values())
    if not recs or "batch" not in recs[0]:
        return NOT_RECORDED
    return recs[0]["batch"]


def batch_note(results: Sequence[UnitResult]) -> str:
    """Which batch setting the rows' time and memory were measured at (issue 21, item 9).

    One setting for every row that batches work: ``Batch: 1 ...``; rows at different settings:
    the sentence says the columns compare settings as well as methods, and lists them.
    """
    ok = [r for r in results if r.status == "ok"]
    batched = {r.display: b for r in ok if (b := row_batch(r)) is not None}
    none = sorted({r.display for r in ok if row_batch(r) is None})
    plain = f"; no batch option (nothing to batch): {', '.join(none)}" if none else ""
    if not batched:
        return f"Batch: no row batches work{plain}." if ok else "Batch: no row measured."
    settings = set(batched.values())
    if len(settings) == 1:
        (b,) = settings
        if b == NOT_RECORDED:
            return (f"Batch: the setting is not recorded in these records (written before it was); rerun to "
                    f"name it{plain}.")
        return (f"Batch: every row with a batch option runs {b} item(s) (tiles, patches or masks) per forward "
                f"({', '.join(sorted(batched))}){plain}. Time and memory depend on it.")
    listed = ", ".join(f"{d} {b}" for d, b in sorted(batched.items()))
    return (f"Batch: the rows run at different settings (items per forward: {listed}){plain}: their time and "
            f"memory compare batch settings as well as methods.")


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

def paper_value(cfg: BenchConfig, method: str, size: str) -> Mapping[str, Any] | None:
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
        ref = paper_value(cfg, r.method, r.size)
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


def paper_cols(cfg: BenchConfig, info: DatasetInfo, res: UnitResult, show: bool, shown: Sequence[str]) -> list[str]:
    if not show:
        return []
    ref = paper_value(cfg, res.method, res.size)
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
            f"interval lies below zero (significantly lower), no mark an interval that holds zero or a comparison "
            f"of fewer than {MIN_PAIRED_IMAGES} paired images (too few resamples differ for a verdict).")


def _fmt_interval(d: DiffInterval, markable: bool = True) -> str:
    """``+3.03 [+1.10, +5.00]†``: the difference and its interval in points, with the mark (none when
    not ``markable``)."""
    if np.isnan(d.diff):
        return "–"
    ci = "no interval" if np.isnan(d.low) else f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]"
    return f"{100 * d.diff:+.2f} {ci}{mark(d) if markable else ''}"


def too_few_note(res: BootstrapResult) -> str:
    """Why a comparison carries no mark when it pairs fewer than ``MIN_PAIRED_IMAGES`` images ("" otherwise)."""
    if res.markable:
        return ""
    # with N images at most C(2N-1, N) resamples differ (3 at N = 2): the interval says nothing
    return f"no significance mark: {res.n_images} paired image(s), fewer than the {MIN_PAIRED_IMAGES} a verdict needs"


def comparison_text(a: UnitResult, b: UnitResult, res: BootstrapResult, metrics: Sequence[str] = ("miou", "mba")) -> str:
    parts = [f"{'mIoU' if m == 'miou' else 'mBA'} {_fmt_interval(getattr(res, m), res.markable)}" for m in metrics]
    few = too_few_note(res)
    return (f"{a.display} - {b.display} at {a.size} on {res.n_images} paired image(s): {', '.join(parts)}"
            + (f" ({few})" if few else ""))


def mark_cells(table: Table, row: int, res: BootstrapResult, columns: Mapping[str, int | None]) -> None:
    """Append the sign-correct mark to ``row``'s cells of ``columns`` (``{"miou": j, "mba": j}``); nothing
    from fewer than ``MIN_PAIRED_IMAGES`` paired images (:func:`too_few_note` says why)."""
    if not res.markable:
        return
    for metric, col in columns.items():
        if col is not None:
            table.rows[row][col] += mark(getattr(res, metric))


def metric_cols(table: Table, cfg: BenchConfig, info: DatasetInfo) -> dict[str, int | None]:
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
    mark_cells(table, row_of(best), res, cols)
    where = (f"; the marks are on the best row's cells ({LOWER}: that row is significantly lower there)"
             if res.markable else "")
    return f"{BEST_VS_RUNNER_UP}: {comparison_text(best, runner, res)}{where}."


def add_significance(table: Table, cfg: BenchConfig, info: DatasetInfo, rows: Sequence[UnitResult],
                      compare: Compare | None, row_of: Callable[[UnitResult], int]) -> None:
    if compare is None:
        return
    table.notes += [significance_note(cfg),
                    _best_vs_runner_up(table, rows, compare, metric_cols(table, cfg, info), row_of)]

