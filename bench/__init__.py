"""magnet-bench: benchmark harness for refining semantic segmentation of high-resolution images.

Public API: ``create_method``, ``list_methods`` (lazy registry), ``load_config``, ``load_records``,
and the metric functions in ``bench.evaluation.metrics``. Importing ``bench`` imports no optional dependency.
"""

from bench import _moved
from bench.pipeline.configure import load as load_config
from bench.evaluation.records import load as load_records
from bench.core.registry import MethodUnavailable, list_methods


def __getattr__(name: str):  # noqa: ANN202 - ``create_method`` lives in bench.pipeline.unit, which imports torch
    if name == "create_method":
        from bench.pipeline.unit import create_method

        return create_method
    raise AttributeError(f"module 'bench' has no attribute {name!r}")

_moved.install()  # old module paths of the flat layout keep importing, with a warning (bench._moved)

__all__ = ["MethodUnavailable", "create_method", "list_methods", "load_config", "load_records"]
__version__ = "0.1.0"
