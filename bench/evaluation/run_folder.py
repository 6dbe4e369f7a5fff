"""A run folder describes itself: ``<out_dir>/run.json`` next to the records.

``bench run`` writes ``run.json`` (atomically) when it starts and again once training is done:
``schema``, the resolved ``config``, ``units`` (``"method@WxH"`` -> the unit key its records
carry) and ``image_ids`` (the ids the run covers, in order, after ``limit``). ``bench table``,
``bench score`` and ``bench show`` select the records of a folder by these keys and ids, reading
records only: nothing is resolved, hashed or opened, and no override of the run needs repeating.

A folder without ``units`` (written before schema 2) falls back to the unit key most recently
recorded for each (method, size).

:func:`sweep_state` (``bench status``) reads a running or dead sweep's folder from another shell:
``run.json``, the records and the progress events (``bench.runtime.progress``), without a lock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.config import BenchConfig, build, format_size, parse_size
from bench.core.errors import UserError
from bench.evaluation import records
from bench.runtime import progress
from bench.runtime.procs import pid_alive

RUN_FILE = "run.json"
SCHEMA = 2

UnitKeys = dict[tuple[str, tuple[int, int]], str]


def read(out_dir: str | Path | None) -> dict[str, Any] | None:
    """The parsed ``run.json`` of a folder, or None without one.

    Raises:
        UserError: the file exists but is not a run file.
    """
    if out_dir is None:
        return None
    path = Path(str(out_dir)) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data["config"], dict):
            raise TypeError("config is not a mapping")
        return data
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a run file written by bench run ({err})") from err


def write(cfg: BenchConfig, keys: Mapping[tuple[Any, ...], str] | None = None,
          image_ids: Sequence[str] | None = None, timing: Mapping[str, Any] | None = None) -> Path:
    """Store the run's config (and, once known, its unit keys, image ids and timing) as ``<out_dir>/run.json``.

    ``timing`` (written when the sweep ends, :func:`sweep_timing`): the last ``bench run``'s wall
    clock, whole and per unit, so the README renders how long a sweep took instead of a typed figure.
    """
    path = cfg.out_path / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"schema": SCHEMA, "config": cfg.to_dict()}
    if keys is not None:
        data["units"] = {_label(u): k for u, k in keys.items()}
    if image_ids is not None:
        data["image_ids"] = list(image_ids)
    if timing is not None:
        data["timing"] = dict(timing)
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)  # a kill leaves the old file whole
    return path


def sweep_timing(started: float, seconds: float, units: Mapping[tuple[Any, ...], tuple[float, str]],
                 load_before: float | None = None, load_after: float | None = None) -> dict[str, Any]:
    """``timing`` of run.json: start (Unix s), whole wall clock (s), ``{"method@WxH": {seconds, status}}``
    and the load average at the start and the end (times from a busy machine are longer).

    A unit's seconds are its process's wall clock, setup and loading included; a unit with nothing
    left to run (``done``) costs only its check, so a resumed sweep's total covers only what it ran.
    """
    return {"started": started, "seconds": seconds, "load_before": load_before, "load_after": load_after,
            "cpu_count": os.cpu_count(),
            "units": {_label(u): {"seconds": t, "status": str(st)} for u, (t, st) in units.items()}}


def _label(unit: Sequence[Any]) -> str:
    """``"method@WxH"`` of ``(method, size)``; ``"method@WxH/source"`` of ``(method, size, source)``
    (a coarse source given with the data: bench.pipeline.runner.unit_label)."""
    return f"{unit[0]}@{format_size(unit[1])}" + (f"/{unit[2]}" if len(unit) > 2 else "")


def latest_keys(recs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``{(method, "WxH"): unit_key}`` of the record written last for each unit."""
    out: dict[tuple[str, str], str] = {}
    for r in recs:
        if r.get("type") in ("image", "unit") and r.get("unit_key") and r.get("method") and r.get("size"):
            out[(r["method"], r["size"])] = r["unit_key"]
    return out


