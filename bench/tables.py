"""Tables derived from records only, rendered as Markdown and LaTeX (booktabs).

- Table 1: input size sweep (mIoU, mBA, time, memory) of the Table-1 methods, plus MagNet rows.
- Table 2: mBA and per-class IoU per method, an Improvement row (best MagNet variant minus
  Downsample), the best value of each column in bold.
- Table 3: mIoU per method (with the paper's value and the difference where the config records
  one measured with the run's backbone, see :func:`paper_comparable`), mBA, time and memory.

Significance (``bootstrap`` resamples, 0 disables): a paired bootstrap over images
(``bench.significance``) tests the Improvement row of Table 2 and, in every table, the best row by
mIoU against the runner-up, the best row of another method at the same input size. A difference
whose 95 % percentile interval excludes zero gets a ``†`` (on the Improvement cell, or on the best
row's mIoU / mBA cell); the caption states B, the seed, what was resampled and each interval.

All numbers are recomputed from the per-image records (confusion counts, mBA, time, memory), so a
change of metric policy needs no rerun.

A unit that does not cover every image of its split (an image failed to load, or the unit stopped
early) is partial: its row says "k of n images", the caption names each failed image with its
reason, and it gets no Δ against the paper. A partial row is compared (bold, best vs runner-up,
Improvement, †) only with rows over the very same images: never with a complete one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import records
from bench.config import BenchConfig, format_size
from bench.interface import DatasetInfo
from bench.measure import summarize
from bench.metrics import iou_per_class, mean_iou
from bench.significance import BootstrapResult, DiffInterval, paired_bootstrap

STATUS_TEXT = {"unavailable": "unavailable", "missing_checkpoint": "no weights", "stale_checkpoint": "stale weights",
               "reference_mismatch": "weights differ from manifest", "oom": "OOM", "error": "error"}
DAGGER = "†"


@dataclass
class Table:
    """A rendered-agnostic table: header, rows of strings, bold cells, a caption."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)


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
    mbas = [r["mba"] for r in images.values() if r.get("mba") is not None]
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
                      expected=expected, failed=failed, message=(failure or {}).get("message", ""))


def _pct(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.2f}"


def _time(res: UnitResult) -> str:
    t = res.time
    return "–" if not t or t["n"] == 0 else f"{t['median']:.0f} ({t['iqr']:.0f})"


def _mem(res: UnitResult) -> str:
    return "–" if np.isnan(res.memory) else f"{res.memory:.0f}"


def _label(res: UnitResult) -> str:
    """The method cell: its name, with the coverage of a partial unit."""
    return f"{res.display} ({res.n_images} of {res.n_total} images)" if res.partial else res.display


def partial_note(results: Sequence[UnitResult]) -> str:
    """The caption sentence naming every partial unit and its failed images ("" when none)."""
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


def _status_row(res: UnitResult, width: int) -> list[str]:
    return [STATUS_TEXT.get(res.status, res.status)] + ["–"] * (width - 1)


def excluded_classes(cfg: BenchConfig, info: DatasetInfo) -> tuple[int, ...]:
    """Classes left out of the mIoU mean: the config's ``excluded``, else the dataset's own."""
    return tuple(cfg.excluded if cfg.excluded is not None else info.excluded_from_mean)


def caption_notes(cfg: BenchConfig, info: DatasetInfo, results: Sequence[UnitResult]) -> str:
    """Metric variant, timed region and memory definition, for every caption."""
    ok = [r for r in results if r.status == "ok"]
    n = max((r.n_total for r in ok), default=0)
    excluded = excluded_classes(cfg, info)
    excl = f", classes {list(excluded)} excluded from the mean" if excluded else ""
    skipped = sum(r.mba_skipped for r in ok)
    mem_methods = sorted({r.mem_method for r in ok if r.mem_method})
    devices = sorted({r.device for r in ok if r.device})
    threads = sorted({r.threads for r in ok if r.threads})
    mem_def = ("peak torch.cuda.max_memory_allocated per image (weights + activations, no CUDA context)"
               if mem_methods == ["cuda_allocator"] else
               "peak resident-set growth over the post-setup baseline, per image, in a fresh process per row (max over images)")
    partial = partial_note(results)
    return (f"{partial + ' ' if partial else ''}{info.name} {cfg.split}, {n} images. mIoU: dataset-level confusion matrix, absent classes -> {cfg.absent}"
            f"{excl}, ignore index {info.ignore_index}. mBA: CascadePSP definition (5 radii from (W+H)/300, "
            f"OpenCV ellipse, ignore pixels excluded), mean over images ({skipped} image(s) without boundary skipped). "
            f"Time: median (IQR) ms per image of the coarse pass plus refine() (image decode, weight loading and "
            f"scoring excluded; {cfg.warmup} warm-up call(s)) on {', '.join(devices) or '?'}, {', '.join(map(str, threads)) or '?'} thread(s), fp32. "
            f"Memory (MiB): {mem_def}.")


