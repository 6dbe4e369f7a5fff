"""Resumable training: a state written every few minutes next to the weights, read back by the same command.

A training loop keeps one :class:`ResumeFile`, ``<weights>.resume`` (for example
``weights/.../dgf.pt.resume``: not a ``.pt``, so it is never taken for weights), and a
:class:`Checkpointer` that knows what the loop's state is made of: the modules' state dicts, the
optimisers' state dicts, the step reached, the losses so far, the RNG states (torch's CPU
generator, the CUDA generator of the training device, numpy's and Python's global generators, and
every generator object the loop owns, such as its sampler's ``np.random.Generator``) and the
loop's own data-order state (a sampler's stream, an epoch's batch list). After every step the
checkpointer writes the state when ``checkpoint_every_s`` seconds have passed since the last one,
and always after the last step. The write is atomic: a temporary file beside the target, fsynced,
moved into place with ``os.replace``, the folder fsynced, so a kill at any moment leaves either
the previous state or the new one.

Run again, the loop finds the file, checks that it was written by the same training (the
``identity``: the weights' sidecar options, or the loop's config where there is no sidecar, plus
what trains and its number of steps), restores everything and continues from the next step,
printing ``resuming <what> from step k/N (<file>)``. Every random draw after the resume is then
the one the uninterrupted run made, so on the same machine the final weights are bit-identical.
A state from other options is discarded with one line naming the options that differ; it is
never mixed into the new training. When the weights are saved, the loop removes the file.

How often states are written and how data is read (:class:`TrainRuntime`) do not change what is
learned, so they are not in any sidecar: a method reads them from ``ctx.options[RUNTIME_OPTION]``
(:func:`runtime_of`), the backbone's training takes them as an argument.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from bench.core.config import TrainRuntime
from bench.core.files import write_atomically
from bench.runtime import distributed

RUNTIME_OPTION = "training_runtime"  # key of MethodContext.options that carries a TrainRuntime
SUFFIX = ".resume"
FORMAT = 1  # version of the payload's layout; a state of another version is discarded


def runtime_of(ctx: Any) -> TrainRuntime:
    """The :class:`TrainRuntime` in ``ctx.options`` (a ``MethodContext``), else the defaults.

    Raises:
        TypeError: the option holds something else than a TrainRuntime or a mapping of its fields.
    """
    value = (getattr(ctx, "options", None) or {}).get(RUNTIME_OPTION)
    if value is None:
        return TrainRuntime()
    if isinstance(value, TrainRuntime):
        return value
    if isinstance(value, Mapping):
        return TrainRuntime(**dict(value))
    raise TypeError(f"ctx.options[{RUNTIME_OPTION!r}] must be a TrainRuntime or a mapping, got {type(value).__name__}")


def with_runtime(ctx: Any, runtime: TrainRuntime) -> Any:
    """``ctx`` (a ``MethodContext``) carrying ``runtime`` for its method's training."""
    return dataclasses.replace(ctx, options={**dict(ctx.options or {}), RUNTIME_OPTION: runtime})


def read_in_process(runtime: TrainRuntime, what: str, why: str) -> None:
    """One line when ``runtime`` asks for data-loading workers that the loop ``what`` does not use, and why."""
    if runtime.workers > 0:
        _say(f"{what}: workers={runtime.workers} not used, the samples are made in the training process: {why}")


def resume_path(weights: Path, rank: int = 0, world: int = 1) -> Path:
    """``<weights>.resume``: the resume state of the training that writes ``weights``; under
    torchrun one a rank, ``<weights>.rank<r>of<world>.resume`` (each rank draws its own samples)."""
    return Path(f"{weights}{SUFFIX}" if world == 1 else f"{weights}.rank{rank}of{world}{SUFFIX}")


