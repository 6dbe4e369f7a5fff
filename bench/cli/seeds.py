"""``bench seeds`` and ``bench train-check``: the spread over training seeds, the reference retrained."""

from __future__ import annotations

import argparse
from typing import Any
from bench.cli.common import dataset_args


def run_seeds(args: argparse.Namespace) -> int:
    from bench.checks.seeds import main as seeds_main

    return seeds_main(args)


def run_train_check(args: argparse.Namespace) -> int:
    from bench.checks.seeds import train_check

    return train_check(args)


def add_parser(sub: Any) -> None:
    se = dataset_args(sub.add_parser("seeds", help="train and evaluate with several seeds; the spread table"))
    se.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    se.add_argument("--render-only", action="store_true", help="render results/seeds/<dataset>.json, train nothing")
    se.set_defaults(fn=run_seeds)
    tc = dataset_args(sub.add_parser("train-check", help="retrain and compare with the reference manifest"))
    tc.add_argument("--staging", default=None, help="staging folder (default results/reference/<dataset>-check)")
    tc.set_defaults(fn=run_train_check)
