"""``bench table``: tables rendered from a run's records."""

from __future__ import annotations

import argparse
from typing import Any
from bench.cli.common import dataset_args, dataset_read, run_config


def run(args: argparse.Namespace) -> int:
    from bench.report.tables import render

    cfg = run_config(args)
    if cfg.track == "refinement":  # the refinement track's tables, from the run folder's records alone
        from bench.report.big_tables import render_track

        paths = render_track(cfg)
        print(paths[0].read_text())
        return 0
    with dataset_read(f"tables of {cfg.dataset} need its class names"):
        paths = render(cfg)
    print(paths[0].read_text())
    return 0


def add_parser(sub: Any) -> None:
    dataset_args(sub.add_parser("table", help="render tables from records")).set_defaults(fn=run)
