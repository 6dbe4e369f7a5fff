"""The report page of a run: one self-contained HTML file (issue 24 item 2).

``<tables_dir>/report.html``, written by ``bench run`` after the figures and by
``python -m bench report OUT_DIR``. It holds:

- provenance: git sha, Python, torch and library versions, device, threads, seed, machine
  fingerprint (from the records), the weights (reference set and backbone digests), the run's
  wall clock and the resolved config with its digest (from ``run.json``);
- the outcome: every unit with its category (``bench.report.outcome``), and each failure or
  partial unit with its reason and failed images;
- every table of the run, built from the same table model as the Markdown and LaTeX files
  (``bench.report.tables.build_all_tables``): the cells are the Markdown cells, with its marks
  (best of ours bold and red, best of previous italic and blue, the ``†``/``↓`` significance
  marks in the cells), sortable by a click on a header;
- the plots (``bench.report.plots``) and the qualitative panels, one image per crop
  (``bench.report.panel_crops``), each enlarged to its own size by a click.

Images are embedded as base64 ``data:`` URIs and the style sheet and script are inline
(``bench.report.html_assets``): the file opens offline from anywhere, alone, with no server and no
network. Nothing is recomputed here that the tables do not compute.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.core.config import BenchConfig, file_digest, stable_hash
from bench.report.html_assets import CSS, JS, PAGE
from bench.report.outcome import category
from bench.report.table_format import relative_paths
from bench.report.table_model import STATUS_TEXT, Table, UnitResult, short_name

REPORT_NAME = "report.html"
PLOTS = ("accuracy_vs_time.png", "accuracy_vs_memory.png", "input_size.png")

Results = Mapping[tuple[str, str], UnitResult]


@dataclass
class Image:
    """An image of the page: its PNG bytes, a caption, the anchor it is grouped under."""

    data: bytes
    caption: str
    group: str = ""


@dataclass
class Outcome:
    """One unit as the page's outcome table shows it."""

    method: str
    size: str
    category: str
    status: str
    images: str
    reason: str
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """Everything the page shows, gathered from a run folder (:func:`gather`) and rendered by :func:`render`."""

    title: str
    subtitle: str
    provenance: list[tuple[str, str]]
    config: dict[str, Any]
    tables: list[Table]
    outcomes: list[Outcome]
    plots: list[Image] = field(default_factory=list)
    panels: list[Image] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- gathering ------------------------------------------------------------------------------------

def outcomes(results: Results) -> list[Outcome]:
    """The units in table order with their category, coverage and reason (the page's outcome table)."""
    out = []
    for (method, size), r in results.items():
        kind = category(r)
        if kind == "partial":
            reason = r.coverage()
        elif kind == "ok":
            reason = ""
        else:
            reason = short_name(r.message, 400) or STATUS_TEXT.get(r.status, r.status)
        out.append(Outcome(method, size, kind, r.status, f"{r.n_images} of {r.n_total}", reason, dict(r.failed)))
    return out


def _varying(values: Mapping[str, Any]) -> str:
    """One value, or each distinct value with the units that hold it."""
    distinct: dict[str, list[str]] = {}
    for unit, v in values.items():
        distinct.setdefault("–" if v is None or v == "" else str(v), []).append(unit)
    if len(distinct) <= 1:
        return next(iter(distinct), "–")
    return "; ".join(f"{v} ({', '.join(units)})" for v, units in distinct.items())


_PROVENANCE = (("git sha", lambda p: p.get("git_sha") and p["git_sha"][:12] + (" (dirty)" if p.get("git_dirty") else "")),
               ("torch", lambda p: p.get("versions", {}).get("torch")),
               ("python", lambda p: p.get("versions", {}).get("python")),
               ("numpy / opencv", lambda p: f"{p.get('versions', {}).get('numpy')} / {p.get('versions', {}).get('opencv')}"),
               ("CUDA / cuDNN", lambda p: f"{p.get('versions', {}).get('cuda')} / {p.get('versions', {}).get('cudnn')}"),
               ("device", lambda p: f"{p.get('device')}: {p.get('device_name')}"),
               ("CPU", lambda p: f"{p.get('cpu')} ({p.get('cpu_count')} cores)"),
               ("threads", lambda p: p.get("threads")),
               ("dtype, cudnn.benchmark", lambda p: f"{p.get('dtype')}, {p.get('cudnn_benchmark')}"),
               ("allocator tuned", lambda p: (p.get("allocator") or {}).get("tuned")),
               ("seed", lambda p: p.get("seed")),
               ("host", lambda p: p.get("hostname")),
               ("machine fingerprint", lambda p: p.get("fingerprint")))


