"""Opening a dataset split as a config describes it (torch-free: the pre-run checks use it)."""

from __future__ import annotations

from typing import Any

from bench.core.config import BenchConfig, parse_size
from bench.data import create_dataset, dataset_class


def split_image_size(cfg: BenchConfig, split: str) -> tuple[int, int] | None:
    """Nominal (w, h) of a split's images from the config and the dataset class, without opening it.

    The same value :func:`image_size` gives for an opened split: ``data.size`` (with
    ``train_data.size`` on the training split), else the class's default or nominal size;
    None when the class has neither (its images vary).
    """
    size = cfg.data.get("size")
    if split == cfg.train_split:
        size = cfg.train_data.get("size", size)
    if size is not None:
        return parse_size(size)
    klass = dataset_class(cfg.dataset)
    nominal = getattr(klass, "default_size", None) or getattr(klass, "nominal_size", None)
    return tuple(nominal) if nominal else None


def open_split(cfg: BenchConfig, split: str) -> Any:
    """The dataset split, with ``train_data.*`` kwargs applied to the training split."""
    kwargs = dict(cfg.data)
    if split == cfg.train_split:
        kwargs.update(cfg.train_data)
    if kwargs.get("size") is not None:
        kwargs["size"] = parse_size(kwargs["size"])
    return create_dataset(cfg.dataset, root=cfg.data_root, split=split, **kwargs)
