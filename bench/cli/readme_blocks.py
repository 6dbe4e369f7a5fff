"""``python -m bench readme``: the README's result blocks, rendered from records (never typed by hand).

A block is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in README.md:

- ``provenance``: which machine ran the records and which weights they used;
- ``table3``, ``table1``, ``table2``: the tables of ``make bench`` (from its records in
  ``out_dir``; Table 2 as an excerpt of :data:`TABLE2_COLUMNS`);
- ``seeds``, ``comparisons``, ``thin``, ``thin_seeds``: the spread over seeds (``results/seeds/<dataset>.json``);
- ``drift``: the drift gate's measured kernel-set differences and tolerances
  (``results/baselines/<dataset>.json``);
- ``full``: the extended sweep of ``make bench-full`` (``<out_dir>-full``): provenance and Table 3;
- ``smoke``: the tables of ``make smoke`` (``results/smoke/smoke.md``, rendered from its records);
- ``thin_experiments``: the thin-class experiments of ``python -m bench.checks.thin``
  (``results/thin/<dataset>.json``);
- ``perf``: the same-run speed comparisons of ``python -m perf`` (``results/perf/perf.json``).

``--check`` renders without writing and exits 1 when the README differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR, BenchConfig, format_size, parse_overrides
from bench.pipeline.configure import load
from bench.checks.thin import THIN_CLASSES, experiments_table
from bench.report.table_model import Table
from bench.report.table_format import to_markdown

TABLE2_COLUMNS = ("Method", "mBA (%)", "mIoU (%)", "sidewalk", "wall", "pole", "traffic light", "traffic sign", "person",
                  "motorcycle", "bicycle")
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


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
    return (f"Rendered by `make readme` from the records of `{command}` in `{cfg.out_path}`: run on "
            f"{prov.get('cpu', '?')} ({prov.get('cpu_count', '?')} cores, {prov.get('threads', '?')} thread(s)), "
            f"torch {prov.get('versions', {}).get('torch', '?')}, git {str(prov.get('git_sha'))[:10]}, with {weights}."
            f"{timing_text(cfg)}\n")


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


def blocks(cfg: BenchConfig) -> dict[str, str]:
    """Every block's rendered Markdown."""
    import json

    from bench.data import dataset_info
    from bench.checks.seeds import class_diffs_table, class_table, comparisons_table, spread_table, summary_path
    from bench.report.results import load_results
    from bench.report.tables import build_tables

    results = load_results(cfg)
    info = dataset_info(cfg)
    t1, t2, t3 = build_tables(cfg, info, results)
    out = {"provenance": provenance_text(cfg, results), "table1": to_markdown(t1), "table3": to_markdown(t3),
           "table2": to_markdown(select_columns(t2, TABLE2_COLUMNS))}
    path = summary_path(cfg.dataset)
    if path.is_file():
        from bench.weights import reference

        summary = json.loads(path.read_text())
        size = format_size(cfg.input_size)
        out["comparisons"] = comparisons_table(summary, size)
        units = [f"{m}@{size}" for m in ("downsample", "patching", "magnet_fast", "magnet_fast_paper", "magnet")]
        thin_classes = [c for c in THIN_CLASSES if c in info.class_names]
        out["thin_seeds"] = class_diffs_table(summary, f"magnet@{size}", f"patching@{size}", thin_classes)
        if cfg.reference_dir:  # these two compare with the reference weights' manifest
            ref = reference.load_manifest(REPO_DIR / cfg.reference_dir)
            out["seeds"] = spread_table(summary, ref, [f"{m}@{format_size(s)}" for m, s in cfg.units()])
            out["thin"] = class_table(summary, ref, units, thin_classes)
    from bench.checks.drift import baseline_path

    if baseline_path(cfg.dataset).is_file():
        out["drift"] = drift_table(json.loads(baseline_path(cfg.dataset).read_text()))
    full = full_sweep_text(cfg)
    if full is not None:
        out["full"] = full
    smoke = Path("results/smoke/smoke.md")  # bench.checks.smoke's default output folder
    if smoke.is_file():
        out["smoke"] = smoke.read_text()
    perf_json = REPO_DIR / "results" / "perf" / "perf.json"  # python -m perf (make perf)
    if perf_json.is_file():
        from bench.report.perf_render import render as render_perf

        out["perf"] = render_perf(json.loads(perf_json.read_text()))
    thin = REPO_DIR / "results" / "thin" / f"{cfg.dataset}.json"
    if thin.is_file():
        out["thin_experiments"] = experiments_table(json.loads(thin.read_text()),
                                                    [c for c in THIN_CLASSES if c in info.class_names])
    return out


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

    run = run_folder.read(Path(f"{cfg.out_path}-full"))
    if run is None:
        return None
    full = build(run["config"])
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


def render_into(text: str, rendered: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every known block replaced; also the names of blocks that had no rendering."""
    unknown: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in rendered:
            unknown.append(name)
            return match.group(0)
        return f"{match.group(1)}{rendered[name].rstrip()}\n{match.group(4)}"

    return BLOCK.sub(replace, text), unknown


def main(args: Any) -> int:
    cfg = load(args.dataset, parse_overrides(args.overrides), args.config)
    path = Path(args.readme) if args.readme else REPO_DIR / "README.md"
    old = path.read_text()
    new, unknown = render_into(old, blocks(cfg))
    for name in unknown:
        print(f"[readme] block {name!r} has nothing to render (missing records?); left as it is", file=sys.stderr)
    if args.check:
        if new != old:
            print(f"[readme] {path} differs from what the records render: run `make readme`", file=sys.stderr)
            return 1
        print(f"[readme] {path} matches the records")
        return 0
    path.write_text(new)
    print(f"[readme] rendered {len(BLOCK.findall(new))} block(s) into {path}")
    return 0
