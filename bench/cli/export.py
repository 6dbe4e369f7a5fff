"""``bench export OUT_DIR [OUT_DIR ...] --format csv|parquet|json``: one row per result of run folders
(``bench.report.export``), written beside the first run (``<OUT_DIR>/export/``) or into ``--output``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.cli.common import dataset_read
    from bench.report.export import export

    where = Path(args.output) if args.output else Path(args.out_dirs[0]) / "export"
    with dataset_read("export needs each run's class names"):
        path = export(args.out_dirs, where, args.format, args.name)
    print(f"[bench] export: {path}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="one row per (dataset, split, method, size, mIoU variant) as csv, parquet or "
                                      "versioned json, with time, memory and provenance")
    p.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="run folders (the out_dir of a bench run)")
    p.add_argument("--format", choices=("csv", "parquet", "json"), default="csv", help="file format (default csv)")
    p.add_argument("--output", default=None, help="folder to write into (default: OUT_DIR/export of the first run)")
    p.add_argument("--name", default=None,
                   help="file name (default results-<dataset>-<split>-pt<torch>-<device>.<format>)")
    p.set_defaults(fn=run)