def _say(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


# --- RNG states ---------------------------------------------------------------------------------
# Stored as plain Python values and tensors only, so that torch.load(weights_only=True) reads them.

def _generator_state(gen: Any) -> dict[str, Any]:
    if isinstance(gen, np.random.Generator):
        return {"kind": "numpy.Generator", "state": gen.bit_generator.state}
    if isinstance(gen, np.random.RandomState):
        st = gen.get_state(legacy=False)
        key = st["state"]["key"].tolist()
        return {"kind": "numpy.RandomState", "state": {**st, "state": {**st["state"], "key": key}}}
    if isinstance(gen, torch.Generator):
        return {"kind": "torch.Generator", "state": gen.get_state()}
    raise TypeError(f"cannot checkpoint a generator of type {type(gen).__name__}")


def _set_generator_state(gen: Any, saved: Mapping[str, Any]) -> None:
    if isinstance(gen, np.random.Generator) and saved["kind"] == "numpy.Generator":
        gen.bit_generator.state = saved["state"]
    elif isinstance(gen, np.random.RandomState) and saved["kind"] == "numpy.RandomState":
        st = saved["state"]
        gen.set_state({**st, "state": {**st["state"], "key": np.asarray(st["state"]["key"], dtype=np.uint32)}})
    elif isinstance(gen, torch.Generator) and saved["kind"] == "torch.Generator":
        gen.set_state(saved["state"])
    else:
        raise TypeError(f"saved generator state of kind {saved['kind']} does not fit a {type(gen).__name__}")


def rng_state(generators: Mapping[str, Any], device: torch.device | None = None) -> dict[str, Any]:
    """Every RNG state a loop's future draws depend on.

    Args:
        generators: the loop's own generator objects by name (numpy ``Generator`` / ``RandomState``,
            ``torch.Generator``).
        device: the training device; for a CUDA device its generator is included.
    """
    np_global = np.random.get_state(legacy=False)
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {**np_global, "state": {**np_global["state"], "key": np_global["state"]["key"].tolist()}},
        "python": random.getstate(),
        "own": {name: _generator_state(gen) for name, gen in generators.items()},
    }
    if device is not None and device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` captured (the same generator names must be given)."""
    torch.set_rng_state(state["torch"])
    np_global = state["numpy"]
    np.random.set_state({**np_global, "state": {**np_global["state"],
                                               "key": np.asarray(np_global["state"]["key"], dtype=np.uint32)}})
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if set(generators) != set(state["own"]):
        raise ValueError(f"resume state holds generators {sorted(state['own'])}, the loop owns {sorted(generators)}")
    for name, gen in generators.items():
        _set_generator_state(gen, state["own"][name])
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the file -----------------------------------------------------------------------------------

def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {prefix or "identity": value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _differences(stored: Any, current: Any) -> list[str]:
    """The dotted keys whose values differ (``sidecar.lr``)."""
    a, b = _flat(stored), _flat(current)
    missing = object()
    return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


class ResumeFile:
    """The resume state of one training, ``<weights>.resume``.

    Args:
        weights: the weights file the training writes (the state lies beside it).
        what: what trains (``backbone``, ``dgf``, ...), for the messages.
        identity: JSON-like values that must be equal for a state to be resumed: the weights'
            sidecar options, or the loop's config where there is none.
        runtime: how often to write.
        enabled: False to write and read nothing.
        clock: seconds, monotonic (a test's fake clock).
        rank, world: this process's rank and the number of data-parallel ranks (torchrun). With
            more than one, every rank keeps its own file, rank 0's clock decides for all when a
            state is due, and a state is resumed only when every rank holds one at the same step.
    """

    def __init__(self, weights: Path, what: str, identity: Mapping[str, Any], runtime: TrainRuntime | None = None,
                 *, enabled: bool = True, clock: Any = time.monotonic, rank: int = 0, world: int = 1) -> None:
        self.path, self.what = resume_path(Path(weights), rank, world), what
        self.rank, self.world = rank, world
        self.identity = _plain({**identity, "world": world} if world > 1 else identity)
        self.runtime = runtime or TrainRuntime()
        self.enabled, self.clock = enabled, clock
        self.last = clock()
        self._payload: dict[str, Any] | None = None
        self._loaded = False

    def load(self) -> dict[str, Any] | None:
        """The stored state when it belongs to this training (read once), else None.

        A state from other options, of another format or unreadable is discarded with one line.
        """
        if self._loaded:
            return self._payload
        self._loaded = True
        self._payload = self._read()
        if self.world > 1:
            self._payload = self._agree(self._payload)
        return self._payload

    def _agree(self, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        """Every rank's state, or none: ranks killed between their writes hold different steps."""
        mine = None if payload is None else (payload.get("phase", ""), int(payload["step"]))
        every: list[Any] = [None] * self.world
        dist.all_gather_object(every, mine)
        if all(x == every[0] for x in every):
            return payload
        if self.rank == 0 and any(x is not None for x in every):
            _say(f"discarding the resume states of {self.what}: the ranks stopped at different steps "
                 f"({', '.join('none' if x is None else str(x[1]) for x in every)}); starting at step 0")
        return None

    def _read(self) -> dict[str, Any] | None:
        if self.enabled:
            self._sweep()
        if not (self.enabled and self.runtime.resume and self.path.is_file()):
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is discarded the same way
            _say(f"discarding {self.path}: not a readable resume state ({type(err).__name__}: {err}); "
                 "starting at step 0")
            return None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            _say(f"discarding {self.path}: not a resume state of format {FORMAT}; starting at step 0")
            return None
        if payload.get("what") != self.what or payload.get("identity") != self.identity:
            same_what = payload.get("what") == self.what
            fields = _differences(payload.get("identity"), self.identity) if same_what else ["what"]
            _say(f"discarding {self.path}: written by a training with other options ({', '.join(fields)}); "
                 "starting at step 0")
            return None
        return payload

    def take(self, phase: str = "") -> dict[str, Any] | None:
        """The stored state if it is at ``phase`` (once: a later call gets None)."""
        payload = self.load()
        if payload is None or payload.get("phase", "") != phase:
            return None
        self._payload = None
        return payload

    def phase(self) -> str | None:
        """The phase of the stored state (a multi-stage training's stage), None without one."""
        payload = self.load()
        return None if payload is None else str(payload.get("phase", ""))

    def due(self) -> bool:
        """Whether ``checkpoint_every_s`` has passed since the last write (or since the start);
        under torchrun rank 0's answer on every rank (a collective: every rank calls it)."""
        due = self.clock() - self.last >= self.runtime.checkpoint_every_s
        if self.world > 1:
            due = bool(distributed.broadcast(due))
        return due

    def write(self, payload: Mapping[str, Any]) -> None:
        """Write ``payload`` (with this training's identity) atomically; a no-op when disabled."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        full = {**payload, "format": FORMAT, "what": self.what, "identity": self.identity}
        write_atomically(self.path, lambda tmp: torch.save(full, tmp))
        self.last = self.clock()

    def remove(self) -> None:
        """Remove the state (the weights are saved: the training is complete)."""
        if self.enabled:
            self.path.unlink(missing_ok=True)
            self._sweep()

    def _sweep(self) -> None:
        """Remove the temporary files of writes that a kill interrupted (``.<name>.<random>.tmp``)."""
        if self.path.parent.is_dir():
            for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                tmp.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and paths as strings (as the stored copy reads back)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def identity_of(sidecar: Mapping[str, Any] | None, config: Any, **more: Any) -> dict[str, Any]:
    """What must match for a state to be resumed: the sidecar when there is one (it names every
    option that shapes the weights), else every field of ``config`` (a dataclass); plus ``more``."""
    base = {"sidecar": dict(sidecar)} if sidecar is not None else {"config": dataclasses.asdict(config)}
    return _plain({**base, **more})


# --- stopping at a step's end ------------------------------------------------------------------

class _Stop:
    """A SIGINT or SIGTERM held back until the running step ends (see :meth:`Checkpointer.guard`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def restore(self) -> None:
        for s, old in self.previous.items():
            signal.signal(s, old)
        self.previous = {}

    def deliver(self) -> None:
        """Put the previous handlers back and raise the held signal through them (Ctrl-C's
        ``KeyboardInterrupt``, or the harness's exit 130 / 143)."""
        self.restore()
        if self.signum is not None:
            signal.raise_signal(self.signum)


# --- a loop's state -----------------------------------------------------------------------------

@dataclasses.dataclass
class Snapshot:
    """Where a restored loop stands: steps done, the loss of each, the loop's own extra state."""

    step: int
    losses: list[float]
    extra: dict[str, Any]


class Checkpointer:
    """Writes and restores one step loop's state through a :class:`ResumeFile`.

    Args:
        file: the resume file (None: no state is written or read; the loop runs as before).
        total: the loop's number of steps.
        modules: the modules whose state dicts change during training.
        optimizers: their optimisers.
        generators: the generator objects the loop draws from (besides the global ones).
        device: the training device (its CUDA generator is saved).
        phase: the stage of a multi-stage training (GLNet) this loop is.
    """

    def __init__(self, file: ResumeFile | None, total: int, *, modules: Mapping[str, torch.nn.Module],
                 optimizers: Mapping[str, torch.optim.Optimizer], generators: Mapping[str, Any] | None = None,
                 device: torch.device | None = None, phase: str = "") -> None:
        self.file, self.total, self.phase = file, total, phase
        self.modules, self.optimizers = dict(modules), dict(optimizers)
        self.generators = dict(generators or {})
        self.device = device
        self.stop: _Stop | None = None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """The loop's steps: SIGINT and SIGTERM wait for the running step to end, whose state is
        then written (due or not) before the signal goes on to the handler that was there before,
        so an interruption loses no step. A second signal goes on at once. Not under torchrun (the
        ranks would stop at different steps), outside the main thread, or without a file.
        """
        if self.file is None or self.file.world > 1:
            yield
            return
        stop = _Stop()

        def held(signum: int, frame: object) -> None:
            if stop.signum is not None:  # asked twice: stop now, as without the guard
                stop.signum = signum
                stop.deliver()
                return
            stop.signum = signum
            _say(f"{signal.Signals(signum).name}: stopping after this step, once its resume state is written "
                 "(again to stop at once)")

        try:
            stop.previous = {s: signal.signal(s, held) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals go to the main thread's handlers as they are
            yield
            return
        self.stop = stop
        try:
            yield
            if stop.signum is not None:  # held after the last step's state: deliver it now
                stop.deliver()
        finally:
            stop.restore()
            self.stop = None

    def restore(self) -> Snapshot | None:
        """Load the stored state into the modules, optimisers and generators; None when there is none."""
        payload = None if self.file is None else self.file.take(self.phase)
        if payload is None:
            return None
        assert self.file is not None
        for name, module in self.modules.items():
            module.load_state_dict(payload["modules"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        set_rng_state(payload["rng"], self.generators, self.device)
        step = int(payload["step"])
        stage = f" {self.phase}" if self.phase else ""
        _say(f"resuming {self.file.what}{stage} from step {step}/{self.total} ({self.file.path})")
        return Snapshot(step, [float(x) for x in payload["losses"]], dict(payload.get("extra", {})))

    def after_step(self, step: int, losses: list[float], extra: Mapping[str, Any] | None = None, *,
                   force: bool = False) -> None:
        """Write the state after ``step`` steps if it is due, forced, the last step, or a signal is
        held (:meth:`guard`; the signal then goes on)."""
        stopping = self.stop is not None and self.stop.signum is not None
        if self.file is None or not (force or stopping or step >= self.total or self.file.due()):
            return
        self.file.write({
            "phase": self.phase,
            "step": step,
            "losses": list(losses),
            "modules": {name: {k: v.detach().cpu() for k, v in m.state_dict().items()}
                        for name, m in self.modules.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": rng_state(self.generators, self.device),
            "extra": dict(extra or {}),
        })
        if stopping:
            assert self.stop is not None
            self.stop.deliver()
