"""Old module paths of the flat layout (before the layer folders), importable for one more release.

``import bench.interface`` still works, warns once with :class:`MovedModuleWarning` (a
``FutureWarning``, shown by default) and gives the module at its new path. A moved package's
submodules follow (``bench.backbones.resnet`` -> ``bench.models.backbones.resnet``). The old
``bench.training`` and ``bench.cli`` modules are packages now: ``bench.training`` forwards the old
names itself; the command line is ``python -m bench`` as before. ``docs/moved.md`` lists the same
table for readers.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

# old dotted path -> new dotted path (a package's old prefix maps its submodules too)
MOVED = {
    "bench.backbones": "bench.models.backbones",
    "bench.checkpoint_meta": "bench.weights.sidecar",
    "bench.coarse": "bench.models.coarse",
    "bench.config": "bench.core.config",
    "bench.contract": "bench.checks.contract",
    "bench.data_types": "bench.core.data_types",
    "bench.datasets": "bench.data",
    "bench.distributed": "bench.runtime.distributed",
    "bench.drift": "bench.checks.drift",
    "bench.errors": "bench.core.errors",
    "bench.figures": "bench.report.figures",
    "bench.interface": "bench.core.interface",
    "bench.measure": "bench.runtime.measure",
    "bench.metrics": "bench.evaluation.metrics",
    "bench.new_method": "bench.cli.new_method",
    "bench.outcome": "bench.report.outcome",
    "bench.panels": "bench.report.panels",
    "bench.patches": "bench.core.patches",
    "bench.perf_render": "bench.report.perf_render",
    "bench.pickle_scan": "bench.models.pickle_scan",
    "bench.plots": "bench.report.plots",
    "bench.predictions": "bench.evaluation.predictions",
    "bench.procs": "bench.runtime.procs",
    "bench.readme": "bench.cli.readme_blocks",
    "bench.records": "bench.evaluation.records",
    "bench.reference": "bench.weights.reference",
    "bench.reference_cli": "bench.checks.reference_set",
    "bench.registry": "bench.core.registry",
    "bench.released": "bench.weights.released",
    "bench.results": "bench.report.results",
    "bench.run_folder": "bench.evaluation.run_folder",
    "bench.runner": "bench.pipeline.runner",
    "bench.score": "bench.report.score",
    "bench.seeds": "bench.checks.seeds",
    "bench.significance": "bench.evaluation.significance",
    "bench.smoke": "bench.checks.smoke",
    "bench.splits": "bench.data.splits",
    "bench.status": "bench.core.status",
    "bench.table_format": "bench.report.table_format",
    "bench.table_model": "bench.report.table_model",
    "bench.table_notes": "bench.report.table_notes",
    "bench.tables": "bench.report.tables",
    "bench.train_backbone": "bench.training.backbone",
    "bench.train_cli": "bench.pipeline.train",
    "bench.unit": "bench.pipeline.unit",
    "bench.validate": "bench.pipeline.validate",
    "magnet.profile": "perf.magnet_profile",
    "magnet.thin": "bench.checks.thin",
}


class MovedModuleWarning(FutureWarning):
    """An import by a path of the flat layout; the message names the new path."""


def new_name(old: str) -> str | None:
    """The new dotted path of ``old``, or None when ``old`` did not move."""
    if old in MOVED:
        return MOVED[old]
    head, _, tail = old.rpartition(".")
    while head:
        if head in MOVED:
            return f"{MOVED[head]}.{old[len(head) + 1:]}"
        head = head.rpartition(".")[0]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default: a fresh module, filled by exec_module

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(f"{module.__name__} moved to {self.new}; the old path goes in the next release",
                      MovedModuleWarning, stacklevel=2)
        real = importlib.import_module(self.new)
        keep = {"__name__", "__spec__", "__loader__", "__package__", "__path__", "__file__", "__cached__"}
        module.__dict__.update({k: v for k, v in real.__dict__.items() if k not in keep})
        if hasattr(real, "__path__"):
            module.__path__ = []  # type: ignore[attr-defined]  # submodules come through the finder too


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        is_package = importlib.util.find_spec(new) is not None and \
            importlib.util.find_spec(new).submodule_search_locations is not None  # type: ignore[union-attr]
        return importlib.util.spec_from_loader(fullname, _Alias(new), is_package=is_package)


def install() -> None:
    """Add the finder after the normal ones (a path that exists today is never aliased)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
