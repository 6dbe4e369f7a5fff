"""``bench batch-sweep``: the sweep once per batch setting, then the time-memory trade-off table (issue 21, item 9)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from bench.core.errors import UserError


def _batches(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise UserError(f"--batches: expected comma-separated ints >= 1 (e.g. 1,4,16), got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from bench.core.batch import batch_overrides
    from bench.core.config import format_size
    from bench.report.batch_table import batch_config, write_batch_table
    from bench.cli.common import load_config, parse_cli_overrides

    batches = _batches(args.batches)
    base = load_config(args.dataset, list(args.overrides))
    rc = 0
    if not args.table_only:
        for b in batches:
            cfg = batch_config(args.dataset, b, parse_cli_overrides(list(args.overrides)))
            argv = [sys.executable, "-m", "bench", "run", args.dataset, *args.overrides,
                    *batch_overrides(base.methods, b), f"out_dir={cfg.out_dir}"]
            print(f"[batch] {b} item(s) per forward: {' '.join(argv[3:])}", file=sys.stderr, flush=True)
            rc = max(rc, subprocess.call(argv))
    for path in write_batch_table(args.dataset, batches, list(args.overrides))[:1]:
        print(f"[batch] table: {path} (input size {format_size(base.input_size)})", file=sys.stderr)
    return rc


def add_parser(sub: Any) -> None:
    p = sub.add_parser("batch-sweep", help="the sweep at several batch settings (--batches 1,4,16), then the "
                                           "time-memory trade-off table")
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--batches", default="1,4,16", help="comma-separated items per forward (default 1,4,16)")
    p.add_argument("--table-only", action="store_true", help="only render the table from the run folders")
    p.set_defaults(fn=run)
