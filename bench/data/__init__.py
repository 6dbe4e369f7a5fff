"""Datasets: a plain name -> ``"module:Class"`` map, imported only when a dataset is built.

Every dataset yields :class:`bench.core.interface.Sample` (image (H, W, 3) uint8 RGB, label (H, W)
uint8) lazily, one file pair or one generated scene per item, and carries ``info``
(:class:`bench.core.interface.DatasetInfo`), ``ids()`` and ``image_size`` (nominal (w, h) or None).

Real formats read a user-given root and fail with the expected layout when it is missing or
incomplete; the synthetic ones are generated from a seed and need no files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.registry import Registry

if TYPE_CHECKING:
    from bench.core.data_types import Dataset, DatasetInfo

DATASETS = Registry("dataset", {
    "big": "bench.data.big:Big",
    "big_synthetic": "bench.data.big_synthetic:BigSynthetic",
    "cityscapes": "bench.data.cityscapes:Cityscapes",
    "deepglobe": "bench.data.deepglobe:DeepGlobe",
    "folder": "bench.data.folder:Folder",
    "gleason": "bench.data.gleason:Gleason",
    "inria": "bench.data.inria:InriaAerial",
    "synthetic": "bench.data.synthetic_streets:SyntheticStreets",
    "synthetic_aerial": "bench.data.synthetic_aerial:SyntheticAerial",
})


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(DATASETS)


def dataset_class(name: str) -> type:
    """Import and return the class registered under ``name``.

    Raises:
        KeyError: unknown name, with close matches and the known names.
    """
    cls: type = DATASETS.resolve(name)
    return cls


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
            :class:`bench.core.config.BenchConfig`). A dataset whose classes are described next to its
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
