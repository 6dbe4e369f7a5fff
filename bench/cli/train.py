"""``bench train``: every checkpoint the sweep needs."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.run import train_missing_or_exit
from bench.cli.common import dataset_args, load_config, parse_cli_overrides


def run(args: argparse.Namespace) -> int:
    from bench.pipeline.validate import check_run

    overrides = {"train": True, **parse_cli_overrides(args.overrides)}  # the training command trains
    cfg = load_config(args.dataset, overrides, args.config)
    check_run(cfg, data=False)  # the training split is opened only if something is trained
    status = train_missing_or_exit(cfg)
    return 1 if any(s == "missing" or s.startswith(("untrainable", "stale")) for s in status.values()) else 0


def add_parser(sub: Any) -> None:
    dataset_args(sub.add_parser("train", help="train every checkpoint the sweep needs")).set_defaults(fn=run)
