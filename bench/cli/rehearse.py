"""``bench rehearse``: the mission's command at real scale on generated (or given) files, time and memory per stage."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.checks.rehearse import run as run_rehearsal

    return run_rehearsal(args)


def add_parser(sub: Any) -> None:
    from bench.checks.rehearse import add_arguments

    p = sub.add_parser("rehearse", help="bench run DATASET train=true at real size on generated files in the real "
                                        "layout (short schedules); time and peak memory per stage")
    add_arguments(p)
    p.set_defaults(fn=run)
