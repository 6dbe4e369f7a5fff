"""The sweep: train what is missing, then run every (method, input size, coarse source) unit, appending records.

A config without coarse sources sweeps each (method, input size) once on the ``backbone`` source,
under the keys, labels and records it always had; a dataset that gives coarse maps
(``coarse_sources``) repeats the units per source (``bench.pipeline.unit.sweep_units``), each
labelled ``method@WxH/source`` and recorded with ``coarse_source``.

Each unit runs in a fresh subprocess by default (``isolate``), which is what makes the CPU
peak-memory figure that of the unit alone and keeps one crashing method from ending the sweep.
The worker dies with the sweep's process (``bench.runtime.procs``) and reports its status back through
a file. A rerun skips images already recorded with status ok under the same ``unit_key``
(``bench.pipeline.unit``: what changes a result, not ``limit`` or where the data lies). What builds a unit
(its context, key, weights and timed prediction) is ``bench.pipeline.unit``; this module only sweeps.

An image that cannot be read (a corrupt file, a label value outside the format, an image and
label of different sizes) is recorded as a failed image record with its reason, and its unit
goes on; every image record carries ``n_expected``, the number of images the unit covers, so
the tables can show a unit that did not cover them all as partial.

Progress: the units report to the sweep's process through an events file
(``bench.runtime.progress``): the worker appends an event when it knows its images, before and
after each image; the sweep's process appends the start and end of the sweep and of each unit,
and a :class:`~bench.runtime.progress.Watcher` thread of the main rank tails the file and prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench.runtime import distributed, measure, procs, progress
from bench.evaluation import records, run_folder
from bench.weights import reference
from bench.weights.sidecar import StaleCheckpoint
from bench.core.batch import batch_setting
from bench.core.config import BACKBONE_SOURCE, BenchConfig, build, file_digest, format_size
from bench.core.interface import Method, MethodContext
from bench.evaluation.predictions import save_unit_predictions
from bench.core.registry import MethodUnavailable, resolve
from bench.core.status import Status, parse
from bench.data.splits import open_split
from bench.pipeline.unit import (MissingCheckpoint, checkpoint_files, display_name, expected_ids, from_file, key_of,
                                 load_sample,
                                 method_config, predict, prepare, score_image, setup_torch, sweep_units, unit_full_size,
                                 unresolved_key)

Unit = tuple[str, tuple[int, int], str]  # (method, input size, coarse source)


def records_file(cfg: BenchConfig) -> Path:
    """This process's record file: ``records.jsonl``, or one per rank under torchrun."""
    rank, _, world = distributed.env_world()
    return cfg.out_path / (f"records-rank{rank}.jsonl" if world > 1 or rank != 0 else "records.jsonl")


def events_file(cfg: BenchConfig) -> Path:
    """This process's progress events file (``bench.runtime.progress``), one per rank like the records."""
    rank, _, world = distributed.env_world()
    return progress.events_file(cfg.out_path, rank, world)


