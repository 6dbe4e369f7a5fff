"""``bench run``: check the config, train what is missing, sweep, render tables and figures."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from bench.core.errors import UserError, one_line
from bench.cli.common import command_config, dataset_args


def run(args: argparse.Namespace) -> int:
    """Check, plan, then train what is missing and sweep; 2 for bad input, 130/143 when interrupted."""
    from bench.pipeline.validate import check_out_dir, check_run
    from bench.runtime import procs

    cfg = command_config(args)
    with procs.exit_on_signals():
        try:
            check_out_dir(cfg)  # before the checks that import torch: a folder typo costs a second
            check_run(cfg)  # names, options, device and data folder, before any training or file write
            cfg = plan_or_stop(cfg, args)
            if cfg is None:
                return 2
            if args.dry_run:
                return 0
            return _run(cfg)
        except procs.Interrupted as stop:
            return interrupted(stop, cfg)


def plan_or_stop(cfg, args: argparse.Namespace):  # noqa: ANN001, ANN201
    """Print the plan (rank 0); None when a unit lacks weights while train is off (each named, one line each)."""
    from bench.pipeline import plan
    from bench.runtime import distributed

    cfg = plan.resolve(cfg)
    the_plan = plan.build_plan(cfg)
    main = distributed.env_world()[0] == 0
    if main:
        for line in plan.plan_lines(the_plan):
            print(f"[bench] {line}", flush=True)
    blocked = plan.blocking_lines(the_plan, plan.command_words(args))
    if blocked:
        if main:
            for line in blocked:
                print(f"[bench] error: {line}", file=sys.stderr)
            print(f"[bench] error: {len(blocked)} unit(s) lack weights and train is off: nothing was run and no "
                  f"table was written", file=sys.stderr)
        return None
    return cfg


def interrupted(stop, cfg) -> int:  # noqa: ANN001
    """One line for Ctrl-C or SIGTERM: what is kept and how to go on; returns 128 + the signal's number."""
    from bench.evaluation import records

    try:
        kept = sum(1 for r in records.load(cfg.out_path) if r.get("type") == "image")
    except Exception:  # noqa: BLE001 - the count is a courtesy; the line must print
        kept = None
    done = f"{kept} image record(s) kept in {cfg.out_path}" if kept is not None else f"records in {cfg.out_path}"
    print(f"[bench] interrupted by {stop.name} (exit {stop.code}): {done}; the same command resumes where it stopped", file=sys.stderr)
    return stop.code


def _run(cfg) -> int:  # noqa: ANN001
    from bench.runtime import distributed, procs  # after the checks: distributed imports torch (seconds)
    from bench.evaluation import run_folder

    distributed.init(cfg.device)  # under torchrun: join the ranks (each sweeps its shard of the images)
    # rank 0 holds the out_dir lock for the run; the other ranks write only their own record files
    lock = procs.out_dir_lock(cfg.out_path) if distributed.is_main() else contextlib.nullcontext(None)
    with lock as lock_fd:
        if lock_fd is not None:
            procs.clean_stale_temp(cfg.out_path)
            run_folder.write(cfg)  # the config now; the sweep adds its unit keys and image ids
        return _run_locked(cfg, lock_fd)


def _run_locked(cfg, lock_fd: int | None) -> int:  # noqa: ANN001
    """Train what is missing, sweep, render; the last line counts the units by outcome."""
    from bench.runtime import distributed
    from bench.report.outcome import exit_code, problem_lines, summary_line
    from bench.pipeline.runner import run_sweep
    from bench.report.results import load_results
    from bench.report.tables import render

    status = train_missing_or_exit(cfg)
    if status.get("backbone") == "missing" and distributed.is_main():
        print(f"[bench] backbone weights missing at {cfg.backbone_path}; units needing them are recorded as such",
              file=sys.stderr)
    results = distributed.gather_results(run_sweep(cfg, lock_fd=lock_fd))  # waits for every rank
    if results is None:  # not rank 0: rank 0 renders the tables from every rank's records
        return 0
    if cfg.track == "refinement":  # the track's own tables (papers' layout); the semantic ones do not apply
        return _track_outcome(cfg)
    aggregates = load_results(cfg)  # read once, for the tables and the plots
    paths = render(cfg, aggregates)
    print(f"[bench] records in {cfg.out_path}")
    print(f"[bench] tables: {paths[0]} (and .md/.tex per table in {cfg.tables_path})")
    figures = render_figures_or_report(cfg, aggregates)
    from bench.cli.report import after_run  # the page embeds the figures: after them

    figures = max(figures, after_run(cfg, aggregates))
    for line in problem_lines(aggregates):
        print(f"[bench] {line}", file=sys.stderr)
    print(f"[bench] {summary_line(aggregates)}")
    return max(figures, exit_code(aggregates))


def _track_outcome(cfg) -> int:  # noqa: ANN001
    """Write the refinement track's tables; one line per unit that is not ok; 0 when every unit is ok, else 1."""
    from bench.report.big_tables import render_track, track_units

    paths = render_track(cfg)
    print(f"[bench] records in {cfg.out_path}")
    print(f"[bench] tables: {paths[0]} (and .md/.tex per table in {cfg.tables_path})")
    units = track_units(cfg.out_path)
    bad = [u for u in units if u.status != "ok"]
    for u in bad:
        print(f"[bench] {u.method} @ {u.size} on {u.source}: {u.status}", file=sys.stderr)
    print(f"[bench] {len(units)} units: {len(units) - len(bad)} ok, {len(bad)} not ok")
    return 1 if bad else 0


def train_missing_or_exit(cfg) -> dict[str, str]:  # noqa: ANN001
    """``train_missing``; a missing or malformed training split is the user's to fix."""
    from bench.data.base import DataFormatError
    from bench.pipeline.runner import train_missing

    try:
        return train_missing(cfg)
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(f"training data ({cfg.train_split} split): {one_line(str(err))}") from err


def render_figures_or_report(cfg, aggregates=None) -> int:  # noqa: ANN001
    """Plots and panels after the tables; a failure is reported (traceback) and exits 1."""
    import traceback

    from bench.report.figures import render_figures

    try:
        figures = render_figures(cfg, aggregates)
    except Exception:  # noqa: BLE001 - records and tables are written; say clearly that figures are not
        print(f"[bench] FIGURES FAILED (records and tables are fine):\n{traceback.format_exc()}", file=sys.stderr)
        return 1
    for note in figures.notes:
        print(f"[bench] figures: {note}", file=sys.stderr)
    print(f"[bench] figures: {len(figures.files)} PNG(s) in {cfg.tables_path}/plots and {cfg.tables_path}/panels")
    return 0


def add_parser(sub: Any) -> None:
    from bench.cli.keys import run_epilog  # the keys' meanings from the config dataclasses (no torch)

    p = dataset_args(sub.add_parser("run", help="print the plan, train what is missing, sweep, write tables",
                                    epilog=run_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--dry-run", action="store_true", help="print the plan (units, weights, estimates) and exit")
    p.set_defaults(fn=run)
