"""Lazy method registry: ``name -> "module:Class"``, imported only when a method is chosen.

Built-in maps live in ``baselines/__init__.py`` and ``magnet/__init__.py`` (plain dicts, nothing
imported). Third-party packages add methods through the entry-point group
``magnet_bench.methods`` (``name = "package.module:Class"``), or without packaging through the
environment variable ``MAGNET_BENCH_METHODS="name=module:Class;other=module:Class"``. A missing optional dependency shows
up as :class:`MethodUnavailable` when the method is created, never at ``import bench``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bench.interface imports torch; the registry must not
    from bench.interface import Method

ENTRY_POINT_GROUP = "magnet_bench.methods"
ENV_VAR = "MAGNET_BENCH_METHODS"

# Which pip package provides an importable module, for the "install ..." hint.
_PIP_NAMES = {
    "pydensecrf": "pydensecrf2",
    "cv2": "opencv-contrib-python-headless",
    "mmseg": "onedl-mmsegmentation",
    "mmcv": "onedl-mmcv",
    "mmengine": "onedl-mmengine",
}


class MethodUnavailable(RuntimeError):
    """A registered method whose optional dependency is not installed."""


def _builtin() -> dict[str, str]:
    from baselines import METHODS as base
    from magnet import METHODS as mag

    return {**base, **mag}


def _plugins() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for item in filter(None, os.environ.get(ENV_VAR, "").split(";")):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise ValueError(f"{ENV_VAR} entries must be name=module:Class, got {item!r}")
        found[name.strip()] = target.strip()
    return found


def method_paths() -> dict[str, str]:
    """All registered methods: built-ins first; a plugin may not shadow a built-in name."""
    paths = _builtin()
    for name, target in _plugins().items():
        if name in paths and paths[name] != target:
            raise ValueError(f"entry point {name!r} -> {target!r} clashes with built-in {paths[name]!r}")
        paths[name] = target
    return paths


def list_methods(pattern: str = "*") -> list[str]:
    """Sorted method names matching an fnmatch pattern, e.g. ``list_methods("magnet*")``."""
    return sorted(n for n in method_paths() if fnmatch.fnmatchcase(n, pattern))


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def resolve(name: str) -> type[Method]:
    """Import and return the class registered under ``name``.

    Raises:
        KeyError: unknown name (with suggestions and the list of known names).
        MethodUnavailable: the module needs a package that is not installed.
    """
    paths = method_paths()
    if name not in paths:
        raise KeyError(f"unknown method {name!r}{_suggest(name, sorted(paths))} known: {sorted(paths)}")
    module_name, _, attr = paths[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing and not module_name.startswith(missing):
            pip_name = _PIP_NAMES.get(missing, missing)
            raise MethodUnavailable(
                f"method {name!r} unavailable: install {pip_name} (pip install {pip_name}); "
                f"module {missing!r} is missing"
            ) from err
        raise
    return getattr(module, attr)