def provenance(cfg: BenchConfig, results: Results, run: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) pairs: the records' provenance (per unit where units differ), weights, config, wall clock."""
    recs = {f"{m}@{s}": next(iter(r.images.values())).get("provenance", {})
            for (m, s), r in results.items() if r.images}
    rows = [(label, _varying({u: get(p) for u, p in recs.items()})) for label, get in _PROVENANCE]
    recorded = {u: p["weights"] for u, p in recs.items() if isinstance(p.get("weights"), dict)}
    rows.append(("weights (recorded)", "; ".join(f"{u}: " + (", ".join(f"{k} {v}" for k, v in w.items()) or "none")
                                                 for u, w in recorded.items())
                 or "not in the records (written before provenance.weights): see the unit keys"))
    ref = Path(cfg.reference_dir) / "manifest.json" if cfg.reference_dir else None
    rows.append(("weight files now", f"reference set {cfg.reference_dir or '–'} (manifest sha256 "
                                     f"{(file_digest(ref) if ref else None) or 'absent'}), backbone "
                                     f"{relative_paths(str(cfg.backbone_path))} (sha256 "
                                     f"{file_digest(cfg.backbone_path) or 'absent'}), as the files are when the "
                                     f"page is written"))
    units = (run or {}).get("units") or {}
    rows.append(("unit keys", ", ".join(f"{u} {k}" for u, k in units.items()) or "–"))
    rows.append(("config digest", stable_hash(cfg.to_dict())))
    timing = (run or {}).get("timing") or {}
    if timing.get("started") is not None:
        start = datetime.datetime.fromtimestamp(timing["started"], datetime.timezone.utc)
        rows.append(("last sweep", f"started {start:%Y-%m-%d %H:%M} UTC, {timing.get('seconds', 0):.0f} s wall "
                                   f"clock, load {timing.get('load_before')} → {timing.get('load_after')} on "
                                   f"{timing.get('cpu_count')} CPUs"))
    return rows


def _fresh(paths: Sequence[Path], since: float) -> bool:
    return bool(paths) and all(p.is_file() and p.stat().st_mtime >= since for p in paths)


def plot_images(cfg: BenchConfig, results: Results, since: float, draw: bool = True) -> tuple[list[Image], list[str]]:
    """The plots of ``<tables_dir>/plots`` when newer than the records, else (``draw``) drawn afresh into a
    temporary folder (``<tables_dir>`` is left as it is)."""
    folder = cfg.tables_path / "plots"
    present = [folder / name for name in PLOTS if (folder / name).is_file()]
    notes: list[str] = []
    if not draw and not _fresh(present, since):
        return [], [f"No current plots in {folder} (the figures failed or were not drawn)."]
    if not _fresh(present, since):
        from bench.report.plots import render_plots

        with tempfile.TemporaryDirectory() as tmp:
            files, notes = render_plots(replace(cfg, tables_dir=tmp), results)
            return [Image(p.read_bytes(), _plot_caption(p.name)) for p in files], notes
    return [Image(p.read_bytes(), _plot_caption(p.name)) for p in present], notes


def _plot_caption(name: str) -> str:
    return {"accuracy_vs_time.png": "mIoU and mBA against the median time per image (log axis)",
            "accuracy_vs_memory.png": "mIoU and mBA against peak memory",
            "input_size.png": "Table 1's input-size sweep: mIoU and memory against input size"}.get(name, name)


_CROP = re.compile(r"^(?P<stem>.+)\.crop(?P<k>\d+)\.png$")


