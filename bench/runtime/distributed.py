"""Scale-out under ``torchrun``: one process group per run, image shards per rank, rank 0 renders.

``torchrun --nproc_per_node=N -m bench run DATASET ...`` (or ``-m bench train``, one node or
several) starts N processes per node with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set. Then:

- :func:`init` joins the default process group: ``nccl`` when the config's device is CUDA,
  ``gloo`` otherwise. On CUDA each rank binds ``cuda:LOCAL_RANK`` (:func:`bind_device`; give
  ``device=cuda`` without an index). The waits below (barriers, broadcasts) always go through a
  ``gloo`` group, so a rank that only waits never creates a CUDA context.
- Training (``bench.pipeline.train.train_all_ranks``): the backbone trains data-parallel on every rank
  (``bench.training.backbone``), and so do MagNet's refiners (``magnet.train``). Every other learned
  method trains on rank 0 while the other ranks wait for it.
- The sweep: every rank runs every (method, input size) unit on its shard of the images,
  ``indices[rank::world]`` (``bench.pipeline.runner``), and appends to its own
  ``records-rank<r>.jsonl``. A rerun skips the images that any rank has already recorded.
- :func:`gather_results` waits for every rank at the end of the sweep. Rank 0 then renders the
  tables from every rank's file.

A wait lasts at most ``MAGNET_BENCH_DIST_TIMEOUT`` seconds (default 86400 s, one day) before it
fails. The default is generous because the other ranks wait at one collective while rank 0
trains a method, and a gloo wait fails at the process group's timeout (torch's default: 30 min).
If a rank crashes, ``torchrun`` stops the others, so a long timeout does not leave processes
hanging. Every node must see the same ``results/`` folder (a shared filesystem), because
checkpoints and per-rank records are read across ranks.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist

TIMEOUT_ENV = "MAGNET_BENCH_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 86400
OK_STATUSES = ("ok", "done")

_state: dict[str, Any] = {"coord": None, "owned": False, "solo": False}


def env_world() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment; (0, 0, 1) outside torchrun."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))


def active() -> bool:
    """Whether this process is in an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and outside torchrun)."""
    return (dist.get_rank() if active() else env_world()[0]) == 0


def timeout() -> datetime.timedelta:
    """How long a collective may wait: ``$MAGNET_BENCH_DIST_TIMEOUT`` seconds, default one day."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    if seconds <= 0:
        raise ValueError(f"{TIMEOUT_ENV} must be > 0 seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def backend_for(device: str) -> str:
    """``nccl`` for a CUDA device (when CUDA is there), ``gloo`` for the CPU."""
    return "nccl" if str(device).startswith("cuda") and torch.cuda.is_available() else "gloo"


def bind_device(device: str) -> None:
    """Under torchrun on CUDA, make plain ``cuda`` mean ``cuda:LOCAL_RANK`` in this process.

    The config keeps ``device: cuda`` (it enters the unit key, which must be the same on every
    rank), and the ranks of a node still get a GPU each. This is a no-op on the CPU, outside
    torchrun, and for an explicit index (``cuda:1``), which is left to the user.
    """
    _, local, world = env_world()
    if world > 1 and str(device) == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(local)


def init(device: str) -> bool:
    """Join torchrun's process group if ``WORLD_SIZE`` > 1 (idempotent); returns :func:`active`.

    The group is destroyed at exit, or by :func:`finish`.
    """
    _, _, world = env_world()
    if world <= 1 or active():
        return active()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    bind_device(device)
    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout())
        _state["owned"] = True
        atexit.register(finish)
    # Waits go through gloo: CPU tensors, no CUDA context for a rank that only waits.
    _state["coord"] = None if backend == "gloo" else dist.new_group(backend="gloo", timeout=timeout())
    return True


def finish() -> None:
    """Destroy the process group if :func:`init` created it (registered to run at exit)."""
    if _state["owned"] and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _state.update(coord=None, owned=False)


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if active():
        dist.barrier(group=_state["coord"])


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable; the identity outside a process group)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_state["coord"])
    return box[0]


@contextlib.contextmanager
def solo() -> Iterator[None]:
    """A block that this rank runs alone: :func:`data_parallel` reports one rank inside it."""
    before = _state["solo"]
    _state["solo"] = True
    try:
        yield
    finally:
        _state["solo"] = before


def data_parallel() -> tuple[int, int]:
    """(rank, world size) for a trainer that may wrap its model in DDP; (0, 1) when it must not.

    It reports one rank outside a process group, and inside :func:`solo`, where the other ranks
    are not in the trainer and a collective would hang.
    """
    if _state["solo"] or not active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def gather_results(results: Mapping[Any, str]) -> dict[Any, str] | None:
    """The end of the sweep: wait for every rank, then merge their unit statuses on rank 0.

    Args:
        results: this rank's ``{(method, size): status}`` from ``bench.pipeline.runner.run_sweep``.

    Returns:
        On rank 0 (or outside torchrun), every unit with the first status other than ``ok`` or
        ``done`` that any rank reported, else ``ok``. On the other ranks None: they are done.
    """
    if not active():
        return dict(results)
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, results, group=_state["coord"])
    if dist.get_rank() != 0:
        return None
    merged: dict[Any, str] = {}
    for part in everyone:
        for key, status in part.items():
            if merged.get(key, "ok") in OK_STATUSES:
                merged[key] = status
    return merged
