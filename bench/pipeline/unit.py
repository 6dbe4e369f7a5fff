"""One unit, as a library: its config, context, key, weights and one timed prediction.

A *unit* is one (method, input size) of a sweep. Everything that builds a unit lives here, so the
sweep (``bench.pipeline.runner``), the smoke test (``bench.checks.smoke``), the profiler (``perf.magnet_profile``),
training and ``create_method`` share one definition of what a unit computes and how it is timed;
nothing here appends records or starts processes.

The unit key (:func:`unit_key`) hashes what changes a result: the method, its resolved options
and version, the digests of the weights it loads, the input size, the backbone, the device and
the dataset's identity (name, split, ``data.*`` options and a digest of the split's image ids).
It leaves out ``limit`` and the absolute ``data_root``, so a larger ``limit`` resumes where a
smaller one stopped and a moved dataset folder is recognised.

Coarse sources (``coarse_sources``): a sweep is methods x input sizes x sources (:func:`sweep_units`).
The source ``backbone`` is the harness's own coarse pass, and its units' keys are exactly those of
a config without sources (nothing is added to the hash), so every record written before sources
existed stays valid. Any other source is a coarse map the dataset gives (``Sample.coarse``): its
name is added to the key, the backbone is neither loaded nor in the key's weights, and ``refine``
gets the map as (C, H, W) float32 one-hot probabilities at the image's **full resolution**
(:func:`file_coarse`), which is how CascadePSP, CRM and SegRefiner take a BIG coarse mask (the
file, at the image's size); its conversion is done before the clock starts, so a method's time on
a file source is that of ``refine`` alone (no coarse pass to time). A ``track: refinement``
config adds the track and ``biou_ratio`` to every key (its records hold Boundary IoU counts at that
ratio).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.weights import sidecar, reference
from bench.runtime import measure
from bench.models.coarse import compute_coarse
from bench.core.config import (BACKBONE_SOURCE, BenchConfig, config_from_mapping, file_digest, method_config_values,
                               parse_size, stable_hash)
from bench.data import create_dataset, dataset_class, dataset_info
from bench.core.interface import Coarse, DatasetInfo, Method, MethodContext
from bench.evaluation.metrics import DILATION_RATIO, boundary_accuracy_radii, confusion_matrix
from bench.core.registry import MethodUnavailable, resolve

KEY_VERSION = 2  # 2: dataset identity by split digest; limit and data_root left out


class MissingCheckpoint(RuntimeError):
    """A learned method's weights are absent and training was not requested or not possible."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_torch(cfg: BenchConfig) -> torch.device:
    """Threads, seeds and the device, as the config says (under torchrun, ``cuda`` is cuda:LOCAL_RANK)."""
    from bench.runtime import distributed

    distributed.bind_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        import cv2  # OpenCV's own pool (resizes, guided filter) obeys the same thread count

        cv2.setNumThreads(cfg.threads)
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    return device


@lru_cache(maxsize=32)
def _split_facts(dataset: str, root: str | None, split: str, data_json: str, train_json: str,
                 train_split: str) -> tuple[str, tuple[int, int], tuple[str, ...]]:
    kwargs = json.loads(data_json)
    if split == train_split:
        kwargs.update(json.loads(train_json))
    if kwargs.get("size") is not None:
        kwargs["size"] = parse_size(kwargs["size"])
    opened = create_dataset(dataset, root=root, split=split, **kwargs)
    return stable_hash(list(opened.ids())), image_size(opened), tuple(getattr(opened, "coarse_sources", ()) or ())


def _facts(cfg: BenchConfig, split: str | None) -> tuple[str, tuple[int, int], tuple[str, ...]]:
    return _split_facts(cfg.dataset, cfg.data_root, split or cfg.split, json.dumps(dict(cfg.data), sort_keys=True),
                        json.dumps(dict(cfg.train_data), sort_keys=True), cfg.train_split)


def split_digest(cfg: BenchConfig, split: str | None = None) -> str:
    """Digest of the split's image ids (every id, whatever ``limit`` is): which images the split holds."""
    return _facts(cfg, split)[0]