def panel_images(cfg: BenchConfig, since: float) -> tuple[list[Image], list[str]]:
    """The crop panels of ``<tables_dir>/panels`` (``<stem>.crop<k>.png``), grouped by image, in crop order."""
    folder = cfg.tables_path / "panels"
    found = sorted(((m["stem"], int(m["k"]), p) for p in folder.glob("*.png") if (m := _CROP.match(p.name))),
                   key=lambda t: (t[0], t[1]))
    notes = []
    if not found:
        grids = sorted(p.name for p in folder.glob("*.png"))
        notes.append(f"No crop panels in {folder}" + (f" (only full grids: {', '.join(grids)})" if grids else "")
                     + f": `python -m bench show {cfg.dataset} out_dir={cfg.out_path}` draws them from the saved "
                       f"label maps (`save_predictions`).")
    elif not _fresh([p for _, _, p in found], since):
        notes.append(f"Some panels in {folder} are older than the records: `python -m bench show {cfg.dataset} "
                     f"out_dir={cfg.out_path}` redraws them.")
    return [Image(p.read_bytes(), f"{stem}, crop {k}", group=stem) for stem, k, p in found], notes


def gather(cfg: BenchConfig, results: Results | None = None, draw_plots: bool = True) -> Report:
    """Read the run folder of ``cfg``: aggregates (default ``bench.report.results.load_results``), tables, figures.

    ``draw_plots``: draw the plots afresh when ``<tables_dir>/plots`` lacks current ones (``bench run``,
    which has just drawn them, passes False).
    """
    from bench.data import dataset_info
    from bench.evaluation import run_folder
    from bench.report.results import load_results
    from bench.report.tables import build_all_tables

    results = load_results(cfg) if results is None else results
    info = dataset_info(cfg)
    run = run_folder.read(cfg.out_path)
    records = cfg.out_path / "records.jsonl"
    since = records.stat().st_mtime if records.is_file() else 0.0
    plots, notes = plot_images(cfg, results, since, draw_plots)
    panels, panel_notes = panel_images(cfg, since)
    n_ids = len((run or {}).get("image_ids") or [])
    subtitle = (f"{info.name} {cfg.split}" + (f", {n_ids} image(s)" if n_ids else "") + f", input size "
                f"{cfg.input_size[0]}x{cfg.input_size[1]}, device {cfg.device}; run folder {cfg.out_path}")
    return Report(f"magnet-bench report: {info.name} {cfg.split}", subtitle, provenance(cfg, results, run),
                  cfg.to_dict(), build_all_tables(cfg, info, dict(results)), outcomes(results), plots, panels,
                  notes + panel_notes)


# --- rendering ------------------------------------------------------------------------------------

def inline(text: str) -> str:
    """Escaped text; ```x``` becomes ``<code>x</code>`` (as in the Markdown notes)."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _cell(table: Table, i: int, j: int, text: str) -> str:
    """A ``<td>``: its text as the Markdown cell's, the Markdown's bold/italic marks, the LaTeX's colours."""
    body, classes = html.escape(relative_paths(text), quote=False), []
    marked = bool(text) and text != "–"  # the Markdown leaves empty and dash cells unmarked
    if marked and ((i, j) in table.bold or (i, j) in table.best_ours):
        body = f"<strong>{body}</strong>"
        classes.append("best-ours" if (i, j) in table.best_ours else "bold")
    if marked and (i, j) in table.best_previous:
        body = f"<em>{body}</em>"
        classes.append("best-previous")
    return f"<td class=\"{' '.join(classes)}\">{body}</td>" if classes else f"<td>{body}</td>"


def table_html(table: Table) -> str:
    """A sortable ``<table>``: rows before the first rule sort, the rows from it on (Improvement, cited) stay."""
    first_rule = min(table.rule_before, default=len(table.rows))
    head = "".join(f"<th class=\"sortable\" scope=\"col\">{html.escape(relative_paths(h))}</th>" for h in table.header)
    bodies: list[list[str]] = [[], []]
    for i, row in enumerate(table.rows):
        classes = " ".join(c for c, on in (("cited", i in table.cited),
                                           ("rule", i in table.rule_before and i != first_rule)) if on)
        cells = "".join(_cell(table, i, j, c) for j, c in enumerate(row))
        bodies[i >= first_rule].append(f"<tr class=\"{classes}\">{cells}</tr>" if classes else f"<tr>{cells}</tr>")
    title = f"{table.label}: {table.caption}" if table.label else table.caption
    fixed = f"<tbody class=\"fixed\">{''.join(bodies[1])}</tbody>" if bodies[1] else ""
    notes = "".join(f"<li>{inline(relative_paths(n))}</li>" for n in table.notes)
    return (f"<section id=\"{table.name}\"><div class=\"scroll\"><table class=\"bench\" data-name=\"{table.name}\">"
            f"<caption>{html.escape(relative_paths(title))}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(bodies[0])}</tbody>{fixed}</table></div>"
            + (f"<ul class=\"notes\">{notes}</ul>" if notes else "") + "</section>")


