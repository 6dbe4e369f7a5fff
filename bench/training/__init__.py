"""Training: the loop every trainer shares (``loop``), resumable states (``resume``) and the
backbone's training (``backbone``).

Methods train through :mod:`bench.training.loop` and write their resume states through
:mod:`bench.training.resume` (see docs/training.md). Before the layer folders this package was one
module, ``bench.training``; its names still resolve here for one more release, with a
:class:`bench._moved.MovedModuleWarning` naming the new place.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    loop = importlib.import_module("bench.training.loop")
    if not hasattr(loop, name):
        raise AttributeError(f"module 'bench.training' has no attribute {name!r}")
    from bench._moved import MovedModuleWarning

    warnings.warn(f"bench.training.{name} moved to bench.training.loop.{name}; the old path goes in the next release",
                  MovedModuleWarning, stacklevel=2)
    return getattr(loop, name)