def unit_full_size(cfg: BenchConfig) -> tuple[int, int]:
    """(w, h) of the evaluated split's images as the units see them (:func:`image_size` of the opened split).

    The unit key and the unit's context both use this value, so a key computed without running
    the unit (``unit_keys``) equals the one its records carry.
    """
    return _facts(cfg, None)[1]


def dataset_sources(cfg: BenchConfig) -> tuple[str, ...]:
    """The coarse sources the evaluated split gives with its images (its ``coarse_sources``; () for none)."""
    return _facts(cfg, None)[2]


def sweep_sources(cfg: BenchConfig) -> tuple[str, ...]:
    """The coarse sources of the sweep, in table order: ``coarse_sources``, else every source the
    dataset gives, else ``("backbone",)`` (the harness's own coarse pass)."""
    if cfg.coarse_sources is not None:
        return tuple(cfg.coarse_sources)
    return dataset_sources(cfg) or (BACKBONE_SOURCE,)


def sweep_units(cfg: BenchConfig) -> list[tuple[str, tuple[int, int], str]]:
    """Every (method, input size, coarse source) of the sweep: :meth:`BenchConfig.units` for each
    source in turn (source-major, the track's table rows). A config without sources gives each of
    ``cfg.units()`` once with source ``backbone``, in the same order as before."""
    return [(name, size, source) for source in sweep_sources(cfg) for name, size in cfg.units()]


def from_file(source: str) -> bool:
    """Whether ``source`` is a coarse map given with the data (not the harness's backbone pass)."""
    return source != BACKBONE_SOURCE


def file_coarse(sample: Any, source: str, num_classes: int, device: torch.device) -> Coarse:
    """The coarse map of ``source`` given with ``sample``, as ``refine`` takes a coarse map.

    Returns:
        (C, H, W) float32 one-hot probabilities on ``device`` at the image's full resolution
        (a file's coarse mask is at the image's size, and the BIG refiners read it there).

    Raises:
        KeyError: the sample has no such source (naming the ones it has).
        ValueError: a class id outside 0..C-1, or a map of another size than the label.
    """
    maps = getattr(sample, "coarse", None) or {}
    if source not in maps:
        raise KeyError(f"image {sample.id}: no coarse map of source {source!r} (it has {sorted(maps)})")
    ids = np.asarray(maps[source])
    if ids.shape != sample.label.shape:
        raise ValueError(f"image {sample.id}: coarse map {source!r} is {ids.shape}, the label {sample.label.shape}")
    if ids.size and int(ids.max()) >= num_classes:
        raise ValueError(f"image {sample.id}: coarse map {source!r} holds class {int(ids.max())}, "
                         f"expected 0..{num_classes - 1}")
    labels = torch.from_numpy(ids.astype(np.int64)).to(device)
    return Coarse(torch.nn.functional.one_hot(labels, num_classes).permute(2, 0, 1).float().contiguous())


def image_size(dataset: Any) -> tuple[int, int]:
    """Nominal (w, h) of a dataset's images (the first image's size when it has none)."""
    size = getattr(dataset, "image_size", None)
    if size:
        return int(size[0]), int(size[1])
    first = dataset[0].image
    return first.shape[1], first.shape[0]


def expected_ids(cfg: BenchConfig, dataset: Any) -> list[str]:
    """The image ids a unit covers: the split's, or its first ``limit``."""
    ids = list(dataset.ids())
    return ids if cfg.limit is None else ids[: cfg.limit]


def load_backbone(cfg: BenchConfig, info: DatasetInfo, device: torch.device) -> torch.nn.Module:
    """The trained backbone in eval mode on ``device``.

    Raises:
        MissingCheckpoint: no weights at ``cfg.backbone_path``.
        StaleCheckpoint: their sidecar says they were trained under other options than ``cfg``'s.
    """
    from bench.models.backbones import create_backbone

    if not cfg.backbone_path.is_file():
        raise MissingCheckpoint(f"backbone weights not found at {cfg.backbone_path}: {reference.train_hint(cfg)}"
                                f"; or give backbone_checkpoint=PATH")
    sidecar.check_backbone(cfg)
    model = create_backbone(cfg.backbone, info.num_classes, checkpoint=cfg.backbone_path, **dict(cfg.backbone_options))
    return model.to(device).eval()


