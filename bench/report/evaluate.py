"""``bench.evaluate``: the sweep of ``bench run`` from Python, returning the tables ``bench table`` prints.

``evaluate("guided_filter", "synthetic", limit=2)`` is ``python -m bench run synthetic
methods=[guided_filter] limit=2``: the same checks, plan resolution (the reference backbone),
training of what is missing when ``train=true``, timing and memory (``bench.runtime.measure``),
append-only records and resume (a unit whose images are recorded under the same unit key is not
rerun), and the same tables (``bench.report.tables.build_all_tables``, written to the run's tables
folder as ``bench run`` writes them). It returns an :class:`Evaluation` whose ``markdown`` equals
that ``tables.md``.

Besides a registry key it takes a method object (``bench.create_method(...)``) or a plain
``refine(image, coarse)`` callable. Those run in this process (``isolate=false``: an object cannot
be handed to a worker) under the name ``name`` (default: the method's registry key with
``-object``, or the callable's ``__name__``), registered for the call's duration; their unit key
holds that name and ``version`` but not their weights: change ``version`` when they change, or the
run resumes from the old records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.core.config import BenchConfig
from bench.core.errors import UserError
from bench.core.interface import Method
from bench.core.registry import ENV_VAR
from bench.report.table_format import to_markdown
from bench.report.table_model import Table, UnitResult

MethodLike = str | Method | Callable[..., Any]


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    Attributes:
        config: the resolved config of the run (``out_dir``: its records and ``run.json``).
        results: ``{(method, "WxH"): UnitResult}``, recomputed from the records.
        tables: Tables 1, 2, 3 and the comparison, as ``bench table`` renders them.
        statuses: ``{(method, (w, h)): status}`` of this call's sweep (``done``: resumed, nothing to run).
    """

    config: BenchConfig
    results: dict[tuple[str, str], UnitResult]
    tables: list[Table]
    statuses: dict[tuple[str, tuple[int, int]], str]

    @property
    def out_dir(self) -> Path:
        """The run folder (records, ``run.json``)."""
        return self.config.out_path

    @property
    def markdown(self) -> str:
        """Every table as Markdown: the text of ``bench table`` (``tables.md``)."""
        return "\n".join(to_markdown(t) for t in self.tables)

    def table(self, name: str) -> Table:
        """One table by name (``table1``, ``table2``, ``table3``, ``comparison``).

        Raises:
            KeyError: no table of that name; the message lists them.
        """
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name!r}; tables: {[t.name for t in self.tables]}")

    def scores(self, fmt: str = "md") -> str:
        """``bench score``'s output for this run: ``md``, ``csv`` or ``json`` (time and memory included)."""
        from bench.data import dataset_info
        from bench.report.score import render

        return render(self.config, dataset_info(self.config), list(self.results.values()), fmt)


class _Wrapped(Method):
    """A method object or a ``refine(image, coarse)`` callable behind the method contract."""

    target: ClassVar[Any] = None  # the callable; set on the subclass made per call

    def refine(self, image: Any, coarse: Any) -> Any:
        import numpy as np
        import torch

        out = type(self).target(image, coarse)
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out))
        return out.to(device=self.device, dtype=torch.int64)


def _wrap(method: Method | Callable[..., Any], name: str | None, version: int,
          uses_coarse: bool | None) -> type[Method]:
    """A Method subclass delegating to ``method`` (an object's ``refine`` or a callable)."""
    if isinstance(method, Method):
        cls = type(method)
        key, display = name or f"{cls.name}-object", str(getattr(method, "label", None) or cls.display_name)
        coarse, backbone, target = cls.uses_coarse, cls.needs_backbone, method.refine
    else:
        key = str(name or getattr(method, "__name__", ""))
        display, coarse, target = key, True if uses_coarse is None else uses_coarse, method
        backbone = coarse
        if not key or key == "<lambda>":
            raise UserError("evaluate: a lambda needs name='...' (it names the rows and the unit key)")
    attrs = {"name": key, "display_name": display, "version": version, "uses_coarse": coarse,
             "needs_backbone": backbone, "target": staticmethod(target)}
    return type(f"Wrapped_{abs(hash(key))}", (_Wrapped,), attrs)