def _img(image: Image) -> str:
    src = "data:image/png;base64," + base64.b64encode(image.data).decode("ascii")
    alt = html.escape(image.caption)
    return (f"<figure><img src=\"{src}\" alt=\"{alt}\" title=\"click to enlarge\" loading=\"lazy\">"
            f"<figcaption>{alt}</figcaption></figure>")


def _outcome_html(rows: Sequence[Outcome]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Method", "Input size", "Outcome", "Status", "Images", "Reason"))
    body = "".join(f"<tr><td>{html.escape(o.method)}</td><td>{o.size}</td>"
                   f"<td class=\"cat-{o.category.replace(' ', '-')}\">{o.category}</td><td>{html.escape(o.status)}</td>"
                   f"<td>{o.images}</td><td>{html.escape(o.reason)}</td></tr>" for o in rows)
    failed = "".join(f"<li><code>{html.escape(o.method)}@{o.size}</code> {html.escape(i)}: {html.escape(reason)}</li>"
                     for o in rows for i, reason in sorted(o.failed.items()))
    counts = ", ".join(f"{sum(o.category == c for o in rows)} {c}"
                       for c in ("ok", "partial", "failed", "missing weights", "stale"))
    out = (f"<p>{len(rows)} units: {counts}.</p><div class=\"scroll\"><table class=\"bench outcome\">"
           f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    return out + (f"<h3>Failed images</h3><ul class=\"notes\">{failed}</ul>" if failed else "")


def render(report: Report) -> str:
    """The page as one HTML string (no external resource)."""
    prov = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in report.provenance)
    sections = [("provenance", "Provenance", f"<dl class=\"prov\">{prov}</dl><details><summary>Resolved config "
                 f"(run.json)</summary><pre>{html.escape(json.dumps(report.config, indent=1, sort_keys=True))}</pre>"
                 f"</details>"),
                ("outcome", "Units: outcome, failures and partial units", _outcome_html(report.outcomes)),
                ("tables", "Tables", "<p class=\"legend\"><span><strong style=\"color:var(--red)\">bold red</strong>: "
                 "best of ours</span><span><em style=\"color:var(--blue)\">italic blue</em>: best of previous</span>"
                 "<span>† / ↓: 95 % interval of the difference above / below zero</span><span>click a header to "
                 "sort</span></p>" + "".join(table_html(t) for t in report.tables)),
                ("plots", "Plots", f"<div class=\"figs\">{''.join(_img(i) for i in report.plots)}</div>"
                 if report.plots else "<p>No plot: no unit ran ok.</p>"),
                ("panels", "Qualitative panels (one per crop; click to enlarge)", _panels_html(report.panels))]
    if report.notes:
        sections.append(("notes", "Notes", "<ul class=\"notes\">"
                         + "".join(f"<li>{inline(n)}</li>" for n in report.notes) + "</ul>"))
    body = "\n".join(f"<section id=\"{a}\"><h2>{t}</h2>{content}</section>" for a, t, content in sections)
    nav = "".join(f"<a href=\"#{a}\">{t.split(' (')[0].split(':')[0]}</a>" for a, t, _ in sections)
    return PAGE.format(title=html.escape(report.title), subtitle=html.escape(report.subtitle), nav=nav, body=body,
                       css=CSS, js=JS)


def _panels_html(panels: Sequence[Image]) -> str:
    if not panels:
        return "<p>No panels (see the notes below).</p>"
    groups: dict[str, list[Image]] = {}
    for p in panels:
        groups.setdefault(p.group, []).append(p)
    return "".join(f"<h3>{html.escape(g)}</h3><div class=\"panels\">{''.join(_img(i) for i in imgs)}</div>"
                   for g, imgs in groups.items())


def write_report(cfg: BenchConfig, results: Results | None = None, path: Path | None = None,
                 draw_plots: bool = True) -> Path:
    """Gather (:func:`gather`) and write the page (default ``<tables_dir>/report.html``); returns its path."""
    path = Path(path) if path is not None else cfg.tables_path / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(gather(cfg, results, draw_plots))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
