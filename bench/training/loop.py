"""What every training loop of the harness shares: optimisers, learning-rate schedules, progress, saving.

The loops (the backbone in ``bench.training.backbone``, DGF, PointRend, SegFix, CascadePSP,
GLNet and MagNet's refiners) build their optimiser with :func:`make_optimizer`, set the learning
rate of each step or epoch with :func:`set_lr` from :func:`poly_lr` or :func:`multistep_lr`,
report through :class:`Progress`, write a resumable state as they go (``bench.training.resume``;
:func:`run_steps` takes its ``Checkpointer``) and write their weights with
:func:`save_checkpoint`. That save is atomic: the weights and their training sidecar
(``<weights>.train.json``, ``bench.weights.sidecar``) are written to a temporary folder next to
the target, fsynced, and moved into place with ``os.replace``, so no reader ever sees a
half-written ``.pt`` or a ``.pt`` without its sidecar.

``make train`` hands a learned method the sidecar of its weights in
``ctx.options[SIDECAR_OPTION]`` (see :func:`with_sidecar`); a method passes
:func:`sidecar_of` ``(ctx)`` to :func:`save_checkpoint`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bench.runtime.progress import clock_time, format_duration
from bench.training.resume import Checkpointer
from bench.weights import sidecar as sidecars
from bench.core.files import fsync

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam", "adamw")
SIDECAR_OPTION = "training_options"  # key of MethodContext.options that carries the sidecar of the weights


def make_optimizer(params: Iterable[Any], name: str, lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0,
                   allowed: tuple[str, ...] = OPTIMIZERS, what: str = "optimizer") -> torch.optim.Optimizer:
    """The optimiser a loop's config names, with torch's defaults for everything not given.

    Args:
        params: parameters (or parameter groups) to optimise.
        name: ``sgd`` (heavy-ball ``momentum``, no dampening, no Nesterov), ``adam`` (L2
            ``weight_decay`` added to the gradient) or ``adamw`` (decoupled ``weight_decay``).
        lr: initial learning rate.
        momentum: SGD momentum (ignored by Adam and AdamW).
        weight_decay: weight decay; 0 disables it.
        allowed: the names this loop accepts.
        what: the config key, for the error message (``backbone_train.optimizer``).

    Raises:
        ValueError: ``name`` is not in ``allowed``.
    """
    if name not in allowed:
        raise ValueError(f"{what} must be one of {list(allowed)}, got {name!r}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def poly_lr(base: float, it: int, total: int, power: float = 0.9, min_lr: float = 0.0) -> float:
    """Poly decay: ``(base - m) * (1 - it / total) ** power + m`` with ``m = min(min_lr, base)``.

    ``min_lr = 0`` is the plain ``base * (1 - it / total) ** power`` of the backbone and SegFix
    (bit for bit: subtracting and adding 0.0 is exact); PointRend uses mmseg's ``min_lr = 1e-4``.

    Args:
        base: initial learning rate.
        it: 0-based step.
        total: number of steps (at least 1 is assumed).
        power: decay exponent.
        min_lr: floor reached at ``it = total`` (capped at ``base``).
    """
    floor = min(min_lr, base)
    return (base - floor) * (1.0 - it / max(1, total)) ** power + floor


def multistep_lr(base: float, epoch: int, milestones: Iterable[int], gamma: float) -> float:
    """The learning rate of ``epoch`` (0-based) under torch's ``MultiStepLR``, bit for bit.

    torch multiplies the current rate by ``gamma ** n`` at each milestone reached (``n`` = how many
    times it is listed), so the rate is that product taken in milestone order, not
    ``base * gamma ** k`` in one go (the two differ in the last bits).
    """
    lr = base
    for milestone, count in sorted(Counter(int(m) for m in milestones).items()):
        if milestone <= epoch:
            lr = lr * gamma ** count
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class Progress:
    """One training loop's progress on stderr: step / total, loss, seconds per step and time left.

    On a terminal a live bar (tqdm); otherwise (a log file, CI, ``nohup``) a plain line in the
    form of the evaluation's (``bench.runtime.progress``),
    ``[train] HH:MM:SS <what>: step k/N, loss L[, extra v], S/step, left T``, at the first step,
    then at most one every ``interval_s`` seconds, and always at the last step. Seconds per step
    and the time left count the steps of this process only (a resumed loop's earlier steps ran
    elsewhere, at another speed).

    Args:
        what: what trains (``backbone``, ``dgf``, ``magnet refiner 64x32,128x64``, ...).
        total: optimiser steps.
        enabled: False on every rank but 0 under torchrun (one bar per job).
        interval_s: least seconds between two plain lines.
        stream: where to write (stderr); a bar only when it is a terminal.
        clock: seconds, monotonic (a test's fake clock).
        wall: Unix seconds, for the time of day of each line.
    """

    def __init__(self, what: str, total: int, *, enabled: bool = True, interval_s: float = 10.0,
                 stream: Any = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.what, self.total, self.enabled, self.interval_s = what, total, enabled, interval_s
        self.stream = sys.stderr if stream is None else stream
        self.clock, self.wall = clock, wall
        self.done = self.first = 0
        self.start = self.last_line = clock()
        self.printed = False
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.bar = tqdm(total=total, desc=f"train {what}", disable=not (enabled and self.tty), file=self.stream,
                        mininterval=0.5, dynamic_ncols=True)

    def skip(self, steps: int) -> None:
        """Start the count at ``steps`` (a resumed loop); rates count the steps of this process only."""
        self.done = self.first = steps
        self.start = self.clock()
        self.bar.update(steps)

    def seconds_per_step(self) -> float | None:
        """Mean seconds per step over this process's steps (None before the first)."""
        steps = self.done - self.first
        return (self.clock() - self.start) / steps if steps > 0 else None

    def step(self, loss: float, **extra: float) -> None:
        """Record one optimiser step and its loss (``extra``: other figures of the step)."""
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
            return
        now = self.clock()
        if self.printed and now - self.last_line < self.interval_s and self.done < self.total:
            return
        self.printed, self.last_line = True, now
        parts = "".join(f", {k} {v:.4g}" for k, v in extra.items())
        rate = self.seconds_per_step()
        left = None if rate is None else rate * (self.total - self.done)
        print(f"[train] {clock_time(self.wall())} {self.what}: step {self.done}/{self.total}, loss {loss:.4f}{parts}, "
              f"{format_duration(rate)}/step, left {format_duration(left)}", file=self.stream, flush=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` with the global RNG state (CPU, and
    ``device``'s GPU when it is one) restored afterwards, so training leaves no trace on it."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def run_steps(opt: torch.optim.Optimizer, progress: Progress, iterations: int, lr_at: Callable[[int], float],
              step: Callable[[], tuple[torch.Tensor, Mapping[str, Any]]],
              checkpoint: Checkpointer | None = None) -> list[float]:
    """The step loop of the methods' trainers; returns the loss of every iteration.

    Each iteration ``it``: ``set_lr(opt, lr_at(it))``; ``loss, extra = step()`` (draw a batch,
    forward, loss); zero the gradients, backward, ``opt.step()``; the loss and ``extra`` (numbers
    or 0-d tensors, read after the step) go to ``progress``.

    With ``checkpoint`` (``bench.training.resume``), a stored state is restored first and the loop
    continues after its step; after every step the state is written when due and after the last,
    and Ctrl-C or SIGTERM take effect at the end of the running step, once its state is written.
    ``step`` must draw only from the generators the checkpointer holds (and the global ones).
    """
    losses: list[float] = []
    start = 0
    snap = checkpoint.restore() if checkpoint is not None else None
    if snap is not None:
        start, losses = snap.step, snap.losses
        progress.skip(start)
    with checkpoint.guard() if checkpoint is not None else contextlib.nullcontext():
        for it in range(start, iterations):
            set_lr(opt, lr_at(it))
            loss, extra = step()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            progress.step(losses[-1], **{k: float(v) for k, v in extra.items()})
            if checkpoint is not None:
                checkpoint.after_step(it + 1, losses)
    return losses


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict as detached CPU tensors (what the method checkpoints hold)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(state: Mapping[str, Any], path: Path, sidecar: Mapping[str, Any] | None = None) -> None:
    """Write ``state`` to ``path`` and ``sidecar`` to ``<path>.train.json``, atomically together.

    Both are written into a fresh temporary folder beside ``path`` (same filesystem, and the
    weights file keeps its own name there: ``torch.save`` stores the file's stem inside the
    archive, so the bytes are those of a direct save) and fsynced. Then the old weights are
    removed, the sidecar is moved into place, and the weights last. A crash at any point leaves
    either no weights or the new weights with their new sidecar: never a half-written file, new
    weights without their sidecar, or old weights beside a new sidecar. Without ``sidecar`` an
    old sidecar is removed, since it described other weights. On an error the temporary folder
    is removed and the error re-raised.

    Args:
        state: what ``torch.save`` writes (a state dict).
        path: the weights file (``.pt``).
        sidecar: JSON-ready training options (``bench.weights.sidecar``), or None.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = sidecars.sidecar(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        staged, staged_meta = staging / path.name, staging / meta.name
        torch.save(state, staged)
        fsync(staged)
        if sidecar is not None:
            staged_meta.write_text(sidecars.dumps(sidecar))
            fsync(staged_meta)
        path.unlink(missing_ok=True)  # first: the new sidecar must never sit beside the old weights
        if sidecar is None:
            meta.unlink(missing_ok=True)
        else:
            os.replace(staged_meta, meta)
        os.replace(staged, path)
        fsync(path.parent)  # the renames themselves reach the disk
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def with_sidecar(ctx: Any, options: Mapping[str, Any]) -> Any:
    """``ctx`` (a ``MethodContext``) carrying ``options`` as the sidecar of the weights its method saves."""
    return dataclasses.replace(ctx, options={**dict(ctx.options or {}), SIDECAR_OPTION: dict(options)})


def sidecar_of(ctx: Any) -> Mapping[str, Any] | None:
    """The sidecar ``make train`` asks ``ctx``'s method to save with its weights (None outside ``make train``)."""
    return (ctx.options or {}).get(SIDECAR_OPTION)