@contextlib.contextmanager
def _registered(cls: type[Method] | None) -> Iterator[None]:
    """``cls`` in the method registry for the duration (the environment entry ``name=module:attr``)."""
    if cls is None:
        yield
        return
    attr = f"_evaluated_{abs(hash(cls.name))}"
    module = sys.modules[__name__]
    setattr(module, attr, cls)
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = ";".join(filter(None, [before, f"{cls.name}={__name__}:{attr}"]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before
        delattr(module, attr)


def evaluate(method: MethodLike, dataset: str = "synthetic", split: str | None = None, *,
             options: Mapping[str, Any] | None = None, name: str | None = None, version: int = 1,
             uses_coarse: bool | None = None, write_tables: bool = True, **overrides: Any) -> Evaluation:
    """Evaluate one method on a dataset split as ``bench run`` does, and return its tables.

    Args:
        method: a registry key (``"guided_filter"``), a method object (``bench.create_method``) or a
            callable ``refine(image, coarse) -> labels``: ``image`` (H, W, 3) uint8 RGB, ``coarse`` a
            ``bench.core.interface.Coarse`` ((C, h, w) float32 probabilities on the device) or None,
            labels (H, W) int64 (tensor or array).
        dataset: the dataset config (``configs/datasets/<dataset>.yaml``).
        split: the evaluated split (default: the config's).
        options: more overrides, for dotted keys (``{"guided_filter.radius": 4}``).
        name: the rows' and unit key's name of an object or callable (see the module docstring).
        version: part of an object's or callable's unit key: change it when the method changes.
        uses_coarse: whether a callable reads the coarse map (default True: the backbone runs).
        write_tables: write the tables to the run's tables folder, as ``bench run`` does.
        **overrides: config keys, as ``key=value`` on the command line (``limit=2``, ``out_dir=...``,
            ``threads=1``, ``input_size="128x64"``).

    Returns:
        An :class:`Evaluation`; its ``markdown`` equals ``bench table``'s for the same run.

    Raises:
        UserError: a bad key, value, folder or missing weights (``bench run`` exits 2 on the same).
    """
    from bench.pipeline.configure import load

    wrapped = None if isinstance(method, str) else _wrap(method, name, version, uses_coarse)
    key = method if isinstance(method, str) else wrapped.name  # type: ignore[union-attr]
    values: dict[str, Any] = {**overrides, **dict(options or {}), "methods": [key]}
    if split is not None:
        values["split"] = split
    if wrapped is not None:
        values["isolate"] = False  # the object lives in this process
    with _registered(wrapped):
        try:
            cfg = load(dataset, values)
        except (KeyError, ValueError, TypeError, FileNotFoundError) as err:
            raise UserError(str(err.args[0] if isinstance(err, KeyError) and err.args else err)) from err
        return _sweep(cfg, write_tables)


def _sweep(cfg: BenchConfig, write_tables: bool) -> Evaluation:
    """``bench run``'s steps after the config: checks, plan resolution, training, sweep, tables."""
    from bench.data import dataset_info
    from bench.evaluation import run_folder
    from bench.pipeline import plan
    from bench.pipeline.runner import run_sweep, train_missing
    from bench.pipeline.validate import check_out_dir, check_run
    from bench.report.results import load_results
    from bench.report.tables import build_all_tables
    from bench.report.tables import write_tables as write
    from bench.runtime import procs

    check_out_dir(cfg)
    check_run(cfg)
    cfg = plan.resolve(cfg)
    blocked = plan.blocking_lines(plan.build_plan(cfg), ())
    if blocked:
        raise UserError(f"{len(blocked)} unit(s) lack weights and train is off: {blocked[0]}")
    with procs.out_dir_lock(cfg.out_path) as lock_fd:  # one sweep a folder, as bench run
        procs.clean_stale_temp(cfg.out_path)
        run_folder.write(cfg)
        if cfg.train:
            train_missing(cfg)
        statuses = {u: str(s) for u, s in run_sweep(cfg, lock_fd=lock_fd).items()}
    results = load_results(cfg)
    tables = build_all_tables(cfg, dataset_info(cfg), results)
    if write_tables:
        write(tables, cfg.tables_path)
    return Evaluation(dataclasses.replace(cfg), results, tables, statuses)
