"""``bench unit``: (internal) one method x size in this process, as the sweep's worker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.core.config import parse_size
    from bench.pipeline.runner import config_from_file, run_unit

    status = run_unit(config_from_file(args.config_json), args.method, parse_size(args.size), args.source)
    if args.status_file:  # the sweep reads the unit's status here (the exit code only says it ran to the end)
        Path(args.status_file).write_text(status + "\n")
    from bench.core.status import HANDLED

    return 0 if status in HANDLED else 1


def add_parser(sub: Any) -> None:
    u = sub.add_parser("unit", help="(internal) one method x size in this process")
    u.add_argument("config_json")
    u.add_argument("method")
    u.add_argument("size")
    u.add_argument("--status-file", default=None, help="write the unit's status to this file")
    u.add_argument("--source", default="backbone", help="the coarse source (default: the backbone's coarse pass)")
    u.set_defaults(fn=run)
