"""``bench reference``: train a dataset's reference weights, evaluate them, write the manifest."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.checks.reference_set import main as reference_main

    return reference_main(args)


def add_parser(sub: Any, command: str | None = None) -> None:
    """Register ``reference``; its arguments (``bench.checks.reference_set`` imports torch) only when it may run."""
    rf = sub.add_parser("reference", help="train the reference weights from scratch, evaluate, write the manifest")
    if command in (None, "reference"):
        from bench.checks.reference_set import add_arguments as reference_arguments

        reference_arguments(rf)
    rf.set_defaults(fn=run)
