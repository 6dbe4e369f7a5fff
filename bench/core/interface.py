"""The contract every method, backbone and dataset of magnet-bench follows.

Images
    An image is a ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, RGB order, at the dataset's
    native resolution (Cityscapes 1024x2048, DeepGlobe 2448x2448, ...). Labels are (H, W) uint8
    (uint16 when a dataset has more than 255 classes) class ids in ``0..C-1`` with the dataset's
    ``ignore_index`` (255 for Cityscapes) on unlabelled pixels. Sizes are written (width, height)
    in configs, like OpenCV and the MagNet scripts, and (H, W) for array shapes.

Segmenter (the segmentation backbone)
    A ``torch.nn.Module`` with an integer attribute ``num_classes``. ``forward(x)`` takes a
    normalised batch ``x`` of shape (N, 3, h, w) float32 (ImageNet mean/std, RGB, see
    :func:`normalize`) and returns class logits of shape (N, C, h, w), float32, at the input
    resolution. ``forward_features(x)`` returns ``(logits, features)`` where ``features`` maps
    names to feature maps (N, F, h', w'); the key ``"fine"`` is the fine-grained map that point
    heads (PointRend) sample. Our own modules and mmsegmentation models (through the adapter in
    ``bench.models.backbones``) both satisfy this protocol.

Coarse
    The coarse prediction every refiner starts from: the backbone run once on the whole image
    resized to the method's input size (the paper's "Downsample" stage), kept as class
    probabilities of shape (C, h, w), float32, on the method's device, *not* upsampled. Labels are
    derived by argmax. On a coarse source given with the data (``coarse_sources``: BIG's FCN-8s,
    DeepLabV3+, ... masks, ``Sample.coarse``) no backbone runs: the given map is passed as one-hot
    probabilities (C, H, W) float32 at the image's **full** resolution, as CascadePSP, CRM and
    SegRefiner read a BIG coarse mask (``bench.pipeline.unit.file_coarse``); a method must not
    assume h, w is the input size.

Method
    Built once as ``cls(cfg, ctx)`` (untimed: weights are loaded and moved to ``ctx.device``), then
    ``refine(image, coarse)`` is called per image (timed) and returns the refined label map of
    shape (H, W), dtype int64, on ``ctx.device``, at the image's full resolution. ``refine`` is
    pure: no file I/O, no metrics, no printing. A method that does not consume the coarse map
    (Patching) sets ``uses_coarse = False``; the runner then neither computes nor times it. For
    methods with ``uses_coarse = True`` the reported time is coarse plus refine, because the
    coarse pass is part of the work the method needs.

    Methods that need learned weights list them in ``checkpoints(cfg, ctx)`` and implement
    ``train(cfg, ctx, train_set, paths)``; a missing checkpoint is either trained (synthetic data)
    or reported as a status, never replaced by random weights. ``train`` saves each file with
    ``bench.training.loop.save_checkpoint(state, path, bench.training.loop.sidecar_of(ctx))``, which writes
    the weights and their training sidecar atomically together; the ``Config`` fields that shape
    training are listed in ``train_fields``.

Registry
    ``bench.core.registry`` maps a method name to ``"module:Class"`` and imports lazily; see there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from bench.core.data_types import Dataset, DatasetInfo  # torch-free, so datasets load without torch
from bench.core.data_types import Sample as Sample  # re-exported: methods import it from here with the rest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Turn uint8 RGB image(s) into a normalised float32 batch.

    Args:
        image: (H, W, 3) or (N, H, W, 3) uint8 RGB, numpy or torch.
        device: where the result lives.

    Returns:
        (N, 3, H, W) float32: ``(x / 255 - mean) / std`` with the ImageNet statistics.
    """
    t = torch.as_tensor(image).to(device)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    t = t.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=t.device).view(1, 3, 1, 1)
    return (t - mean) / std


