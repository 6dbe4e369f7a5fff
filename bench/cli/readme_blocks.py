"""``python -m bench readme``: the result blocks of README.md and docs/*.md, rendered from records (never typed).

A block is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in README.md or
any page under ``docs/``. Every block renders from files that are committed, so ``--check`` means
the same on a fresh clone as here. Each block and its source:

- ``provenance``, ``table3``, ``table1``, ``table2``: the records of ``make bench`` as published by
  ``make publish`` (``results/published/<dataset>/``: its ``run.json`` and the records of the units
  and images it names), with the reference manifest ``weights/<dataset>/manifest.json``; Table 2 as
  an excerpt of :data:`TABLE2_COLUMNS`;
- ``method_<key>``: one method's rows of that Table 3 and of the seed spread (a method's page);
- ``seeds``, ``thin``: ``results/seeds/<dataset>.json`` with the reference manifest;
  ``comparisons``, ``thin_seeds``: ``results/seeds/<dataset>.json``;
- ``drift``: the drift gate's measured kernel-set differences and tolerances
  (``results/baselines/<dataset>.json``);
- ``full``: the extended sweep of ``make bench-full`` as published (``results/published/<dataset>-full/``);
- ``cascadepsp``: CascadePSP's evaluation runs (``results/cascadepsp/{full,fast}/``);
- ``big_published``: the published BIG numbers, cited (``bench.report.big_tables.PUBLISHED_BIG``);
- ``DATASET:NAME``: the blocks of another dataset's published run (``bench readme DATASET``; a
  refinement-track config renders ``provenance`` and its track tables, :func:`track_blocks`);
- ``smoke``: the tables of ``make smoke`` as published (``results/published/smoke/smoke.md``);
- ``thin_experiments``: the thin-class experiments of ``python -m bench.checks.thin``
  (``results/thin/<dataset>.json``);
- ``perf``: the same-run speed comparisons of ``python -m perf`` (``results/perf/perf.json``);
- ``cli``: every subcommand with its arguments, read from the parser (``bench.cli.main.parser``).

A block whose published records are absent renders one sentence that says which command makes
them, never an old copy. ``--publish`` first copies the run folder of ``make bench`` (and of
``make bench-full`` and ``make smoke`` where they exist) into ``results/published/``. ``--check``
renders without writing and exits 1 when a page differs, holds a block nothing renders, or the
published run of ``make bench`` is stale (a unit's key, which hashes its options, version and
weights, is not the one its records carry: :func:`stale_units`).

The figures of the manual are drawn at build time from the same published run
(``bench.cli.docs_hook``, a MkDocs hook), so no PNG is committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR, BenchConfig, format_size, parse_overrides
from bench.core.errors import UserError
from bench.pipeline.configure import load
from bench.checks.thin import THIN_CLASSES, experiments_table
from bench.report.table_model import Table
from bench.report.table_format import to_markdown

TABLE2_COLUMNS = ("Method", "mBA (%)", "mIoU (%)", "sidewalk", "wall", "pole", "traffic light", "traffic sign", "person",
                  "motorcycle", "bicycle")
PUBLISHED_DIR = REPO_DIR / "results" / "published"  # committed copies of the runs the pages render
CASCADEPSP_RUNS = (("full", "global and local steps"), ("fast", "global step only, `cascadepsp.local_step=false`"))
# A block named ``DATASET:NAME`` is rendered by ``bench readme DATASET`` only; an unscoped ``NAME`` is the
# default dataset's (``make readme``), so one page can show the semantic default and the track's default.
BLOCK = re.compile(r"(<!-- bench:(?P<name>(?:[a-z0-9_]+:)?[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)",
                   re.S)
DEFAULT_DATASET = "synthetic"


def select_columns(table: Table, names: tuple[str, ...]) -> Table:
    """A copy of ``table`` with only the columns named in ``names`` (bold cells follow their column)."""
    return table.select(names)  # notes and the best-of marks follow (bench.report.table_model.Table.select)


def provenance_text(cfg: BenchConfig, results: dict[tuple[str, str], Any], command: str = "make bench") -> str:
    """One paragraph: the machine and the weights behind the records (of ``command``), and how long the run took."""
    from bench.weights import reference

    first = next((r for r in results.values() if r.status == "ok" and r.images), None)
    if first is None:
        return f"No records: run `{command}` first.\n"
    prov = next(iter(first.images.values())).get("provenance", {})
    folder = cfg.checkpoint_path
    if reference.is_reference(folder):
        m = reference.load_manifest(folder)
        weights = (f"the reference weights `{cfg.reference_dir}` (seed {m['seed']}, trained by "
                   f"`{m['training_command'].split(' checkpoint_dir=')[0]}` on {m['machine']['cpu']} with "
                   f"{m['machine']['threads']} thread(s), torch {m['torch']}, training fingerprint {m['fingerprint']})")
    else:
        weights = f"weights trained on this machine in `{folder}` (seed {cfg.seed})"
    return (f"Rendered by `make readme` from the records of `{command}` in `{shown(cfg.out_path)}`: run on "
            f"{prov.get('cpu', '?')} ({prov.get('cpu_count', '?')} cores, {prov.get('threads', '?')} thread(s)), "
            f"torch {prov.get('versions', {}).get('torch', '?')}, git {str(prov.get('git_sha'))[:10]}"
            f"{' with uncommitted changes' if prov.get('git_dirty') else ''}, with {weights}."
            f"{timing_text(cfg)}\n")


def shown(path: Path) -> Path:
    """``path`` relative to the repository where it lies inside it (what a reader of the page can open)."""
    try:
        return Path(path).resolve().relative_to(REPO_DIR)
    except ValueError:
        return Path(path)


def timing_text(cfg: BenchConfig) -> str:
    """`` The last `bench run` there took ...`` from the folder's ``run.json`` timing ('' without one)."""
    import time

    from bench.evaluation import run_folder

    timing = (run_folder.read(cfg.out_path) or {}).get("timing")
    if not timing:
        return ""
    units = timing.get("units", {})
    done = sum(u.get("status") == "done" for u in units.values())
    minutes, secs = divmod(round(timing["seconds"]), 60)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timing["started"]))
    resumed = f", {done} of them already recorded (a resumed run: its time covers the rest)" if done else ""
    loads = [timing.get("load_before"), timing.get("load_after")]
    busy = (f"; load average {loads[0]:.1f} at its start and {loads[1]:.1f} at its end on {timing.get('cpu_count')} cores"
            if None not in loads else "")
    return (f" The last `bench run` there (started {when}) took {minutes} min {secs} s wall clock for "
            f"{len(units)} unit(s){resumed}, each unit's process with its setup (`run.json`{busy}).")


