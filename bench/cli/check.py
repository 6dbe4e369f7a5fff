"""``bench check NAME``: the method contract on a registered method."""

from __future__ import annotations

import argparse
from typing import Any

from bench.core.errors import UserError, one_line
from bench.cli.common import parse_cli_overrides


def run(args: argparse.Namespace) -> int:
    """The method contract on one registered method (``bench.checks.contract``)."""
    from bench.checks.contract import main as contract_main
    from bench.core.registry import MethodUnavailable

    try:
        return contract_main(args.method, parse_cli_overrides(args.options, check=False), device=args.device)
    except (KeyError, MethodUnavailable) as err:
        raise UserError(one_line(err.args[0] if err.args else str(err))) from err


def add_parser(sub: Any) -> None:
    chk = sub.add_parser("check", help="the method contract on a registered method, on tiny generated images")
    chk.add_argument("method")
    chk.add_argument("options", nargs="*", help="option=value of the method's Config (a short schedule: iterations=2)")
    chk.add_argument("--device", default="cpu")
    chk.set_defaults(fn=run)