def make_context(cfg: BenchConfig, info: DatasetInfo, size: tuple[int, int], device: torch.device,
                 backbone: Any, full_size: tuple[int, int]) -> MethodContext:
    method_dir = cfg.method_checkpoint_path(size, file_digest(cfg.backbone_path, length=8))
    return MethodContext(num_classes=info.num_classes, input_size=(int(size[0]), int(size[1])), device=device,
                         backbone=backbone, checkpoint_dir=method_dir, dataset=info,
                         image_size=(int(full_size[0]), int(full_size[1])),
                         options={"coarse_scale": cfg.coarse_scale, "seed": cfg.seed,
                                  **({"amp": True} if cfg.amp else {})})


def autocast(ctx: MethodContext) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision around the timed calls when the config asks for it (``amp``; off by default).

    fp16 on CUDA, bfloat16 on the CPU (which has no fp16 autocast). Off, nothing is entered, so the
    default path is the float32 one the drift gate and the reference values were measured on.
    """
    if not ctx.options.get("amp"):
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.float16 if ctx.device.type == "cuda" else torch.bfloat16)


def nominal_full_size(cfg: BenchConfig) -> tuple[int, int]:
    """``data.size``, else the dataset class's default or nominal size, else (0, 0)."""
    if cfg.data.get("size"):
        return parse_size(cfg.data["size"])
    klass = dataset_class(cfg.dataset)
    w, h = getattr(klass, "default_size", None) or getattr(klass, "nominal_size", None) or (0, 0)
    return int(w), int(h)


def context_for(cfg: BenchConfig, cls: type[Method], size: tuple[int, int] | None = None) -> MethodContext:
    """A ready context for one method: the config's device and input size, the trained backbone."""
    device = torch.device(cfg.device)
    info = dataset_info(cfg)
    backbone = load_backbone(cfg, info, device) if (cls.needs_backbone or cls.uses_coarse) else None
    w, h = size or cfg.input_size
    return make_context(cfg, info, (int(w), int(h)), device, backbone, nominal_full_size(cfg))


def method_config(cfg: BenchConfig, cls: type[Method], name: str) -> Any:
    """The method's frozen Config: dataclass defaults < configs/methods/<name>.yaml < sweep overrides."""
    return config_from_mapping(cls.Config, method_config_values(cfg, name))


def checkpoint_files(cfg: BenchConfig, cls: type[Method], mcfg: Any, ctx: MethodContext,
                     source: str = BACKBONE_SOURCE) -> dict[str, Path]:
    """The weight files a method loads in ``ctx``, by key (the backbone under ``backbone``; not on a file source)."""
    paths = dict(cls.checkpoints(mcfg, ctx))
    if (cls.needs_backbone or cls.uses_coarse) and not from_file(source):
        paths["backbone"] = cfg.backbone_path
    return paths


def unit_key(cfg: BenchConfig, name: str, cls: type[Method], mcfg: Any, size: tuple[int, int], ctx: MethodContext,
             source: str = BACKBONE_SOURCE) -> str:
    """Hash of everything a unit's results depend on (see the module docstring for what is left out).

    ``source`` ``backbone`` on a ``semantic`` config adds nothing: those keys are the ones written
    before coarse sources existed.
    """
    weights = {k: file_digest(p) for k, p in checkpoint_files(cfg, cls, mcfg, ctx, source).items()}
    return stable_hash({
        "key_version": KEY_VERSION, "bench_version": cfg.version, "dataset": cfg.dataset, "split": cfg.split,
        "split_digest": split_digest(cfg), "data": dict(cfg.data), "method": name, "method_version": cls.version,
        "method_config": dataclasses.asdict(mcfg), "size": list(size), "coarse_scale": cfg.coarse_scale,
        "backbone": cfg.backbone, "backbone_options": dict(cfg.backbone_options), "weights": weights,
        "device": cfg.device, **({"amp": True} if cfg.amp else {}),  # absent when off: older keys stay valid
        **({"coarse_source": source} if from_file(source) else {}),  # absent for the backbone: older keys stay valid
        **({"track": cfg.track, "biou_ratio": cfg.biou_ratio} if cfg.track != "semantic" else {}),
    })


