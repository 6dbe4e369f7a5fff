"""``bench score``: mIoU, per-class IoU and mBA recomputed from the records, nothing rerun."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from bench.cli.common import csv_list, dataset_args, dataset_read, parse_cli_overrides, run_config


def run(args: argparse.Namespace) -> int:
    from bench.report.score import run_score

    overrides = parse_cli_overrides(args.overrides)
    if args.absent:
        overrides["absent"] = args.absent
    args.overrides = overrides
    cfg = run_config(args)
    try:
        with dataset_read(f"scores of {cfg.dataset} need its class names"):
            text, results = run_score(cfg, csv_list(args.methods), csv_list(args.images), args.format)
    except ValueError as err:
        print(f"[bench] score: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    if not any(r.status == "ok" for r in results):
        print(f"[bench] score: no image records for these units in {cfg.out_path}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    sc = dataset_args(sub.add_parser("score", help="recompute mIoU, per-class IoU and mBA from the records, nothing rerun"))
    sc.add_argument("--methods", default=None, help="comma-separated method keys (default: all of the config's)")
    sc.add_argument("--images", default=None, help="comma-separated image ids (default: all recorded)")
    sc.add_argument("--absent", choices=("nan", "zero"), default=None, help="absent-class policy (default: the config's)")
    sc.add_argument("--format", choices=("md", "csv", "json"), default="md",
                    help="md: percentages; csv, json: fractions in [0, 1]")
    sc.set_defaults(fn=run)