def unit_label(name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> str:
    """How run.json and the progress events name a unit: ``"method@WxH"``, and
    ``"method@WxH/source"`` on a coarse source given with the data."""
    return f"{name}@{format_size(size)}" + (f"/{source}" if from_file(source) else "")


def _image_record(cfg: BenchConfig, ukey: str, name: str, method: Any, size: tuple[int, int], source: str,
                  sample: Any, pred: np.ndarray, info: Any, times: dict[str, float], mem: dict[str, Any],
                  prov: dict[str, Any], expected: int) -> dict[str, Any]:
    cls = type(method)
    track: dict[str, Any] = {}
    if cfg.track == "refinement":  # the binary protocol's counts (bench.evaluation.track)
        from bench.evaluation.track import score_track_image

        track = score_track_image(sample.label, pred, cfg.biou_ratio,
                                  sample.coarse.get(source) if from_file(source) else None)
    hook = getattr(method, "record_extras", None)  # plugins built on an older interface may lack it
    extras = hook() if callable(hook) else {}
    if extras:
        track = {**track, "extras": dict(extras)}
    return {"type": "image", "unit_key": ukey, "method": name, "display_name": display_name(method),
            "method_version": cls.version, "batch": batch_setting(cls, method.cfg),  # items per forward (bench.core.batch)
            "size": format_size(size), "coarse_source": source, "image_id": sample.id, "status": Status.OK,
            "n_expected": expected, **score_image(sample, pred, info, cfg.biou_ratio), **track, **times, **mem, "provenance": prov}


def _unit_failure(cfg: BenchConfig, ukey: str, name: str, size: tuple[int, int], status: Status, message: str,
                  source: str = BACKBONE_SOURCE) -> None:
    try:
        display = resolve(name).display_name
    except Exception:  # noqa: BLE001 - an unknown or unavailable method keeps its key as row name
        display = None
    record = records.unit_record(ukey, name, format_size(size), status, message, display)
    records.append(records_file(cfg), {**record, "coarse_source": source})


def _pending(cfg: BenchConfig, dataset: Any, ukey: str) -> list[int]:
    """This rank's image indices that no rank has recorded yet.

    The shard is taken before the recorded images are removed, so it never depends on how far the
    other ranks have got.
    """
    ids = dataset.ids()
    done = records.done_images(records.load(cfg.out_path), ukey)
    return [i for i in _shard(list(range(n_expected(cfg, dataset)))) if ids[i] not in done]


def n_expected(cfg: BenchConfig, dataset: Any) -> int:
    """How many images a unit covers: the split's, or its first ``limit``."""
    return len(expected_ids(cfg, dataset))


def _shard(indices: list[int]) -> list[int]:
    rank, _, world = distributed.env_world()
    return indices[rank::world]


# a failure while preparing a unit is its status, not a crash
_PREPARE_FAILURES: tuple[tuple[type[Exception], Status], ...] = (
    (MethodUnavailable, Status.UNAVAILABLE), (MissingCheckpoint, Status.MISSING_CHECKPOINT),
    (StaleCheckpoint, Status.STALE_CHECKPOINT), (reference.ReferenceMismatch, Status.REFERENCE_MISMATCH))


def run_unit(cfg: BenchConfig, name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> Status:
    """Run one (method, input size, coarse source) in this process; returns its status."""
    device = setup_torch(cfg)
    dataset = open_split(cfg, cfg.split)
    info, full = dataset.info, unit_full_size(cfg)
    ukey = unresolved_key(cfg, name, size, source)
    try:
        cls = resolve(name)
        mcfg = method_config(cfg, cls, name)
        ukey = key_of(cfg, name, size, source)
        pending = _pending(cfg, dataset, ukey)
        total = len(_shard(list(range(n_expected(cfg, dataset)))))
        progress.append_event(events_file(cfg), {"event": "unit", "unit": unit_label(name, size, source),
                                                 "total": total, "done": total - len(pending), "pid": os.getpid()})
        if not pending:
            return Status.DONE
        probe = measure.MemoryProbe(device)
        method, backbone, ctx = prepare(cfg, cls, name, mcfg, size, device, info, full, source)
        probe.setup_done()
    except tuple(e for e, _ in _PREPARE_FAILURES) as err:
        status = next(s for e, s in _PREPARE_FAILURES if isinstance(err, e))
        _unit_failure(cfg, ukey, name, size, status, str(err), source)
        return status
    return _sweep_images(cfg, (name, size, source), cls, ukey, dataset, pending, method, backbone, ctx, probe)


def _failed_image(cfg: BenchConfig, ukey: str, unit: Unit, image_id: str, reason: str, expected: int) -> None:
    name, size, source = unit
    record = records.failed_image_record(ukey, name, format_size(size), image_id, reason, expected)
    records.append(records_file(cfg), {**record, "coarse_source": source})
    # the sweep's process prints it (the worker's own output is captured)
    progress.append_event(events_file(cfg), {"event": "done", "unit": unit_label(*unit), "image_id": image_id,
                                             "ok": False, "reason": reason})


def _sweep_images(cfg: BenchConfig, unit: Unit, cls: type[Method], ukey: str, dataset: Any,
                  pending: list[int], method: Any, backbone: Any, ctx: MethodContext,
                  probe: measure.MemoryProbe) -> Status:
    """Every pending image of one unit; returns ``ok``, ``partial`` (some image failed) or ``oom``."""
    prov = measure.provenance(ctx.device, cfg.seed)
    prov["warmup"] = cfg.warmup
    if cfg.amp:  # absent when off, as in every record written before the option
        prov["amp"] = "float16" if ctx.device.type == "cuda" else "bfloat16"
    from bench.weights.released import provenance as released_provenance  # issue 12: the released files' sha256

    prov.update(released_provenance(cfg))  # {} unless released_weights= is set
    name, size, source = unit
    # digests of the weights the unit loads (as in its key): bench compare flags other weights, bench export lists them
    prov["weights"] = {k: file_digest(p) for k, p in checkpoint_files(cfg, cls, method.cfg, ctx, source).items()}
    out, ids, expected = records_file(cfg), dataset.ids(), n_expected(cfg, dataset)
    events, label = events_file(cfg), unit_label(*unit)
    status, warm = Status.OK, False
    with torch.inference_mode():
        for index in pending:
            progress.append_event(events, {"event": "image", "unit": label, "image_id": ids[index]})
            image_clock = time.perf_counter()
            sample, reason = load_sample(dataset, index)
            if sample is None:
                _failed_image(cfg, ukey, unit, ids[index], reason or "", expected)
                status = Status.PARTIAL
                continue
            if not warm:  # warm up on the first image that loads, so a bad first image spoils nothing
                for _ in range(cfg.warmup):
                    predict(method, cls, sample, backbone, ctx, probe, source)
                warm = True
            try:
                labels, times, mem = predict(method, cls, sample, backbone, ctx, probe, source)
            except torch.OutOfMemoryError as err:
                _unit_failure(cfg, ukey, name, size, Status.OOM, f"{sample.id}: {err}", source)
                return Status.OOM
            records.append(out, _image_record(cfg, ukey, name, method, size, source, sample, labels, dataset.info,
                                              times, mem, prov, expected))
            # label maps for the pictures (bench.report.panels); after the record, outside every measurement
            if not from_file(source):  # one folder per (method, size): the backbone source's maps, as before
                save_unit_predictions(cfg, name, size, ukey, index, sample, labels, method, backbone, ctx)
            progress.append_event(events, {"event": "done", "unit": label, "image_id": sample.id, "ok": True,
                                           "seconds": time.perf_counter() - image_clock})
    return status


def train_missing(cfg: BenchConfig) -> dict[str, str]:
    """Train the backbone and every method checkpoint the sweep needs that is missing.

    Under torchrun the ranks share the work (``bench.pipeline.train.train_all_ranks``).

    Returns:
        ``{what: status}`` with status ``trained``, ``present``, ``missing`` (training off) or
        ``unavailable``/``untrainable`` with the reason.
    """
    from bench.pipeline.train import train_all, train_all_ranks

    if cfg.train:
        reference.refuse_write(cfg.checkpoint_path)
    return train_all_ranks(cfg) if distributed.env_world()[2] > 1 else train_all(cfg)


def _child(cfg: BenchConfig, name: str, size: tuple[int, int], config_path: Path,
           keep_fds: tuple[int, ...] = (), source: str = BACKBONE_SOURCE) -> tuple[int, str, Status]:
    """Run one unit in a worker that dies with this process; returns (exit code, stderr, status).

    ``keep_fds`` stay open in the worker (the ``out_dir`` lock, so that it is held until the
    last worker of a killed run is gone).
    """
    index = [u[2] for u in sweep_units(cfg)].index(source) if from_file(source) else 0  # a file-safe name
    status_path = config_path.with_name(f"status-{name}-{format_size(size)}-{index}.txt")
    status_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench", "unit", str(config_path), name, format_size(size),
           "--status-file", str(status_path), *(["--source", source] if from_file(source) else [])]
    parent = os.getpid()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=measure.child_env(cfg.allocator),
                          preexec_fn=procs.worker_preexec(parent), pass_fds=keep_fds)
    status = status_path.read_text().strip() if status_path.is_file() else ""
    return proc.returncode, proc.stderr, parse(status) if status else (Status.OK if proc.returncode == 0 else Status.ERROR)


