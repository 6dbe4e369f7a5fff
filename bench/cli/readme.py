"""``bench readme``: the README's result blocks rendered from records (the rendering: ``bench.cli.readme_blocks``)."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.common import dataset_args


def run(args: argparse.Namespace) -> int:
    from bench.cli.readme_blocks import main as render

    return render(args)


def add_parser(sub: Any) -> None:
    rd = dataset_args(sub.add_parser("readme", help="render the README's result blocks from records"))
    rd.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the rendering")
    rd.add_argument("--readme", default=None, help="the file to render into (default README.md)")
    rd.set_defaults(fn=run)