def unresolved_key(cfg: BenchConfig, name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> str:
    """The key of a unit whose method cannot be resolved (its failure records still need one)."""
    return stable_hash({"unresolved": name, "size": list(size), "dataset": cfg.dataset,
                        **({"coarse_source": source} if from_file(source) else {})})


def unit_weights(cfg: BenchConfig, name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> dict[str, Path]:
    """The weight files of unit (``name``, ``size``, ``source``) at the config's nominal image size."""
    cls = resolve(name)
    ctx = make_context(cfg, dataset_info(cfg), size, torch.device("cpu"), None, unit_full_size(cfg))
    return checkpoint_files(cfg, cls, method_config(cfg, cls, name), ctx, source)


def key_of(cfg: BenchConfig, name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> str:
    """The key of one unit (an ``unresolved`` key where the method cannot be resolved)."""
    try:
        cls = resolve(name)
    except (KeyError, MethodUnavailable):
        return unresolved_key(cfg, name, size, source)
    ctx = make_context(cfg, dataset_info(cfg), size, torch.device("cpu"), None, unit_full_size(cfg))
    return unit_key(cfg, name, cls, method_config(cfg, cls, name), size, ctx, source)


def unit_keys(cfg: BenchConfig) -> dict[tuple[str, tuple[int, int]], str]:
    """The current key of every (method, size) of the sweep on the ``backbone`` source (:func:`key_of`);
    :func:`sweep_keys` has every coarse source."""
    return {(name, size): key_of(cfg, name, size) for name, size in cfg.units()}


def sweep_keys(cfg: BenchConfig) -> dict[tuple[str, tuple[int, int], str], str]:
    """The current key of every (method, size, coarse source) of the sweep (:func:`sweep_units`)."""
    return {(name, size, source): key_of(cfg, name, size, source) for name, size, source in sweep_units(cfg)}


def prepare(cfg: BenchConfig, cls: type[Method], name: str, mcfg: Any, size: tuple[int, int], device: torch.device,
            info: DatasetInfo, full: tuple[int, int], source: str = BACKBONE_SOURCE) -> tuple[Any, Any, MethodContext]:
    """Verify, load and build one unit's method: ``(method, backbone or None, context)``.

    Reference weights are checked against their manifest before any file is loaded, then the
    backbone (not on a file source: the coarse map is given), then the method's own weights and
    their training sidecars.

    Raises:
        MissingCheckpoint, sidecar.StaleCheckpoint, reference.ReferenceMismatch.
    """
    needed = checkpoint_files(cfg, cls, mcfg, make_context(cfg, info, size, device, None, full), source).values()
    reference.verify(cfg.checkpoint_path, [p for p in needed if Path(p).is_file()])  # before any is loaded
    wants = (cls.needs_backbone or cls.uses_coarse) and not from_file(source)
    backbone = load_backbone(cfg, info, device) if wants else None
    ctx = make_context(cfg, info, size, device, backbone, full)
    paths = cls.checkpoints(mcfg, ctx)
    missing = [str(p) for p in paths.values() if not Path(p).is_file()]
    if missing:
        raise MissingCheckpoint(f"{name} weights not found: {missing}; {reference.train_hint(cfg, name)}")
    sidecar.check(paths, sidecar.training_options(cls, mcfg, cfg.backbone_path, cfg.seed), name)
    return cls(mcfg, ctx), backbone, ctx


def predict(method: Any, cls: type[Method], sample: Any, backbone: Any, ctx: MethodContext,
            probe: measure.MemoryProbe, source: str = BACKBONE_SOURCE) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """One timed coarse + refine; returns (H, W) int64 labels, timings (ms) and memory.

    Timed: the backbone's coarse map at the unit's input size (methods that use it) and
    ``refine``; the copy of the labels to the host is timed apart (``time_e2e_ms``). On a file
    source (:func:`from_file`) the given map is made a tensor before the clock and the memory
    probe start (it is input, like the image), and ``time_coarse_ms`` is 0.
    """
    given = file_coarse(sample, source, ctx.num_classes, ctx.device) if cls.uses_coarse and from_file(source) \
        else None
    probe.start()
    coarse, t_coarse = given, 0.0
    with autocast(ctx):
        if cls.uses_coarse and given is None:
            coarse, t_coarse = measure.timed(lambda: compute_coarse(backbone, sample.image, ctx.input_size, ctx.device,
                                                                    ctx.options.get("coarse_scale")), ctx.device)
        pred, t_refine = measure.timed(lambda: method.refine(sample.image, coarse), ctx.device)
    mem = probe.stop()
    labels, t_copy = measure.timed(lambda: pred.to("cpu").numpy(), ctx.device)
    if labels.shape != sample.label.shape:
        raise RuntimeError(f"{cls.name} returned {labels.shape}, expected the image's {sample.label.shape}")
    times = {"time_coarse_ms": t_coarse, "time_refine_ms": t_refine, "time_ms": t_coarse + t_refine,
             "time_e2e_ms": t_coarse + t_refine + t_copy}
    return labels, times, mem


def load_sample(dataset: Any, index: int) -> tuple[Any, str | None]:
    """``(sample, None)``, or ``(None, reason)`` when the image or its label cannot be read.

    Any exception of the reader counts: a corrupt PNG, a label value outside the format or a
    size mismatch is the data's fault, and the unit goes on with the next image.
    """
    try:
        return dataset[index], None
    except Exception as err:  # noqa: BLE001 - the reason is recorded and shown in the tables
        return None, f"{type(err).__name__}: {err}"


def score_image(sample: Any, pred: np.ndarray, info: DatasetInfo, biou_ratio: float = DILATION_RATIO) -> dict[str, Any]:
    """The per-image metrics a record stores.

    Args:
        sample: the image's sample (``label``: (H, W) integer ground truth).
        pred: (H, W) integer labels.
        info: the dataset's classes and ignore index.
        biou_ratio: Boundary IoU dilation ratio (fraction of the image diagonal; the config's ``biou_ratio``).

    Returns:
        ``cm`` (C, C) confusion counts, ``mba`` (NaN without a band), ``mba_radii``, and Boundary IoU's
        per-class band counts ``biou_inter``, ``biou_union`` ((C,) pixels) with ``biou_ratio``: the
        tables pool the counts over images like the confusion matrix (``bench.report.table_model``).
    """
    from bench.evaluation.boundary import class_counts

    cm = confusion_matrix(sample.label, pred, info.num_classes, info.ignore_index)
    radii = boundary_accuracy_radii(sample.label, pred, info.ignore_index)
    mba = float("nan") if any(np.isnan(radii)) else float(np.mean(radii))
    inter, union = class_counts(sample.label, pred, info.num_classes, info.ignore_index, biou_ratio)
    return {"cm": cm.tolist(), "mba": mba, "mba_radii": radii, "biou_inter": inter.tolist(),
            "biou_union": union.tolist(), "biou_ratio": float(biou_ratio)}


def display_name(method: Any) -> str:
    """The row name of a method: its variant ``label`` (MagNet's "released"/"paper") or its class's."""
    return getattr(method, "label", None) or type(method).display_name


def create_method(name: str, ctx: Any = None, *, dataset: str = "synthetic",
                  overrides: dict[str, Any] | None = None, **config: Any) -> Any:
    """Build a method by name, ready for ``refine(image, coarse)``.

    Args:
        name: registry key.
        ctx: a ``MethodContext``. When None, one is made from ``configs/datasets/<dataset>.yaml``
            plus ``overrides`` (e.g. ``{"device": "cuda", "input_size": "256x128"}``), with the
            trained backbone loaded from the config's checkpoint.
        dataset: dataset config used when ``ctx`` is None.
        overrides: config overrides used when ``ctx`` is None.
        **config: options of the method's ``Config`` dataclass, on top of
            ``configs/methods/<name>.yaml`` and the dataset config.

    Raises:
        KeyError: unknown method or option.
        MethodUnavailable: a needed package is missing.
    """
    from bench.pipeline.configure import load

    cls = resolve(name)
    if ctx is None:
        cfg = load(dataset, overrides or {})
        ctx = context_for(cfg, cls)
        config = {**method_config_values(cfg, name), **config}
    return cls(config_from_mapping(cls.Config, config), ctx)
