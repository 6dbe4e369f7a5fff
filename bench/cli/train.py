"""``bench train``: every checkpoint the sweep needs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.cli.run import train_missing_or_exit
from bench.cli.common import dataset_args, load_config, parse_cli_overrides


def run(args: argparse.Namespace) -> int:
    """Print the plan, then train what is missing; 130/143 when interrupted."""
    from bench.pipeline import plan
    from bench.pipeline.validate import check_run
    from bench.runtime import procs

    overrides = {"train": True, **parse_cli_overrides(args.overrides)}  # the training command trains
    cfg = load_config(args.dataset, overrides, args.config)
    check_run(cfg, data=False)  # the training split is opened only if something is trained
    with procs.exit_on_signals():
        try:
            cfg = plan.resolve(cfg)
            for line in plan.plan_lines(plan.build_plan(cfg)):
                print(f"[train] {line}", flush=True)
            if args.dry_run:
                return 0
            status = train_missing_or_exit(cfg)
        except procs.Interrupted as stop:
            print(f"[train] interrupted by {stop.name} (exit {stop.code}): the weights finished before it are kept; the same "
                  f"command trains the rest", file=sys.stderr)
            return stop.code
    return 1 if any(s == "missing" or s.startswith(("untrainable", "stale")) for s in status.values()) else 0


def add_parser(sub: Any) -> None:
    p = dataset_args(sub.add_parser("train", help="print the plan, then train every checkpoint the sweep needs"))
    p.add_argument("--dry-run", action="store_true", help="print the plan (what would be trained) and exit")
    p.set_defaults(fn=run)