def blocks(cfg: BenchConfig, parser: Callable[[], argparse.ArgumentParser] | None = None) -> dict[str, str]:
    """Every block's rendered Markdown, the tables from the run folder ``cfg.out_path``.

    ``parser`` builds the command line's parser for the ``cli`` block (``bench.cli.main`` hands
    in its own: this module is one of its subcommands and does not import it back); without it
    the ``cli`` block is not rendered.
    """
    from bench.data import dataset_info
    from bench.checks.seeds import class_diffs_table, class_table, comparisons_table, spread_table, summary_path
    from bench.report.results import load_results
    from bench.report.tables import build_tables

    if cfg.track == "refinement":
        return track_blocks(cfg)
    results = load_results(cfg)
    info = dataset_info(cfg)
    t1, t2, t3 = build_tables(cfg, info, results)
    out = {"provenance": provenance_text(cfg, results), "table1": to_markdown(t1), "table3": to_markdown(t3),
           "table2": to_markdown(select_columns(t2, TABLE2_COLUMNS))}
    path = summary_path(cfg.dataset)
    summary = json.loads(path.read_text()) if path.is_file() else None
    ref = None
    if summary is not None:
        from bench.weights import reference

        size = format_size(cfg.input_size)
        out["comparisons"] = comparisons_table(summary, size)
        units = [f"{m}@{size}" for m in ("downsample", "patching", "magnet_fast", "magnet_fast_paper", "magnet")]
        thin_classes = [c for c in THIN_CLASSES if c in info.class_names]
        out["thin_seeds"] = class_diffs_table(summary, f"magnet@{size}", f"patching@{size}", thin_classes)
        if cfg.reference_dir:  # these two compare with the reference weights' manifest
            ref = reference.load_manifest(REPO_DIR / cfg.reference_dir)
            out["seeds"] = spread_table(summary, ref, [f"{m}@{format_size(s)}" for m, s in cfg.units()])
            out["thin"] = class_table(summary, ref, units, thin_classes)
    for method in dict.fromkeys(m for m, _ in cfg.units()):
        out[f"method_{method}"] = method_text(cfg, t3, results, method, summary, ref)
    from bench.checks.drift import baseline_path

    if baseline_path(cfg.dataset).is_file():
        out["drift"] = drift_table(json.loads(baseline_path(cfg.dataset).read_text()))
    full = full_sweep_text(cfg)
    out["full"] = full if full is not None else (
        f"No published records of `make bench-full` (`{shown(Path(f'{cfg.out_path}-full'))}`): run `make bench-full`, "
        f"then `make publish`.\n")
    smoke = PUBLISHED_DIR / "smoke" / "smoke.md"  # bench.checks.smoke's output, copied by --publish
    out["smoke"] = smoke.read_text() if smoke.is_file() else (
        f"No published records of `make smoke` (`{shown(smoke)}`): run `make smoke`, then `make publish`.\n")
    out["cascadepsp"] = cascadepsp_text()
    from bench.report.big_tables import published_table

    out["big_published"] = to_markdown(published_table())  # cited rows (the spec's), typeset by the track's code
    if parser is not None:
        out["cli"] = cli_text(parser)
    perf_json = REPO_DIR / "results" / "perf" / "perf.json"  # python -m perf (make perf)
    if perf_json.is_file():
        from bench.report.perf_render import render as render_perf

        out["perf"] = render_perf(json.loads(perf_json.read_text()))
    thin = REPO_DIR / "results" / "thin" / f"{cfg.dataset}.json"
    if thin.is_file():
        out["thin_experiments"] = experiments_table(json.loads(thin.read_text()),
                                                    [c for c in THIN_CLASSES if c in info.class_names])
    return out


