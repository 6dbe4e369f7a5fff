"""What a dataset yields and describes: :class:`Sample`, :class:`DatasetInfo`, the :class:`Dataset` protocol.

numpy only: the dataset loaders import these, and opening a split (to check a data folder before
a run) must not import torch. ``bench.core.interface`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        id: stable identifier (file stem or synthetic index).
        image: (H, W, 3) uint8 RGB.
        label: (H, W) uint8 class ids; ``ignore_index`` marks unlabelled pixels.
        coarse: coarse maps given with the dataset, one per named coarse source (BIG's FCN-8s,
            DeepLabV3+, ...): (H, W) uint8 class ids in the label's space (a binary set: 0/1).
            Empty when the coarse map comes from the harness's own backbone. A dataset that gives
            them lists their names in its ``coarse_sources`` attribute (tuple of str).
    """

    id: str
    image: np.ndarray
    label: np.ndarray
    coarse: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset that metrics and tables need.

    Attributes:
        name: registry key (``cityscapes``, ``synthetic``, ...).
        class_names: one name per class id.
        ignore_index: label value excluded from every metric, or None.
        palette: (C, 3) uint8 RGB colours for pictures.
        excluded_from_mean: class ids left out of the mIoU mean but counted in the confusion
            matrix (DeepGlobe excludes 0 "unknown").
        thin_classes: class ids the tables single out as thin or small objects.
    """

    name: str
    class_names: tuple[str, ...]
    ignore_index: int | None
    palette: tuple[tuple[int, int, int], ...]
    excluded_from_mean: tuple[int, ...] = ()
    thin_classes: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Dataset(Protocol):
    """A dataset split: indexable ``Sample`` s plus ``info``."""

    info: DatasetInfo

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def ids(self) -> list[str]: ...
