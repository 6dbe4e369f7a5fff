"""A run folder describes itself: ``<out_dir>/run.json`` next to the records.

``bench run`` writes ``run.json`` (atomically) when it starts and again once training is done:
``schema``, the resolved ``config``, ``units`` (``"method@WxH"`` -> the unit key its records
carry) and ``image_ids`` (the ids the run covers, in order, after ``limit``). ``bench table``,
``bench score`` and ``bench show`` select the records of a folder by these keys and ids, reading
records only: nothing is resolved, hashed or opened, and no override of the run needs repeating.

A folder without ``units`` (written before schema 2) falls back to the unit key most recently
recorded for each (method, size).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.config import BenchConfig, format_size, parse_size
from bench.core.errors import UserError

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


def write(cfg: BenchConfig, keys: Mapping[tuple[str, tuple[int, int]], str] | None = None,
          image_ids: Sequence[str] | None = None, timing: Mapping[str, Any] | None = None) -> Path:
    """Store the run's config (and, once known, its unit keys, image ids and timing) as ``<out_dir>/run.json``.

    ``timing`` (written when the sweep ends, :func:`sweep_timing`): the last ``bench run``'s wall
    clock, whole and per unit, so the README renders how long a sweep took instead of a typed figure.
    """
    path = cfg.out_path / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"schema": SCHEMA, "config": cfg.to_dict()}
    if keys is not None:
        data["units"] = {f"{m}@{format_size(s)}": k for (m, s), k in keys.items()}
    if image_ids is not None:
        data["image_ids"] = list(image_ids)
    if timing is not None:
        data["timing"] = dict(timing)
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)  # a kill leaves the old file whole
    return path


def sweep_timing(started: float, seconds: float, units: Mapping[tuple[str, tuple[int, int]], tuple[float, str]],
                 load_before: float | None = None, load_after: float | None = None) -> dict[str, Any]:
    """``timing`` of run.json: start (Unix s), whole wall clock (s), ``{"method@WxH": {seconds, status}}``
    and the load average at the start and the end (times from a busy machine are longer).

    A unit's seconds are its process's wall clock, setup and loading included; a unit with nothing
    left to run (``done``) costs only its check, so a resumed sweep's total covers only what it ran.
    """
    return {"started": started, "seconds": seconds, "load_before": load_before, "load_after": load_after,
            "cpu_count": os.cpu_count(),
            "units": {f"{m}@{format_size(s)}": {"seconds": t, "status": str(st)} for (m, s), (t, st) in units.items()}}


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
