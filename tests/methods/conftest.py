"""``pytest tests/methods --method NAME``: the method contract on the named methods only (plugins too)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--method", action="append", default=None, metavar="NAME",
                     help="put only this registered method through the contract (repeatable); default: every one")