def result_key(unit: Unit) -> tuple[Any, ...]:
    """How :func:`run_sweep` and run.json key a unit: ``(method, size)`` on the ``backbone`` source
    (as before sources existed), ``(method, size, source)`` on a file source."""
    return unit if from_file(unit[2]) else unit[:2]


def run_sweep(cfg: BenchConfig, *, lock_fd: int | None = None) -> dict[tuple[Any, ...], Status]:
    """Every unit of the sweep; a failing unit is recorded and the sweep goes on.

    Returns:
        ``{(method, size): status}`` (``(method, size, source)`` for a coarse source given with the
        data: :func:`result_key`): ``ok``, ``done`` (nothing left to run), ``partial`` (some
        image failed), or a failure status (``error``, ``missing_checkpoint``, ...).
    """
    results: dict[tuple[Any, ...], Status] = {}
    seconds: dict[tuple[Any, ...], tuple[float, str]] = {}
    started, clock, load = time.time(), time.perf_counter(), measure.load_average()
    cfg.out_path.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()  # the folder says which keys and images this sweep makes (bench.evaluation.run_folder)
    keys = {result_key(u): key_of(cfg, *u) for u in sweep_units(cfg)} if main else {}
    ids = _run_ids(cfg) if main else None
    if main:
        run_folder.write(cfg, keys, ids)
    events, labels = events_file(cfg), [unit_label(*u) for u in sweep_units(cfg)]
    left = _images_left(cfg, keys, ids) if main else {}
    estimates = progress.image_rates(progress.read_events(events)[0])  # earlier runs of the same units
    progress.append_event(events, {"event": "sweep", "pid": os.getpid(), "units": labels, "left": left})
    # the main rank prints (every rank's lines at once would interleave); every rank writes its events
    shown = progress.Progress(labels, left, estimates, tty=sys.stderr.isatty(), started=started)
    watch = progress.Watcher(events, shown) if main else None
    # in out_dir, named by pid, so a run killed by SIGKILL leaves it where the next run removes it
    with tempfile.TemporaryDirectory(dir=cfg.out_path, prefix=f"{procs.TEMP_PREFIX}{os.getpid()}-") as tmp, \
            watch or contextlib.nullcontext():
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(cfg.to_dict()))
        try:
            _run_units(cfg, config_path, lock_fd, watch, results, seconds)
        except BaseException as exc:  # Ctrl-C, SIGTERM: `bench status` then tells a stopped sweep from a dead one
            why = f"exit {exc.code}" if isinstance(exc, SystemExit) else type(exc).__name__
            with contextlib.suppress(OSError):  # the first error is the one to see
                progress.append_event(events, {"event": "sweep_end", "stopped": why})
            raise
        progress.append_event(events, {"event": "sweep_end"})
    if main:
        run_folder.write(cfg, keys, ids, run_folder.sweep_timing(started, time.perf_counter() - clock, seconds, load,
                                                               measure.load_average()))
    return results


