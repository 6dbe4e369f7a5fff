"""The method contract as checks any registered method can be put through by name.

``python -m bench check NAME [option=value ...]`` builds ``NAME`` on a tiny generated dataset
(4 classes, 128x64 images, a 32x16 input, the ``light`` backbone at random weights), trains its
checkpoints for a few steps when it has any, and checks what ``bench.core.interface`` promises:

- the class: ``name`` is its registry key, a ``display_name``, an ``int`` ``version``, a frozen
  dataclass ``Config`` whose fields include ``train_fields``;
- the options: ``configs/methods/NAME.yaml`` (if any) plus the dataclass defaults build a Config;
- the weights: ``checkpoints`` returns ``{key: Path}``; ``train`` writes every one of them;
- ``refine``: an (H, W) int64 tensor on the method's device, labels in ``0..C-1``, the same labels
  twice in a row (deterministic), and on a second image too.

The checks are about the contract, not accuracy: the backbone is untrained. The same checks run
for every built-in method in ``tests/methods/test_contract.py``. A plugin's training is shortened
with options on the command line (``python -m bench check my_method iterations=2``); the built-in
methods' short schedules are :data:`SMOKE`.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.interface import DatasetInfo, Method, MethodContext, Sample

TINY_INFO = DatasetInfo(
    name="tiny", class_names=("a", "b", "c", "d"), ignore_index=255,
    palette=((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)), thin_classes=(3,),
)
TINY_IMAGE = (128, 64)  # (w, h)
TINY_INPUT = (32, 16)

# a handful of optimiser steps, so training code runs without taking minutes
SMOKE: dict[str, dict[str, Any]] = {
    "dgf": {"iterations": 2},
    "pointrend": {"iterations": 2},
    "segfix": {"iterations": 2},
    "cascadepsp": {"iterations": 2, "batch_size": 2, "crop_size": [48, 48]},
    "crm": {"iterations": 2, "batch_size": 2, "crop_size": [48, 48]},
    "segrefiner": {"iterations": 2, "batch_size": 2, "model_size": 32},
    "glnet": {"iterations_global": 2, "iterations_local": 2, "iterations_l2g": 2, "batch_size": 2, "min_overlap": 0},
    "isdnet": {"iterations": 2, "batch_size": 2, "crop_size": [64, 64]},
    "magnet": {"epochs": 1},
    "magnet_fast": {"epochs": 1},
    "magnet_fast_paper": {"epochs": 1},
}
# sizes the tiny context implies for MagNet (image 128x64, input 32x16)
TINY_OPTIONS: dict[str, dict[str, Any]] = {
    "magnet": {"scales": [[32, 16], [64, 32], [128, 64]], "n_points": 256},
    "magnet_fast": {"scales": [[32, 16], [64, 32], [128, 64]], "n_patches": 2},
    "magnet_fast_paper": {"scales": [[32, 16], [64, 32], [128, 64]], "n_patches": 2},
}


class TinyDataset:
    """Blocky 4-class scenes with a thin vertical bar (class 3); colour = class + noise.

    Item ``i``: image (64, 128, 3) uint8 RGB, label (64, 128) uint8 with one ignored (255) pixel.
    """

    info = TINY_INFO
    image_size = TINY_IMAGE

    def __init__(self, n: int = 4, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def ids(self) -> list[str]:
        """``tiny_0`` .. ``tiny_{n-1}``."""
        return [f"tiny_{i}" for i in range(self.n)]

    def __getitem__(self, i: int) -> Sample:
        """Scene ``i`` (see the class docstring)."""
        rng = np.random.default_rng(self.seed * 1000 + i)
        label = np.kron(rng.integers(0, 3, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
        x = int(rng.integers(4, 120))
        label[:, x:x + 2] = 3
        label[0, 0] = 255
        colours = np.array(TINY_INFO.palette, np.float64)
        image = colours[np.minimum(label, 3)] * 0.7 + rng.normal(0, 20, label.shape + (3,))
        return Sample(self.ids()[i], np.clip(image, 0, 255).astype(np.uint8), label)


def tiny_context(checkpoint_dir: Path, device: str = "cpu") -> MethodContext:
    """A context on the tiny dataset: the ``light`` backbone (width 16, seeded random weights)."""
    from bench.models.backbones import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("light", TINY_INFO.num_classes, width=16).eval().to(device)
    return MethodContext(num_classes=TINY_INFO.num_classes, input_size=TINY_INPUT, device=torch.device(device),
                         backbone=backbone, checkpoint_dir=Path(checkpoint_dir), dataset=TINY_INFO,
                         image_size=TINY_IMAGE)


class ContractError(AssertionError):
    """A method breaks the contract; the message says which promise and what was found."""


def _require(ok: bool, text: str) -> None:
    if not ok:
        raise ContractError(text)


def check_class(name: str, cls: type) -> None:
    """The class attributes the runner and the tables rely on."""
    _require(getattr(cls, "name", None) == name, f"{cls.__qualname__}.name is {getattr(cls, 'name', None)!r}, "
                                                 f"not its registry key {name!r}")
    _require(bool(getattr(cls, "display_name", "")), f"{cls.__qualname__}.display_name is empty")
    version = getattr(cls, "version", None)
    _require(isinstance(version, int) and not isinstance(version, bool),
             f"{name}.version must be an int, got {version!r}")
    config: Any = getattr(cls, "Config", None)
    _require(dataclasses.is_dataclass(config) and isinstance(config, type),
             f"{name}.Config must be a dataclass, got {config!r}")
    params = getattr(config, "__dataclass_params__", None)
    _require(bool(params and params.frozen), f"{name}.Config must be frozen (@dataclass(frozen=True))")
    fields = {f.name for f in dataclasses.fields(config)}
    extra = sorted(set(getattr(cls, "train_fields", ())) - fields)
    _require(not extra, f"{name}.train_fields names {extra}, which are not fields of {config.__qualname__}")
    for flag in ("uses_coarse", "needs_backbone"):
        _require(isinstance(getattr(cls, flag, None), bool), f"{name}.{flag} must be True or False")


def method_options(name: str, cls: type[Method], overrides: Mapping[str, Any] | None = None) -> Any:
    """The Config the check runs: defaults < ``configs/methods/NAME.yaml`` < tiny sizes < ``overrides``."""
    from bench.core.config import BenchConfig, method_config_values
    from bench.core.config import config_from_mapping

    values = method_config_values(BenchConfig(), name)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    tiny = {k: v for k, v in {**TINY_OPTIONS.get(name, {}), **SMOKE.get(name, {})}.items() if k in known}
    try:
        return config_from_mapping(cls.Config, {**values, **tiny, **dict(overrides or {})})
    except (KeyError, TypeError, ValueError) as err:
        raise ContractError(f"{name}: its options do not build a Config: {err}") from err


def build(name: str, cls: type[Method], ctx: MethodContext, dataset: Any,
          overrides: Mapping[str, Any] | None = None) -> Any:
    """``cls(cfg, ctx)`` after training every checkpoint it lists (a few steps, see :data:`SMOKE`)."""
    cfg = method_options(name, cls, overrides)
    paths = cls.checkpoints(cfg, ctx)
    _require(isinstance(paths, Mapping) and all(isinstance(p, Path) for p in paths.values()),
             f"{name}.checkpoints must return {{key: pathlib.Path}}, got {paths!r}")
    if paths and not all(p.is_file() for p in paths.values()):
        cls.train(cfg, ctx, dataset, paths)
        missing = [str(p) for p in paths.values() if not p.is_file() or p.stat().st_size == 0]
        _require(not missing, f"{name}.train did not write {missing}")
    return cls(cfg, ctx)


def check_refine(name: str, cls: type[Method], method: Any, ctx: MethodContext, dataset: Any) -> None:
    """``refine`` on two images: shape, dtype, device, label range and determinism."""
    from bench.models.coarse import compute_coarse

    for index in (0, 1):
        sample = dataset[index]
        coarse = compute_coarse(ctx.backbone, sample.image, ctx.input_size, ctx.device) if cls.uses_coarse else None
        out = method.refine(sample.image, coarse)
        _require(isinstance(out, torch.Tensor), f"{name}.refine must return a torch.Tensor, got {type(out).__name__}")
        _require(tuple(out.shape) == sample.label.shape,
                 f"{name}.refine returned shape {tuple(out.shape)}, expected the image's {sample.label.shape}")
        _require(out.dtype == torch.int64, f"{name}.refine returned dtype {out.dtype}, expected torch.int64")
        _require(out.device.type == ctx.device.type,
                 f"{name}.refine returned a tensor on {out.device}, expected the method's {ctx.device}")
        low, high = int(out.min()), int(out.max())
        _require(0 <= low and high < ctx.num_classes,
                 f"{name}.refine returned labels {low}..{high}, expected 0..{ctx.num_classes - 1}")
        _require(torch.equal(out, method.refine(sample.image, coarse)),
                 f"{name}.refine is not deterministic: two calls on {sample.id} differ")


def run_checks(name: str, overrides: Mapping[str, Any] | None = None, checkpoint_dir: Path | None = None,
               device: str = "cpu", report: Callable[[str], None] | None = None) -> list[str]:
    """Every check of the contract on method ``name``.

    Args:
        name: registry key (built-in, entry point or ``MAGNET_BENCH_METHODS``).
        overrides: Config options on top of the method file and :data:`SMOKE` (e.g. a short schedule).
        checkpoint_dir: where trained weights go (default: a temporary folder, removed after).
        device: ``cpu`` or ``cuda[:i]``.
        report: called with one line per check (``ok ...`` / ``FAIL ...``).

    Returns:
        The failures, one line each (empty: the method keeps the contract).

    Raises:
        KeyError: unknown method. MethodUnavailable: its optional dependency is missing.
    """
    from bench.core.registry import resolve

    cls = resolve(name)
    say = report or (lambda line: None)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-check-{name}-") as tmp:
        ctx = tiny_context(Path(checkpoint_dir or tmp), device)
        dataset = TinyDataset()
        state: dict[str, Any] = {}
        steps: list[tuple[str, Callable[[], None]]] = [
            ("class attributes", lambda: check_class(name, cls)),
            ("options build a Config", lambda: method_options(name, cls, overrides) and None),
            ("checkpoints trained and loaded",
             lambda: state.__setitem__("m", build(name, cls, ctx, dataset, overrides))),
            ("refine: shape, dtype, device, range, deterministic",
             lambda: check_refine(name, cls, state["m"], ctx, dataset)),
        ]
        for what, step in steps:
            if what.startswith("refine") and "m" not in state:
                failures.append(f"{what}: not run (the method was not built)")
                say(f"SKIP {what}")
                continue
            try:
                step()
            except ContractError as err:
                failures.append(f"{what}: {err}")
                say(f"FAIL {what}: {err}")
            except Exception as err:  # noqa: BLE001 - a crash in the method is a failed check, shown in full
                failures.append(f"{what}: {type(err).__name__}: {err}")
                say(f"FAIL {what}: {type(err).__name__}: {err}\n{traceback.format_exc()}")
            else:
                say(f"ok   {what}")
    return failures


def main(name: str, overrides: Mapping[str, Any], device: str = "cpu") -> int:
    """``python -m bench check NAME``: 0 when every check passes, 1 naming each failure."""
    torch.set_num_threads(1)  # tiny tensors gain nothing from more, and the check must not stall on a busy machine
    failures = run_checks(name, overrides, device=device, report=print)
    if failures:
        print(f"[check] {name}: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print(f"[check] {name}: keeps the method contract")
    return 0
