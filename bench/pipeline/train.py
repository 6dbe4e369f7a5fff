"""``make train``: every checkpoint a sweep needs, backbone first, then each learned method.

The training split is opened only when something is trained: a sweep of methods that need no
training, or whose weights are present, runs on a data folder that holds the evaluated split only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bench.weights import sidecar
from bench.runtime import distributed
from bench.training import loop, resume
from bench.core.config import BenchConfig
from bench.data import dataset_info
from bench.core.registry import MethodUnavailable, resolve
from bench.core.config import backbone_train_config, train_runtime
from bench.training.backbone import train_backbone


def _log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def _ensure_backbone(cfg: BenchConfig, train_set: Any, device: Any) -> str:
    """``present``, ``stale: <why>`` (its sidecar disagrees with ``cfg``), ``missing`` or ``trained``."""
    from bench.models.backbones import create_backbone

    if cfg.backbone_path.is_file():
        try:
            sidecar.check_backbone(cfg)
        except sidecar.StaleCheckpoint as err:
            return f"stale: {err}"
        return "present"
    if not cfg.train:
        return "missing"
    info = dataset_info(cfg)
    tcfg = backbone_train_config(cfg)
    model = create_backbone(cfg.backbone, info.num_classes, **dict(cfg.backbone_options))
    _log(f"backbone {cfg.backbone}: {tcfg.iterations} iterations -> {cfg.backbone_path}")
    w, h = cfg.input_size
    stats = train_backbone(model, train_set(), (w, h), cfg.backbone_path, tcfg, device,
                           sidecar=sidecar.backbone_training_options(cfg), runtime=train_runtime(cfg))
    _log(f"backbone done in {stats['seconds']:.0f} s, loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}")
    return "trained"


def _ensure_method(cfg: BenchConfig, name: str, size: tuple[int, int], train_set: Any, device: Any,
                   backbone: Any) -> str:
    from bench.data.splits import split_image_size
    from bench.pipeline.unit import image_size, make_context, method_config

    try:
        cls = resolve(name)
    except (MethodUnavailable, KeyError) as err:
        return f"not trained ({type(err).__name__}): {err}"
    mcfg = method_config(cfg, cls, name)
    # the weights' paths need the images' size only: the split is opened when something is trained
    full = split_image_size(cfg, cfg.train_split) or image_size(train_set())
    ctx = make_context(cfg, dataset_info(cfg), size, device, backbone, full)
    paths = cls.checkpoints(mcfg, ctx)
    if not paths:
        return "none needed"
    options = sidecar.training_options(cls, mcfg, cfg.backbone_path, cfg.seed)
    if all(p.is_file() for p in paths.values()):
        try:
            sidecar.check(paths, options, name)
        except sidecar.StaleCheckpoint as err:
            return f"stale: {err}"
        return "present"
    if not cfg.train:
        return "missing"
    data = train_set()
    _log(f"{name} @ {size[0]}x{size[1]} -> {sorted(str(p) for p in paths.values())}")
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        # the method saves each file with this sidecar (bench.training.loop.save_checkpoint)
        cls.train(mcfg, resume.with_runtime(loop.with_sidecar(ctx, options), train_runtime(cfg)), data, paths)
    except NotImplementedError as err:
        return f"untrainable: {err}"
    if distributed.is_main():  # a method that saved with plain torch.save gets its sidecar now (not atomically)
        sidecar.write({k: p for k, p in paths.items() if sidecar.stored(p) != options}, options)
    return "trained"


def _run_here(name: str, job: Callable[[], str]) -> str:
    """``train_all``'s default ``run``: this process trains everything."""
    return job()


def _as_is(state: str | None) -> str:
    """``train_all``'s default ``share``: one process, so its status is everyone's.

    Raises:
        ValueError: no status (a ``run`` that skips items needs a ``share`` that fills them in).
    """
    if state is None:
        raise ValueError("train_all: run() returned no status and share() is the default (pass both)")
    return state


def train_all(cfg: BenchConfig, *, run: Callable[[str, Callable[[], str]], str | None] | None = None,
              share: Callable[[str | None], str] | None = None, verbose: bool = True) -> dict[str, str]:
    """Train what is missing; returns ``{item: status}``.

    ``run(name, job)`` decides whether this process trains method ``name`` (default: always, by
    calling ``job()``) and ``share(state)`` agrees on each status across processes (default: as
    is); :func:`train_all_ranks` passes its rank-aware versions.
    """
    from bench.data.splits import open_split
    from bench.pipeline.unit import load_backbone, setup_torch

    run = run or _run_here
    share = share or _as_is
    device = setup_torch(cfg)
    cache: dict[str, Any] = {}

    def train_set() -> Any:
        if "data" not in cache:
            cache["data"] = open_split(cfg, cfg.train_split)
        return cache["data"]

    status = {"backbone": share(_ensure_backbone(cfg, train_set, device))}
    if status["backbone"] not in ("present", "trained"):  # missing, or stale: nothing can train on it
        return status
    backbone = load_backbone(cfg, dataset_info(cfg), device)
    for p in backbone.parameters():
        p.requires_grad_(False)
    for name, size in cfg.units():
        state = run(name, lambda: _ensure_method(cfg, name, size, train_set, device, backbone))  # noqa: B023
        status[f"{name}@{size[0]}x{size[1]}"] = share(state)
    if verbose:
        for item, state in status.items():
            _log(f"{item}: {state}")
    return status


def trains_data_parallel(name: str) -> bool:
    """Whether method ``name`` trains on every rank or on rank 0 alone.

    A method whose ``train`` is itself data-parallel (wraps its model in DDP, shards its data) says so
    with a class attribute ``data_parallel_train = True`` (MagNet and its variants).
    """
    try:
        cls = resolve(name)
    except (KeyError, MethodUnavailable):
        return False
    return bool(getattr(cls, "data_parallel_train", False))


def train_all_ranks(cfg: Any) -> dict[str, str]:
    """:func:`train_all` across the ranks of a torchrun job.

    The backbone and the data-parallel methods (``data_parallel_train``) train on every
    rank. Every other method trains on rank 0 while the others wait at a broadcast of its
    status, which also orders each checkpoint write before the next unit reads it.

    Returns:
        ``{item: status}``, the same on every rank (rank 0's statuses).
    """
    distributed.init(cfg.device)

    def run(name: str, job: Any) -> str | None:
        if trains_data_parallel(name):
            return job()
        if distributed.is_main():
            with distributed.solo():
                return job()
        return None

    return train_all(cfg, run=run, share=distributed.broadcast, verbose=distributed.is_main())