def _paper(cfg: BenchConfig, method: str, size: str) -> dict[str, Any] | None:
    """The published value of a unit, or None when there is none or it is not comparable."""
    ref = cfg.paper.get(f"{method}@{size}")
    return ref if ref and paper_comparable(cfg, ref) else None


def paper_comparable(cfg: BenchConfig, ref: Mapping[str, Any]) -> bool:
    """A cited value is comparable when it records no backbone or the run's own (the input size is in its key)."""
    return ref.get("backbone") in (None, cfg.backbone)


def paper_note(cfg: BenchConfig, rows: Sequence[UnitResult]) -> str:
    """The caption sentence for published values left out as not comparable ("" when none)."""
    hidden = [ref for r in rows if (ref := cfg.paper.get(f"{r.method}@{r.size}")) and not paper_comparable(cfg, ref)]
    if not hidden:
        return ""
    cited = ", ".join(sorted({str(ref["backbone"]) for ref in hidden}))
    return (f"Paper values not shown: {len(hidden)} were measured with backbone {cited}, this run uses "
            f"{cfg.backbone}, so they are not comparable. ")


def _paper_cols(cfg: BenchConfig, res: UnitResult, show: bool) -> list[str]:
    if not show:
        return []
    ref = _paper(cfg, res.method, res.size)
    if not ref or ref.get("miou") is None:
        return ["", ""]
    ours = "–" if np.isnan(res.miou) or res.partial else f"{100 * res.miou - ref['miou']:+.2f}"
    return [f"{ref['miou']:.2f}", ours]


def table1_keys(cfg: BenchConfig) -> list[tuple[str, str]]:
    """Table 1's (method, "WxH") rows in order: each Table-1 method at every size, then the MagNet rows."""
    sizes = [format_size(cfg.input_size)] + [format_size(s) for s in cfg.table1_sizes]
    keys = [(m, s) for m in cfg.table1_methods for s in dict.fromkeys(sizes)]
    keys += [(m, format_size(cfg.input_size)) for m in cfg.methods if m.startswith("magnet")]
    return list(dict.fromkeys(keys))


def table1(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult], notes: str,
           compare: Compare | None = None) -> Table:
    rows = [results[k] for k in table1_keys(cfg) if k in results]
    show = any(_paper(cfg, r.method, r.size) for r in rows)
    header = ["Method", "Input size", "mIoU (%)"] + (["Paper", "Δ"] if show else []) + ["mBA (%)", "Time ms", "Memory MiB"]
    table = Table("table1", f"Table 1: accuracy, time and memory against input size. {paper_note(cfg, rows)}{notes}",
                  header)
    for r in rows:
        body = ([_pct(r.miou)] + _paper_cols(cfg, r, show) + [_pct(r.mba), _time(r), _mem(r)]
                if r.status == "ok" else _status_row(r, len(header) - 2))
        table.rows.append([_label(r), r.size, *body])
    _add_significance(table, cfg, rows, compare)
    return table


def _improvement(rows: list[UnitResult]) -> tuple[UnitResult, UnitResult] | None:
    base = next((r for r in rows if r.method == "downsample" and r.status == "ok"), None)
    best = next((r for r in rows if r.method == "magnet" and r.status == "ok"), None)
    return (base, best) if base and best else None


def _mark_best(table: Table, first_col: int, n_rows: int, skip: frozenset[int] = frozenset()) -> None:
    """Bold the best value of each column; rows in ``skip`` (partial units) never compete."""
    for col in range(first_col, len(table.header)):
        vals = []
        for i in range(n_rows):
            try:
                vals.append(float("-inf") if i in skip else float(table.rows[i][col]))
            except ValueError:
                vals.append(float("-inf"))
        if vals and max(vals) > float("-inf"):
            best = max(vals)
            table.bold |= {(i, col) for i, v in enumerate(vals) if v == best}


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


def comparable(a: UnitResult, b: UnitResult) -> bool:
    """Two units may be compared: both complete, or both partial over the very same images."""
    if not (a.partial or b.partial):
        return True
    return a.partial and b.partial and set(a.images) == set(b.images)


