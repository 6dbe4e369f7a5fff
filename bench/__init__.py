"""magnet-bench: benchmark harness for refining semantic segmentation of high-resolution images.

Public API (docs/api/index.md): ``create_method`` (a method by registry key, with its weights),
``evaluate`` (``bench run`` from Python: timing, memory, records, resume; returns the tables
``bench table`` prints), ``list_methods`` (lazy registry), ``load_config``, ``load_records``, and the
metrics as pure functions on NumPy arrays: ``confusion_matrix``, ``iou_per_class``, ``mean_iou``,
the named mIoU variants (``metric_variant``, ``miou_2class``, ``iou_building``, ``miou_mmseg``),
mBA (``boundary_accuracy``, ``boundary_accuracy_radii``) and Boundary IoU (``boundary_iou``).
Importing ``bench`` imports neither torch nor any optional dependency: the names that need them
load on first use.
"""

from typing import Any

from bench import _moved
from bench.pipeline.configure import load as load_config
from bench.evaluation.records import load as load_records
from bench.core.registry import MethodUnavailable, list_methods

# name -> "module:attr", imported on first access (torch, OpenCV and the sweep stay unimported until then)
_LAZY = {
    "create_method": "bench.pipeline.unit:create_method",
    "evaluate": "bench.report.evaluate:evaluate",
    "Evaluation": "bench.report.evaluate:Evaluation",
    **{name: f"bench.evaluation.metrics:{name}" for name in (
        "confusion_matrix", "iou_per_class", "mean_iou", "metric_variant", "miou_2class", "iou_building",
        "miou_mmseg", "boundary_accuracy", "boundary_accuracy_radii", "MIOU_VARIANTS")},
    "boundary_iou": "bench.evaluation.boundary:boundary_iou",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


_moved.install()  # old module paths of the flat layout keep importing, with a warning (bench._moved)

__all__ = ["MethodUnavailable", "create_method", "evaluate", "Evaluation", "list_methods", "load_config",
           "load_records", *(n for n in _LAZY if n not in ("create_method", "evaluate", "Evaluation"))]
__version__ = "0.1.0"
