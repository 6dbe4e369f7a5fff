"""``bench drift``: the metric drift gate on the reference weights."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.checks.drift import run_drift

    return run_drift(args.dataset, update=args.update, values=args.values, measure=args.measure)


def add_parser(sub: Any) -> None:
    d = sub.add_parser("drift", help="evaluate the reference weights on a small subset, compare with results/baselines")
    d.add_argument("dataset", nargs="?", default="synthetic")
    d.add_argument("--update", action="store_true", help="store the current values as expected (tolerances kept)")
    d.add_argument("--measure", action="store_true",
                   help="rewrite the baseline: values from this CPU, tolerances measured under every kernel set")
    d.add_argument("--values", default=None, help="(internal) write this run's unit values as JSON, compare nothing")
    d.set_defaults(fn=run)