def significance_note(cfg: BenchConfig) -> str:
    """What the significance marks mean: B, seed, what is resampled, the interval."""
    return (f"Significance: paired bootstrap over images ({cfg.bootstrap} resamples with replacement of the images "
            f"both compared rows share, numpy seed {cfg.seed}; each resample recomputes the mIoU from the summed "
            f"per-image confusion matrices and the mBA as the mean over the drawn images); {DAGGER} marks a "
            f"difference whose 95% percentile interval excludes zero.")


def _fmt_interval(d: DiffInterval) -> str:
    """``+3.03 [+1.10, +5.00]†``: the difference and its interval in points, with the mark."""
    if np.isnan(d.diff):
        return "–"
    ci = "no interval" if np.isnan(d.low) else f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]"
    return f"{100 * d.diff:+.2f} {ci}{DAGGER if d.excludes_zero else ''}"


def _comparison_text(a: UnitResult, b: UnitResult, res: BootstrapResult) -> str:
    return (f"{a.display} - {b.display} at {a.size} on {res.n_images} paired image(s): "
            f"mIoU {_fmt_interval(res.miou)}, mBA {_fmt_interval(res.mba)}")


def _mark_significant(table: Table, row: int, res: BootstrapResult) -> None:
    """Append the mark to ``row``'s mIoU and mBA cells whose difference is significant."""
    for diff, header in ((res.miou, "mIoU (%)"), (res.mba, "mBA (%)")):
        if diff.excludes_zero:
            table.rows[row][table.header.index(header)] += DAGGER


def best_vs_runner_up(rows: Sequence[UnitResult]) -> tuple[UnitResult, UnitResult | None] | None:
    """The best ok row by mIoU (the first one on a tie) and the best ok row of another method at the
    same input size (None when there is none); None when no row has an mIoU."""
    ok = [r for r in competing(rows) if not np.isnan(r.miou)]
    if not ok:
        return None
    best = max(ok, key=lambda r: r.miou)
    others = [r for r in ok if r.method != best.method and r.size == best.size]
    return best, (max(others, key=lambda r: r.miou) if others else None)


def _best_vs_runner_up(table: Table, rows: Sequence[UnitResult], compare: Compare) -> str:
    """Test the best row against the runner-up, mark the best row's cells, return the caption sentence.

    ``rows[i]`` must be the result shown in ``table.rows[i]``.
    """
    pair = best_vs_runner_up(rows)
    if pair is None:
        return f"{BEST_VS_RUNNER_UP}: no row to compare."
    best, runner = pair
    if runner is None:
        return f"{BEST_VS_RUNNER_UP}: none, {best.display} at {best.size} is the only method at that size."
    res = compare(best, runner)
    if res is None:
        return f"{BEST_VS_RUNNER_UP}: {best.display} - {runner.display}: no image in common, not tested."
    _mark_significant(table, next(i for i, r in enumerate(rows) if r is best), res)
    return f"{BEST_VS_RUNNER_UP}: {_comparison_text(best, runner, res)}; {DAGGER} on the best row's cell."


def _add_significance(table: Table, cfg: BenchConfig, rows: Sequence[UnitResult], compare: Compare | None,
                      extra: str = "") -> None:
    """Best-vs-runner-up test and marks, and the caption sentences (nothing when disabled)."""
    if compare is None:
        return
    sentences = [significance_note(cfg), extra, _best_vs_runner_up(table, rows, compare)]
    table.caption += " " + " ".join(s for s in sentences if s)


def table2(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult], notes: str,
           compare: Compare | None = None) -> Table:
    size = format_size(cfg.input_size)
    rows = [results[(m, size)] for m in cfg.methods if (m, size) in results]
    header = ["Method", "mBA (%)", "mIoU (%)", *info.class_names]
    table = Table("table2", f"Table 2: mBA and per-class IoU (%) at input size {size}; best per column in bold; "
                            f"Improvement = MagNet - Downsample. {notes}", header)
    for r in rows:
        table.rows.append([_label(r)] + ([_pct(r.mba), _pct(r.miou)] + [_pct(v) for v in r.iou]
                                         if r.status == "ok" else _status_row(r, len(header) - 1)))
    ranked = competing(rows)
    _mark_best(table, 1, len(table.rows), frozenset(i for i, r in enumerate(rows) if all(r is not c for c in ranked)))
    pair = _improvement(rows)
    improvement = ""
    if pair and not comparable(*pair):
        improvement = (f"Improvement not shown: {' and '.join(r.display for r in pair if r.partial)} "
                       f"did not cover every image.")
        pair = None
        if compare is None:  # no significance sentences follow: say it in the caption anyway
            table.caption += " " + improvement
    if pair:
        base, best = pair
        diffs = [best.mba - base.mba, best.miou - base.miou] + [b - a for a, b in zip(base.iou, best.iou)]
        table.rule_before.add(len(table.rows))
        table.rows.append(["Improvement"] + ["–" if np.isnan(d) else f"{100 * d:+.2f}" for d in diffs])
        res = compare(best, base) if compare else None
        if res is not None:
            _mark_significant(table, len(table.rows) - 1, res)
            improvement = f"Improvement: {_comparison_text(best, base, res)}; {DAGGER} on the Improvement cell."
    # the best-vs-runner-up marks go on after _mark_best, which needs plain numbers to find the bold cells
    _add_significance(table, cfg, rows, compare, improvement)
    return table


