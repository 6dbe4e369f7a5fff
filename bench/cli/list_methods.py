"""``bench list``: the registered methods."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.core.registry import MethodUnavailable, list_methods, resolve

    for name in list_methods(args.pattern):
        try:
            cls = resolve(name)
            print(f"{name:16s} {cls.display_name}")
        except MethodUnavailable as err:
            print(f"{name:16s} {err}")
    return 0


def add_parser(sub: Any) -> None:
    ls = sub.add_parser("list", help="registered methods")
    ls.add_argument("pattern", nargs="?", default="*")
    ls.set_defaults(fn=run)
