"""One lazy registry class for methods, datasets and backbones: ``name -> "module:attr"``.

A :class:`Registry` holds strings only and imports a target when it is looked up, so that an
optional dependency costs nothing until its entry is chosen. Three instances exist:

- :data:`METHODS` (here): the built-in maps are the ``METHODS`` dicts of ``baselines/__init__.py``
  and ``magnet/__init__.py`` (plain dicts, read by name, nothing else imported). Third-party
  packages add methods through the entry-point group ``magnet_bench.methods``
  (``name = "package.module:Class"``), or without packaging through the environment variable
  ``MAGNET_BENCH_METHODS="name=module:Class;other=module:Class"``. A missing optional dependency
  shows up as :class:`MethodUnavailable` when the method is created, never at ``import bench``.
- ``bench.data.DATASETS`` and ``bench.models.backbones.BACKBONES``: built-in maps only.

The method packages sit above this layer; the registry reaches them through strings, as it
reaches every target, never through an import statement.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # bench.core.interface imports torch; the registry must not
    from bench.core.interface import Method

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
    """A registered entry (a method, or another kind) whose optional dependency is not installed."""


def import_target(target: str) -> Any:
    """The object named by ``"package.module:attr"`` (the module imported now)."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def suggest(name: str, names: Sequence[str]) -> str:
    """``"; did you mean 'a', 'b'?"`` for close matches of ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Registry:
    """Names mapped to ``"module:attr"`` strings, imported on :meth:`resolve`.

    Args:
        kind: what the entries are (``method``, ``dataset``, ``backbone``), for messages.
        builtin: the built-in map.
        builtin_from: more built-in maps, each named ``"package:ATTR"`` and read at first use.
        entry_point_group: the entry-point group plugins register in, or None.
        env_var: the environment variable that adds ``name=module:attr`` entries, or None.

    Iterating, ``len`` and ``in`` see every registered name, so a registry reads like the plain
    dict it replaces.
    """

    def __init__(self, kind: str, builtin: Mapping[str, str] | None = None, *, builtin_from: Sequence[str] = (),
                 entry_point_group: str | None = None, env_var: str | None = None) -> None:
        self.kind = kind
        self._builtin = dict(builtin or {})
        self._builtin_from = tuple(builtin_from)
        self.entry_point_group, self.env_var = entry_point_group, env_var

    def builtins(self) -> dict[str, str]:
        """The built-in entries, in declaration order."""
        out = dict(self._builtin)
        for where in self._builtin_from:
            out.update(import_target(where))
        return out

    def plugins(self) -> dict[str, str]:
        """Entries from the entry-point group, then from the environment variable (later wins).

        Raises:
            ValueError: a malformed environment entry.
        """
        found: dict[str, str] = {}
        if self.entry_point_group:
            found.update({ep.name: ep.value for ep in entry_points(group=self.entry_point_group)})
        for item in filter(None, os.environ.get(self.env_var, "").split(";") if self.env_var else ()):
            name, sep, target = item.partition("=")
            if not sep or ":" not in target:
                raise ValueError(f"{self.env_var} entries must be name=module:Class, got {item!r}")
            found[name.strip()] = target.strip()
        return found

    def paths(self) -> dict[str, str]:
        """Every entry: built-ins first; a plugin may not shadow a built-in name.

        Raises:
            ValueError: a plugin names a built-in with another target.
        """
        paths = self.builtins()
        for name, target in self.plugins().items():
            if name in paths and paths[name] != target:
                raise ValueError(f"entry point {name!r} -> {target!r} clashes with built-in {paths[name]!r}")
            paths[name] = target
        return paths

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch pattern, e.g. ``names("magnet*")``."""
        return sorted(n for n in self.paths() if fnmatch.fnmatchcase(n, pattern))

    def resolve(self, name: str) -> Any:
        """Import and return the object registered under ``name``.

        Raises:
            KeyError: unknown name (with suggestions and the list of known names).
            MethodUnavailable: the module needs a package that is not installed.
        """
        paths = self.paths()
        if name not in paths:
            raise KeyError(f"unknown {self.kind} {name!r}{suggest(name, sorted(paths))} known: {sorted(paths)}")
        module_name = paths[name].partition(":")[0]
        try:
            return import_target(paths[name])
        except ModuleNotFoundError as err:
            missing = (err.name or "").split(".")[0]
            if missing and not module_name.startswith(missing):
                pip_name = _PIP_NAMES.get(missing, missing)
                raise MethodUnavailable(
                    f"{self.kind} {name!r} unavailable: install {pip_name} (pip install {pip_name}); "
                    f"module {missing!r} is missing"
                ) from err
            raise

    def __contains__(self, name: object) -> bool:
        return name in self.paths()

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths())

    def __len__(self) -> int:
        return len(self.paths())


METHODS = Registry("method", builtin_from=("baselines:METHODS", "magnet:METHODS"),
                   entry_point_group=ENTRY_POINT_GROUP, env_var=ENV_VAR)


def method_paths() -> dict[str, str]:
    """All registered methods (:meth:`Registry.paths` of :data:`METHODS`)."""
    return METHODS.paths()


def list_methods(pattern: str = "*") -> list[str]:
    """Sorted method names matching an fnmatch pattern, e.g. ``list_methods("magnet*")``."""
    return METHODS.names(pattern)


def resolve(name: str) -> type[Method]:
    """Import and return the method class registered under ``name``.

    Raises:
        KeyError: unknown name (with suggestions and the list of known names).
        MethodUnavailable: the module needs a package that is not installed.
    """
    cls: type[Method] = METHODS.resolve(name)
    return cls
