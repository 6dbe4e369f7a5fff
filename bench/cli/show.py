"""``bench show``: panels from saved label maps, and the plots."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from bench.cli.common import csv_list, dataset_args, dataset_read, run_config


def run(args: argparse.Namespace) -> int:
    from bench.core.config import parse_size
    from bench.report.panels import MissingPredictions, parse_crop, render_panels
    from bench.report.plots import render_plots

    cfg = run_config(args)
    try:
        with dataset_read(f"panels of {cfg.dataset} need its images and class names"):
            panels = render_panels(cfg, csv_list(args.images), csv_list(args.methods),
                                   parse_size(args.size) if args.size else None,
                                   parse_crop(args.crop) if args.crop else None, n_crops=args.crops,
                                   layout=args.layout)
    except (MissingPredictions, KeyError, ValueError) as err:
        print(f"[bench] show: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    files, notes = render_plots(cfg)
    for note in notes:
        print(f"[bench] show: {note}", file=sys.stderr)
    for path in panels.files + files:
        print(path)
    return 0


def add_parser(sub: Any) -> None:
    sh = dataset_args(sub.add_parser("show", help="panels from saved label maps, and the plots; "
                                                  "into <tables_dir>/{panels,plots}"))
    sh.add_argument("--images", default=None, help="comma-separated image ids (default: the first save_predictions)")
    sh.add_argument("--methods", default=None, help="comma-separated method keys, in column order (default: the config's)")
    sh.add_argument("--size", default=None, help="input size WxH of the units shown (default: input_size)")
    sh.add_argument("--crop", default=None, help="x,y,w,h in full-resolution pixels (default: chosen where methods disagree)")
    sh.add_argument("--crops", type=int, default=2, help="number of automatically chosen crops per image")
    sh.add_argument("--layout", choices=("crops", "grid", "both"), default="crops",
                    help="crops: one screen-wide PNG per crop (<id>.crop<k>.png); grid: every crop of an image in "
                         "one PNG (<id>.png); both")
    sh.set_defaults(fn=run)
