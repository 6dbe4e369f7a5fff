"""``bench readme``: the result blocks of README.md and docs/*.md rendered from records (``bench.cli.readme_blocks``)."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.common import dataset_args


def run(args: argparse.Namespace) -> int:
    from bench.cli.readme_blocks import main as render

    return render(args)


def add_parser(sub: Any) -> None:
    rd = dataset_args(sub.add_parser("readme", help="render the result blocks of README.md and docs/ from records"))
    rd.add_argument("--check", action="store_true",
                    help="exit 1 if a page differs from the rendering or holds a block nothing renders")
    rd.add_argument("--publish", action="store_true",
                    help="first copy the run folders of make bench (and bench-full, smoke) into results/published/")
    rd.add_argument("--readme", default=None, help="the one file to render into (default: README.md and docs/**/*.md)")
    rd.set_defaults(fn=run)
