"""Datasets: a plain name -> ``"module:Class"`` map, imported only when a dataset is built.

Every dataset yields :class:`bench.interface.Sample` (image (H, W, 3) uint8 RGB, label (H, W)
uint8) lazily, one file pair or one generated scene per item, and carries ``info``
(:class:`bench.interface.DatasetInfo`), ``ids()`` and ``image_size`` (nominal (w, h) or None).

Real formats read a user-given root and fail with the expected layout when it is missing or
incomplete; the synthetic ones are generated from a seed and need no files.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.data_types import Dataset, DatasetInfo

DATASETS: dict[str, str] = {
    "cityscapes": "bench.datasets.cityscapes:Cityscapes",
    "deepglobe": "bench.datasets.deepglobe:DeepGlobe",
    "folder": "bench.datasets.folder:Folder",
    "gleason": "bench.datasets.gleason:Gleason",
    "inria": "bench.datasets.inria:InriaAerial",
    "synthetic": "bench.datasets.synthetic_streets:SyntheticStreets",
    "synthetic_aerial": "bench.datasets.synthetic_aerial:SyntheticAerial",
}


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(DATASETS)


def dataset_class(name: str) -> type:
    """Import and return the class registered under ``name``.

    Raises:
        KeyError: unknown name, with close matches and the known names.
    """
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown dataset {name!r}{hint} known: {list_datasets()}")
    module_name, _, attr = DATASETS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def create_dataset(name: str, root: str | Path | None = None, split: str = "val", **kw: Any) -> Dataset:
    """Build a dataset split.

    Args:
        name: registry key (see :data:`DATASETS`).
        root: data root of a real dataset (ignored by the synthetic ones).
        split: split name (``train``, ``val``, ``test``; some datasets know more).
        **kw: dataset-specific options (``list_file``, ``n_images``, ``size``, ``seed``, ...).

    Raises:
        KeyError: unknown name (with did-you-mean).
        FileNotFoundError: a real dataset's root or layout is missing (the message shows the layout).
    """
    return dataset_class(name)(root, split=split, **kw)


def dataset_info(cfg: Any) -> DatasetInfo:
    """The :class:`DatasetInfo` of a dataset, without decoding any data.

    Args:
        cfg: a registry key, or a config (``dataset``, ``data_root``, ``data``: a
            :class:`bench.config.BenchConfig`). A dataset whose classes are described next to its
            data (``folder``: ``<data_root>/classes.yaml``) defines ``info_for(root, **data)`` and
            needs the config; the others carry a class-level ``info``.

    Raises:
        KeyError: unknown name.
        FileNotFoundError / ValueError: the class description of a ``folder`` dataset is missing
            or malformed (the message names the file).
    """
    name = cfg if isinstance(cfg, str) else cfg.dataset
    klass: Any = dataset_class(name)
    info_for = getattr(klass, "info_for", None)
    if info_for is None:
        return klass.info
    root, data = (None, {}) if isinstance(cfg, str) else (cfg.data_root, dict(cfg.data))
    return info_for(root, **data)