def check_image(image: Any) -> None:
    """Raise ``ValueError`` unless ``image`` is an (H, W, 3) uint8 RGB numpy array (the contract above)."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = f"{type(image).__name__} {getattr(image, 'shape', None)} {getattr(image, 'dtype', None)}"
        raise ValueError(f"expected an (H, W, 3) uint8 RGB numpy image, got {got}")


@runtime_checkable
class Segmenter(Protocol):
    """Segmentation backbone protocol (see the module docstring)."""

    num_classes: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


@dataclass(frozen=True)
class Coarse:
    """Coarse class probabilities.

    Attributes:
        probs: (C, h, w) float32 probabilities (sum to 1 over C), at the backbone input size.
    """

    probs: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        """(h, w) int64 argmax labels."""
        return self.probs.argmax(0)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[0])


@dataclass(frozen=True)
class MethodContext:
    """What a method is built with besides its own config.

    Attributes:
        num_classes: C.
        input_size: (w, h) of the backbone input (the paper's n); the coarse map has this size.
        device: torch device the method runs on.
        backbone: the shared segmentation backbone, in eval mode on ``device``, or None.
        checkpoint_dir: folder where this dataset's learned weights live.
        dataset: the dataset's ``DatasetInfo``.
        image_size: (w, h) of the full-resolution images (MagNet's last scale).
        options: dataset-level settings a method may read (e.g. MagNet scales), flat dict. Under
            ``make train`` it also holds ``training_options``: the sidecar the weights are saved
            with (``bench.training.loop.sidecar_of``).
    """

    num_classes: int
    input_size: tuple[int, int]
    device: torch.device
    backbone: Any
    checkpoint_dir: Path
    dataset: DatasetInfo
    image_size: tuple[int, int]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoConfig:
    """Config of a method without options."""


class Method(ABC):
    """Base class of every refinement method (see the module docstring for the contract).

    Class attributes:
        name: registry key, also the config file name ``configs/methods/<name>.yaml``.
        display_name: how tables print it.
        version: bump when results change meaning; it is part of the run key.
        uses_coarse: whether ``refine`` reads the coarse map (the runner computes and times it).
        needs_backbone: whether the shared backbone must be built.
        cpu_only: True where the method cannot run on CUDA (DenseCRF); tables flag it.
        Config: frozen dataclass of the method's options.
        train_fields: the ``Config`` fields that shape training; trained weights record them
            (``bench.weights.sidecar``) and are refused when the config changes them.
        trains_with_run_seed: True where training is seeded by the run's ``seed``
            (``ctx.options["seed"]``) rather than a Config field; the sidecar records it.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    uses_coarse: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = True
    cpu_only: ClassVar[bool] = False
    Config: ClassVar[type] = NoConfig
    train_fields: ClassVar[tuple[str, ...]] = ()
    trains_with_run_seed: ClassVar[bool] = False

    def __init__(self, cfg: Any, ctx: MethodContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.device = ctx.device

    @abstractmethod
    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image.

        Args:
            image: (H, W, 3) uint8 RGB at full resolution.
            coarse: coarse probabilities (C, h, w) on ``self.device``; None if ``uses_coarse`` is
                False.

        Returns:
            (H, W) int64 labels on ``self.device``.
        """

    def record_extras(self) -> dict[str, float | int]:
        """Values about the last ``refine`` call for its image record, under ``extras`` (not a metric, not timed).

        Empty by default, and then the record has no ``extras``. SegRefiner's ``samples = N`` puts the
        spread of its N seeds here; the tables' notes report it.
        """
        return {}

    @classmethod
    def checkpoints(cls, cfg: Any, ctx: MethodContext) -> dict[str, Path]:
        """Learned weights this method loads, by name; empty if none."""
        return {}

    @classmethod
    def train(cls, cfg: Any, ctx: MethodContext, train_set: Dataset, paths: Mapping[str, Path]) -> None:
        """Train the weights listed by ``checkpoints`` and save them to ``paths``
        (``bench.training.loop.save_checkpoint`` with ``bench.training.loop.sidecar_of(ctx)``).

        Raises:
            NotImplementedError: the method has nothing to train or cannot be trained here.
        """
        raise NotImplementedError(f"method {cls.name!r} has no training procedure")


def as_sequence(value: Any) -> Sequence[Any]:
    """A scalar as a 1-tuple; sequences unchanged."""
    return value if isinstance(value, (list, tuple)) else (value,)