def method_text(cfg: BenchConfig, table3: Table, results: dict[tuple[str, str], Any], method: str,
                summary: dict[str, Any] | None, ref: dict[str, Any] | None) -> str:
    """A method page's numbers: its rows of Table 3 (the run in ``cfg.out_path``) and of the seed spread.

    The rows are found by the display name the records give the unit (``UnitResult.display``), a
    partial unit's row included (``Name (k of n images)``), and no other: ``MagNet-Fast (paper)`` is
    not a row of ``MagNet-Fast``.
    """
    size = format_size(cfg.input_size)
    unit = results.get((method, size))
    names = {unit.display} if unit is not None else set()
    own = [re.compile(rf"{re.escape(n)}( \(\d+ of \d+ images\))?") for n in names]  # a partial unit's row too
    rows = [i for i, row in enumerate(table3.rows) if row and any(p.fullmatch(row[0]) for p in own)]
    lines = [f"Rendered by `make readme` from the records of `make bench` in `{shown(cfg.out_path)}` "
             f"(machine, weights and run time: [the results page](../results.md)); the definitions are the notes "
             f"of Table 3 there.", ""]
    if rows:
        sub = Table(table3.name, table3.caption, table3.header, rows=[table3.rows[i] for i in rows],
                    bold={(rows.index(i), j) for i, j in table3.bold if i in rows})
        lines += to_markdown(sub).splitlines()[2:]  # the pipe table without Table 3's caption
    else:
        lines.append(f"No record of `{method}` at {size} in that run.")
    if summary is not None and ref is not None:
        from bench.checks.seeds import spread_table

        units = [f"{m}@{format_size(s)}" for m, s in cfg.units() if m == method]
        lines += ["", f"Over the seeds of `make seeds` (`{shown(REPO_DIR / 'results' / 'seeds')}`), with the reference "
                  f"weights' value first:", "", spread_table(summary, ref, units).rstrip()]
    return "\n".join(lines) + "\n"


def cascadepsp_text() -> str:
    """CascadePSP's own evaluation runs (``results/cascadepsp/{full,fast}``, committed): provenance and Table 3 each."""
    from bench.core.config import build
    from bench.data import dataset_info
    from bench.evaluation import run_folder
    from bench.report.results import load_results
    from bench.report.tables import build_tables

    parts = []
    for name, what in CASCADEPSP_RUNS:
        folder = REPO_DIR / "results" / "cascadepsp" / name
        run = run_folder.read(folder)
        if run is None:
            parts.append(f"No records in `{shown(folder)}`.\n")
            continue
        cfg = dataclasses.replace(build(run["config"]), out_dir=str(folder))
        results = load_results(cfg)
        table3 = build_tables(cfg, dataset_info(cfg), results)[2]
        command = f"bench run {cfg.dataset} methods=[{','.join(cfg.methods)}]"
        parts.append(f"*{name.capitalize()} mode ({what}).* " + provenance_text(cfg, results, command)
                     + "\n" + to_markdown(table3))
    return "\n".join(parts)


