"""``bench smoke``: every registered method once on the real samples, at native size."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.checks.smoke import run as run_smoke

    return run_smoke(args)


def add_parser(sub: Any) -> None:
    from bench.checks.smoke import add_arguments as smoke_arguments

    sm = sub.add_parser("smoke", help="every method once on the real samples of ../shared/data, at native size")
    smoke_arguments(sm)
    sm.set_defaults(fn=run)