def table3(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult], notes: str,
           compare: Compare | None = None) -> Table:
    size = format_size(cfg.input_size)
    rows = [results[(m, size)] for m in cfg.methods if (m, size) in results]
    show = any(_paper(cfg, r.method, r.size) for r in rows)
    header = ["Method", "mIoU (%)"] + (["Paper", "Δ"] if show else []) + ["mBA (%)", "Time ms", "Memory MiB"]
    table = Table("table3", f"Table 3: mIoU per method at input size {size}. {paper_note(cfg, rows)}{notes}", header)
    for r in rows:
        body = ([_pct(r.miou)] + _paper_cols(cfg, r, show) + [_pct(r.mba), _time(r), _mem(r)]
                if r.status == "ok" else _status_row(r, len(header) - 1))
        table.rows.append([_label(r), *body])
    _add_significance(table, cfg, rows, compare)
    return table


def _md_cell(text: str, bold: bool) -> str:
    return f"**{text}**" if bold and text else text


def to_markdown(table: Table) -> str:
    """GitHub Markdown: caption paragraph, then the pipe table."""
    lines = [f"**{table.caption}**", "", "| " + " | ".join(table.header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|"]
    for i, row in enumerate(table.rows):
        lines.append("| " + " | ".join(_md_cell(c, (i, j) in table.bold) for j, c in enumerate(row)) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("Δ", r"$\Delta$"), ("–", "--"), ("->", r"$\to$"), (DAGGER, r"\textsuperscript{\dag}")):
        out = out.replace(a, b)
    return out


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment."""
    cols = "l" + "r" * (len(table.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + _tex_escape(table.caption) + "}",
             r"\label{tab:" + table.name + "}", r"\resizebox{\linewidth}{!}{%",
             r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(_tex_escape(h) for h in table.header) + r" \\",
             r"\midrule"]
    for i, row in enumerate(table.rows):
        if i in table.rule_before:
            lines.append(r"\midrule")
        cells = [_tex_escape(c) for c in row]
        cells = [r"\textbf{" + c + "}" if (i, j) in table.bold and c else c for j, c in enumerate(cells)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def collect(cfg: BenchConfig, info: DatasetInfo, keys: dict[tuple[str, tuple[int, int]], str | None],
            recs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], UnitResult]:
    """UnitResult per (method, "WxH") for the current unit keys."""
    from bench.registry import list_methods, resolve

    excluded = excluded_classes(cfg, info)
    known = set(list_methods())
    out = {}
    for (method, size), key in keys.items():
        display = method
        if method in known:
            try:
                display = resolve(method).display_name or method
            except Exception:  # noqa: BLE001 - an unavailable method keeps its key as display name
                pass
        out[(method, format_size(size))] = aggregate(recs, key or "", method, format_size(size), info, cfg.absent,
                                                     excluded, display)
    return out


def build_tables(cfg: BenchConfig, info: DatasetInfo, results: dict[tuple[str, str], UnitResult]) -> list[Table]:
    notes = caption_notes(cfg, info, list(results.values()))
    compare = comparer(cfg, info)
    return [table1(cfg, results, notes, compare), table2(cfg, info, results, notes, compare),
            table3(cfg, results, notes, compare)]


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
    """The aggregates of every unit of ``cfg``: :func:`collect` over its records and current unit keys."""
    from bench.datasets import dataset_info
    from bench.runner import unit_keys

    return collect(cfg, dataset_info(cfg), unit_keys(cfg), records.load(cfg.out_path))


def render(cfg: BenchConfig, results: dict[tuple[str, str], UnitResult] | None = None) -> list[Path]:
    """Write the tables of ``cfg`` (from ``results``, default :func:`load_results`); returns the files written."""
    from bench.datasets import dataset_info

    results = load_results(cfg) if results is None else results
    return write_tables(build_tables(cfg, dataset_info(cfg), results), cfg.tables_path)