def full_sweep_text(cfg: BenchConfig) -> str | None:
    """The extended sweep's provenance and Table 3 (``make bench-full``: ``<out_dir>-full``), or None without its run.

    The run's own stored config (``run.json``) selects its records, so the methods it added (those
    too slow for the default sweep) are read from the folder, not from the Makefile.
    """
    from bench.evaluation import run_folder
    from bench.core.config import build
    from bench.data import dataset_info
    from bench.report.results import load_results
    from bench.report.tables import build_tables

    folder = Path(f"{cfg.out_path}-full")
    run = run_folder.read(folder)
    if run is None:
        return None
    full = dataclasses.replace(build(run["config"]), out_dir=str(folder))  # a published copy lies elsewhere
    results = load_results(full)
    added = [m for m in full.methods if m not in cfg.methods]
    table3 = build_tables(full, dataset_info(full), results)[2]
    return (provenance_text(full, results, "make bench-full")
            + f"\nMethods added to the default sweep: {', '.join(added) or 'none'}.\n\n" + to_markdown(table3))


def drift_table(spec: dict[str, Any]) -> str:
    """Markdown: per gate unit, the largest difference any kernel set made and the tolerance."""
    measured = spec.get("measured", {})
    sets = ", ".join(f"`{k}`" for k in measured.get("kernel_sets", {}))
    lines = [f"Kernel sets measured besides the native one: {sets or 'none'} (native: "
             f"{measured.get('native', {}).get('cpu', '?')}, ATen {measured.get('native', {}).get('aten_capability', '?')}). "
             f"Tolerance = {measured.get('factor', '?')} × the largest difference, at least the floors "
             f"{measured.get('floors', {})}.", "",
             "| Unit | mIoU: largest diff (pts) | tol (pts) | mBA: largest diff (pts) | tol (pts) | pixels moved: largest | tol |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    by_unit: dict[str, dict[str, dict[str, float]]] = {}
    for e in spec.get("entries", []):
        by_unit.setdefault(f"{e['method']}@{e['size']}", {})[e["metric"]] = e
    for unit, m in by_unit.items():
        cells = []
        for metric, scale in (("miou", 100), ("mba", 100), ("pixels", 1)):
            e = m.get(metric, {})
            fmt = "{:.4f}" if scale == 100 else "{:.0f}"
            cells += [fmt.format(scale * e.get("measured", float("nan"))), fmt.format(scale * e.get("tol_abs", float("nan")))]
        lines.append(f"| {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_into(text: str, rendered: dict[str, str], dataset: str | None = None) -> tuple[str, list[str]]:
    """``text`` with every known block replaced; also the names of blocks that had no rendering.

    With ``dataset``, only that dataset's blocks are rendered (``dataset:name`` blocks, and the
    unscoped ones when it is :data:`DEFAULT_DATASET`), looked up by their bare name; the others are
    left as they are and are not unknown. Without it every block is looked up by its full name.
    """
    unknown: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if dataset is not None:
            scope, _, bare = name.rpartition(":")
            if (scope or DEFAULT_DATASET) != dataset:
                return match.group(0)  # another dataset's block: its own `bench readme` renders it
            name = bare
        if name not in rendered:
            unknown.append(name)
            return match.group(0)
        return f"{match.group(1)}{rendered[name].rstrip()}\n{match.group(4)}"

    return BLOCK.sub(replace, text), unknown


def pages(root: Path = REPO_DIR) -> list[Path]:
    """The files that may hold blocks: README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def latest_images(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``recs`` with one image record per (unit key, image id): the last ok one, else the last one.

    The tables read the last ok record of an image and count an image as failed only when it was
    never ok (``bench.evaluation.records``), so this keeps what they read and drops the records a
    resumed or repeated run superseded. Other records keep their order.
    """
    last: dict[tuple[Any, Any], int] = {}
    for i, r in enumerate(recs):
        if r.get("type") == "image":
            key = (r.get("unit_key"), r.get("image_id"))
            if r.get("status") == "ok" or key not in last or recs[last[key]].get("status") != "ok":
                last[key] = i
    keep = set(last.values())
    return [r for i, r in enumerate(recs) if r.get("type") != "image" or i in keep]


def track_blocks(cfg: BenchConfig) -> dict[str, str]:
    """The blocks of a refinement-track config: ``provenance`` and one per track table (``track``,
    ``track_cost``, ...: :func:`bench.report.big_tables.track_tables`), from the run folder ``cfg.out_path``."""
    from types import SimpleNamespace

    from bench.evaluation import records, run_folder
    from bench.report.big_tables import track_tables, track_units

    units = track_units(cfg.out_path)
    out = {t.name: to_markdown(t) for t in track_tables(cfg, units)}
    keys = set(((run_folder.read(cfg.out_path) or {}).get("units") or {}).values())
    first = next((r for r in records.load(cfg.out_path) if r.get("type") == "image" and r.get("unit_key") in keys
                  and r.get("status", "ok") == "ok" and r.get("provenance")), None)
    # provenance_text reads one ok unit's first image record: hand it that record in the same shape
    results = {("", ""): SimpleNamespace(status="ok", images={"": first})} if first else {}
    out["provenance"] = provenance_text(cfg, results, command=f"make bench DATASET={cfg.dataset}")
    full = Path(f"{cfg.out_path}-full")  # make bench-full's run (the slow refiners too), when published
    full_run = run_folder.read(full)
    if full_run is not None:
        # its columns are its own sweep's methods (the default's plus FULL_METHODS)
        full_cfg = dataclasses.replace(cfg, methods=type(cfg.methods)(full_run["config"]["methods"]))
        for t in track_tables(full_cfg, track_units(full)):
            out[f"full_{t.name}"] = to_markdown(t)
    return out


def publish(cfg: BenchConfig, dest: Path = PUBLISHED_DIR) -> list[Path]:
    """Copy the run folders the pages render into ``dest`` (committed): ``make bench``'s, ``make bench-full``'s, smoke's.

    A run folder's copy holds its ``run.json`` and only the records of the units and images it
    names, one per image (:func:`latest_images`; a run folder's records file is append-only and may
    hold older runs), so the published copy renders exactly the tables the run folder renders.
    Returns the folders written.
    """
    from bench.evaluation import records, run_folder

    written = []
    for suffix in ("", "-full"):
        src = Path(f"{cfg.out_path}{suffix}")
        run = run_folder.read(src)
        if run is None or not run.get("units"):
            continue
        keys, ids = set(run["units"].values()), set(run.get("image_ids") or [])
        kept = latest_images([r for r in records.load(src) if r.get("unit_key") in keys
                              and (r.get("type") != "image" or not ids or r.get("image_id") in ids)])
        empty = sorted(u for u, k in run["units"].items() if not any(r.get("unit_key") == k for r in kept))
        if empty:  # run.json names keys its records do not carry: the code or config changed during the run
            raise UserError(f"{src}: no records under the key run.json gives {', '.join(empty)}; rerun the sweep "
                            f"(make bench) before publishing")
        folder = dest / f"{cfg.dataset}{suffix}"
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / run_folder.RUN_FILE).write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
        (tmp / "records.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # a kill leaves the old copy or the new one, never a mix
        written.append(folder)
    smoke = REPO_DIR / "results" / "smoke"  # bench.checks.smoke's default output folder
    if (smoke / "smoke.md").is_file():
        (dest / "smoke").mkdir(parents=True, exist_ok=True)
        for name in ("smoke.md", "smoke.jsonl"):
            if (smoke / name).is_file():
                shutil.copyfile(smoke / name, dest / "smoke" / name)
        written.append(dest / "smoke")
    return written


def stale_units(cfg: BenchConfig) -> list[str]:
    """The units of ``cfg`` whose current key differs from the one in its run folder's ``run.json``.

    The key hashes everything a unit's result depends on (method options and version, weight
    digests, data; ``bench.pipeline.unit``), so a published run that no longer matches the config
    says so here instead of rendering numbers ``make bench`` would no longer give.
    """
    from bench.evaluation import run_folder
    from bench.pipeline.runner import unit_label
    from bench.pipeline.unit import sweep_keys

    stored = (run_folder.read(cfg.out_path) or {}).get("units") or {}
    out = []
    for (name, size, source), key in sweep_keys(cfg).items():
        label = unit_label(name, size, source)
        if stored.get(label) != key:
            out.append(f"{label} (published {stored.get(label) or 'none'}, now {key})")
    return out


def main(args: Any) -> int:
    overrides = parse_overrides(args.overrides)
    cfg = load(args.dataset, overrides, args.config)
    if getattr(args, "publish", False):
        for folder in publish(cfg):
            print(f"[readme] published {folder}")
    if "out_dir" not in overrides:  # the pages show the published runs, which a fresh clone has too
        cfg = dataclasses.replace(cfg, out_dir=str(PUBLISHED_DIR / cfg.dataset))
        if not (cfg.out_path / "run.json").is_file():  # else every table would render as "not run"
            raise UserError(f"{shown(cfg.out_path)}: no published run of {cfg.dataset!r} to render; run "
                            f"`make bench DATASET={cfg.dataset}`, then `make publish DATASET={cfg.dataset}`")
    targets = [Path(args.readme)] if args.readme else pages()
    rendered = blocks(cfg, getattr(args, "parser_factory", None))
    differ, unknown_any = [], False
    for path in targets:
        old = path.read_text()
        new, unknown = render_into(old, rendered, None if args.readme else cfg.dataset)
        for name in unknown:
            unknown_any = True
            print(f"[readme] {shown(path)}: block {name!r} has nothing to render (no records or no such block)",
                  file=sys.stderr)
        if new != old:
            differ.append(path)
            if not args.check:
                path.write_text(new)
    if args.check:
        stale = stale_units(cfg)
        if stale:
            print(f"[readme] {shown(cfg.out_path)} is not what `make bench` evaluates today: {'; '.join(stale)}. "
                  f"Run `make bench`, `make publish`, `make readme`", file=sys.stderr)
        for path in differ:
            print(f"[readme] {shown(path)} differs from what the records render: run `make readme`", file=sys.stderr)
        if differ or unknown_any or stale:
            return 1
        print(f"[readme] {len(targets)} page(s) match the records")
        return 0
    n = sum(len(BLOCK.findall(p.read_text())) for p in targets)
    print(f"[readme] rendered {n} block(s) into {len(targets)} page(s) ({len(differ)} changed)")
    return 0


FALLBACK_HELP = {  # the shared positionals (bench.cli.common.dataset_args) carry no help of their own
    "dataset": "the dataset config: configs/datasets/<dataset>.yaml",
    "overrides": "key=value overrides of any config key (docs/reference/configuration.md)",
}


def html_text(text: str) -> str:
    """``text`` safe in Markdown outside code: ``<tables_dir>`` is not an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cli_text(parser: Callable[[], argparse.ArgumentParser]) -> str:
    """The command line's reference, read from the parser itself (``parser()``: ``bench.cli.main.parser``):
    every subcommand with its help line, its positional arguments and its options, in the order of ``--help``."""
    p = parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    lines = []
    for name, sp in sub.choices.items():
        what = html_text(helps.get(name, "").rstrip("."))
        lines += [f"### `{name}`", "", f"{what[:1].upper()}{what[1:]}.", "",
                  "| argument | default | what it is |", "|---|---|---|"]
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            arg = ", ".join(f"`{o}`" for o in a.option_strings) or f"`{a.metavar or a.dest}`"
            nargs = " ..." if a.nargs in ("*", "+", argparse.REMAINDER) else ""
            shown_default = a.default
            if isinstance(a.default, (str, Path)) and Path(a.default).is_absolute():  # the same on every clone
                shown_default = os.path.relpath(a.default, REPO_DIR)
            default = "" if a.default in (None, False, argparse.SUPPRESS) or a.nargs in ("*", "+") else f"`{shown_default}`"
            text = (a.help or FALLBACK_HELP.get(a.dest, "")).replace("%(default)s", str(shown_default))
            text = html_text(text).replace("|", "\\|").replace("\n", " ")
            if a.choices and not isinstance(a, argparse._SubParsersAction):
                text += f" (one of {', '.join(f'`{c}`' for c in a.choices)})"
            lines.append(f"| {arg}{nargs} | {default} | {text} |")
        lines.append("")
    return "\n".join(lines)