def unit_keys(cfg: BenchConfig, recs: Sequence[dict[str, Any]]) -> UnitKeys:
    """The key of every unit of ``cfg`` in its run folder, from ``run.json`` or else the records.

    A unit with neither gets the empty key (it shows as not run).
    """
    stored = (read(cfg.out_path) or {}).get("units") or {}
    latest = latest_keys(recs) if len(stored) < len(cfg.units()) else {}
    out: UnitKeys = {}
    for name, size in cfg.units():
        label = f"{name}@{format_size(size)}"
        out[(name, size)] = stored.get(label) or latest.get((name, format_size(size))) or ""
    return out


def image_ids(cfg: BenchConfig) -> list[str] | None:
    """The ids the run in ``cfg.out_path`` covers (None when ``run.json`` does not say)."""
    ids = (read(cfg.out_path) or {}).get("image_ids")
    return list(ids) if ids is not None else None


def restrict(recs: Sequence[dict[str, Any]], ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """Image records cut to the run's ids, each claiming ``n_expected = len(ids)``.

    Records of images outside the run (a larger ``limit`` before) are left out, so a run with a
    smaller ``limit`` shows its own images, complete, and not a partial larger run.
    """
    if ids is None:
        return list(recs)
    wanted, n = set(ids), len(ids)
    out = []
    for r in recs:
        if r.get("type") != "image":
            out.append(r)
        elif r.get("image_id") in wanted:
            out.append({**r, "n_expected": n})
    return out


def parse_unit(label: str) -> tuple[str, tuple[int, int]]:
    """``"magnet@128x64"`` -> ``("magnet", (128, 64))``."""
    name, _, size = label.rpartition("@")
    return name, parse_size(size)


# -- the state of a running or dead sweep (``bench status``) --------------------------------------------------------

@dataclass(frozen=True)
class UnitState:
    """One unit of a run folder as ``bench status`` shows it.

    Attributes:
        label: ``"method@WxH"``.
        total: images the unit covers (None when neither run.json nor its records say).
        done: images recorded ok (within the run's ids).
        failed: images recorded as failed and never recorded ok.
        state: ``ok``, ``partial``, ``running``, ``waiting`` (the live sweep has not reached it),
            ``stopped`` (the sweep died while it ran), ``not run``, or a unit failure status
            (``missing_checkpoint``, ``error``, ...).
        since: Unix s: when it started running (``running``, ``stopped``).
        image: the image in flight and since when (Unix s), while ``running``.
        left_s: seconds left (0 when complete; None when it has never been timed).
        message: a failure's reason, first line.
    """

    label: str
    total: int | None
    done: int
    failed: int
    state: str
    since: float | None = None
    image: tuple[str, float] | None = None
    left_s: float | None = None
    message: str = ""


@dataclass(frozen=True)
class SweepState:
    """The last sweep of a run folder: ``state`` ``running``, ``finished``, ``stopped`` (Ctrl-C or
    a signal; ``reason`` says which), ``died`` (its process is gone without a word: ``kill -9``,
    a crash, a power cut) or ``unknown`` (no progress events: a run before them, or one still
    training); ``pid`` and ``started`` (Unix s) of its process, ``last_event`` (Unix s), and its
    units in run order."""

    out_dir: Path
    state: str
    pid: int | None
    started: float | None
    last_event: float | None
    units: tuple[UnitState, ...]
    reason: str = ""


def sweep_state(out_dir: str | Path, now: float | None = None) -> SweepState:
    """Read a run folder (``run.json``, the records, the progress events) without a lock: safe while it runs.

    Raises:
        UserError: ``out_dir`` is not a folder, or holds no ``run.json`` (or a malformed one).
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; expected the out_dir of a bench run")
    data = read(folder)
    if data is None:
        raise UserError(f"{folder / RUN_FILE}: not found; expected the out_dir of a bench run (it writes {RUN_FILE} "
                        f"when it starts)")
    now = time.time() if now is None else now
    keys: dict[str, str] = dict(data.get("units") or {})
    ids: list[str] | None = data.get("image_ids")
    recs = records.load(folder)
    history: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []  # every rank's events since its last sweep started
    main_sweep: dict[str, Any] | None = None
    for path in sorted(folder.glob("progress*.events")):
        events = progress.read_events(path)[0]
        history.extend(events)
        starts = [i for i, e in enumerate(events) if e["event"] == "sweep"]
        if starts:
            current.extend(events[starts[-1]:])
            if path.name == progress.EVENTS_NAME or main_sweep is None:
                main_sweep = events[starts[-1]]
    current.sort(key=lambda e: e["t"])
    reason = ""
    if main_sweep is None:
        state, pid, started = "unknown", None, None
    else:
        pid, started = main_sweep.get("pid"), main_sweep["t"]
        ends = [e for e in current if e["event"] == "sweep_end"]
        if ends:
            reason = str(ends[-1].get("stopped") or "")
            state = "stopped" if reason else "finished"
        else:
            state = "running" if isinstance(pid, int) and pid_alive(pid) else "died"
    order = list(main_sweep.get("units") or []) if main_sweep else []
    labels = order + [label for label in keys if label not in order]
    if not labels:  # bench run writes run.json with its config alone first, then trains: the units to come
        labels = _config_units(data["config"])
        latest = latest_keys(recs)
        keys = {label: latest.get((label.rpartition("@")[0], label.rpartition("@")[2]), "") for label in labels}
    rates = progress.image_rates(history)
    units = tuple(_unit_state(label, keys.get(label, ""), ids, recs, current, rates, state, now) for label in labels)
    return SweepState(folder, state, pid, started, current[-1]["t"] if current else None, units, reason)


def _config_units(config: Mapping[str, Any]) -> list[str]:
    """``"method@WxH"`` of every unit of a stored config ([] when it does not build: no guess)."""
    try:
        return [f"{m}@{format_size(sz)}" for m, sz in build(dict(config)).units()]
    except (KeyError, ValueError, TypeError):
        return []


_LIVE_STATES = ("ok", "partial", "running", "waiting", "stopped", "not run")


def _unit_state(label: str, key: str, ids: list[str] | None, recs: list[dict[str, Any]],
                events: list[dict[str, Any]], rates: dict[str, float], sweep: str, now: float) -> UnitState:
    wanted = set(ids) if ids is not None else None
    ok = records.done_images(recs, key) if key else set()
    bad = records.failed_images(recs, key) if key else {}
    if wanted is not None:
        ok, bad = ok & wanted, {k: v for k, v in bad.items() if k in wanted}
    total = len(ids) if ids is not None else (records.expected_images(recs, key) if key else None)
    done, failed = len(ok), len(bad)
    mine = [e for e in events if e.get("unit") == label]
    started = next((e["t"] for e in reversed(mine) if e["event"] == "unit"), None)
    ended = next((str(e.get("status")) for e in reversed(mine) if e["event"] == "end"), None)
    image = None
    if mine and mine[-1]["event"] == "image":
        image = (str(mine[-1].get("image_id")), float(mine[-1]["t"]))
    failure = records.unit_status(recs, key) if key else None
    complete = total is not None and done + failed >= total
    per = rates.get(label)
    message = ""
    if ended is not None and ended not in ("ok", "done", "partial"):
        state = ended
    elif started is not None and ended is None:
        state = "running" if sweep == "running" else "stopped"
    elif complete:
        state = "partial" if failed else "ok"
    elif ended is None and sweep == "running":
        state = "waiting"
    elif failure is not None and not complete:
        state = str(failure.get("status"))
    else:
        state = "not run"
    if state not in _LIVE_STATES and failure is not None:
        lines = str(failure.get("message") or "").strip().splitlines()
        message = lines[-1] if lines else ""  # a traceback's last line says what went wrong
    left: float | None = None  # a failed unit runs again only once its cause is fixed
    if state in ("ok", "partial"):
        left = 0.0
    elif total is not None and state == "running":  # this run's failed images are not retried by it
        left = progress.unit_left(total, done + failed, per, now - image[1] if image else None)
    elif total is not None and state in _LIVE_STATES:  # a rerun retries the failed images
        left = progress.unit_left(total, done, per, None)
    return UnitState(label, total, done, failed, state, started if state in ("running", "stopped") else None,
                     image if state == "running" else None, left, message)