def _run_units(cfg: BenchConfig, config_path: Path, lock_fd: int | None, watch: progress.Watcher | None,
               results: dict[tuple[Any, ...], Status], seconds: dict[tuple[Any, ...], tuple[float, str]]) -> None:
    """Every unit in turn, each ended with an ``end`` event; fills ``results`` and ``seconds`` as they end."""
    events = events_file(cfg)
    for unit in sweep_units(cfg):
        name, size, source = unit
        unit_clock, rkey = time.perf_counter(), result_key(unit)
        if not cfg.isolate:
            results[rkey] = _run_in_process(cfg, name, size, source)
        else:
            code, err, status = _child(cfg, name, size, config_path, () if lock_fd is None else (lock_fd,), source)
            if code != 0:
                _unit_failure(cfg, key_of(cfg, name, size, source), name, size, Status.ERROR,
                              f"exit code {code}\n{err}", source)
                on = f" on {source}" if from_file(source) else ""
                line = f"[bench] {name} @ {format_size(size)}{on} failed (exit {code}); recorded, going on"
                if watch is not None:
                    watch.say(line)
                else:
                    print(line, file=sys.stderr)
            results[rkey] = status
        seconds[rkey] = (time.perf_counter() - unit_clock, results[rkey])
        progress.append_event(events, {"event": "end", "unit": unit_label(*unit), "status": str(results[rkey])})


def _images_left(cfg: BenchConfig, keys: dict[tuple[Any, ...], str], ids: list[str] | None) -> dict[str, int]:
    """``{unit label: images of this rank not yet recorded ok}`` at the start of the sweep ({} without ids)."""
    if ids is None:
        return {}
    recs = records.load(cfg.out_path)
    mine = {ids[i] for i in _shard(list(range(len(ids))))}
    return {unit_label(*u): len(mine - records.done_images(recs, k)) for u, k in keys.items()}


def _run_ids(cfg: BenchConfig) -> list[str] | None:
    """The ids the sweep covers; None when the split cannot be opened (every unit then says why)."""
    try:
        return expected_ids(cfg, open_split(cfg, cfg.split))
    except Exception:  # noqa: BLE001 - the units record the reason
        return None


def _run_in_process(cfg: BenchConfig, name: str, size: tuple[int, int], source: str = BACKBONE_SOURCE) -> Status:
    try:
        return run_unit(cfg, name, size, source)
    except Exception:  # noqa: BLE001 - any failure becomes a recorded status
        _unit_failure(cfg, key_of(cfg, name, size, source), name, size, Status.ERROR, traceback.format_exc(), source)
        return Status.ERROR


def config_from_file(path: Path) -> BenchConfig:
    """A config written by ``run_sweep`` for a child process."""
    return build(json.loads(Path(path).read_text()))
