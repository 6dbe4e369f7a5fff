"""Append-only JSONL records, from which every table is derived.

Every line carries ``schema`` (:data:`SCHEMA`, the version of this layout) and ``type``.
:func:`append` checks the fields its type requires (:data:`REQUIRED`) and that ``status`` is
one of ``bench.core.status.Status``, so a record that would not describe itself is never written.
Record types (field ``type``):

- ``image``: one (method, input size, image): ``unit_key``, ``image_id``, ``n_expected`` (how
  many images the unit covers), ``status`` ("ok", or "error" with the reason in ``message``
  when the image could not be read: the unit went on without it), ``cm`` (per-image confusion counts, rows = ground truth, so any aggregate can
  be recomputed), ``mba`` (NaN when the image has no boundary band), ``mba_radii``,
  ``time_coarse_ms``, ``time_refine_ms``, ``time_ms`` (what tables show: coarse + refine for
  methods that use the coarse map), ``time_e2e_ms`` (also the host-side preparation), memory
  fields of ``bench.runtime.measure.MemoryProbe``, provenance.
- ``unit``: a (method, input size) that could not run: ``status`` in ``unavailable``,
  ``missing_checkpoint``, ``stale_checkpoint``, ``reference_mismatch``, ``oom``, ``error``, with
  ``message``.
- ``summary``: aggregates of a finished unit (convenience; tables recompute from ``image``).

Records are appended with a flush and fsync per line, so a crash loses at most the image in
flight; a torn last line is ignored on reading, and the next append starts a new line after it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.core.status import IMAGE_STATUSES, UNIT_FAILURES, Status, parse

SCHEMA = 2  # 2: a schema field in every line, typed statuses; 1 (no field): the records before
# the fields each record type must hold, by type and status
REQUIRED: dict[tuple[str, Status | None], tuple[str, ...]] = {
    ("image", Status.OK): ("unit_key", "method", "size", "image_id", "cm", "mba"),
    ("image", Status.ERROR): ("unit_key", "method", "size", "image_id", "n_expected", "message"),
    ("unit", None): ("unit_key", "method", "size", "message"),
}


class RecordError(ValueError):
    """A record lacks a field its type requires, or has an unknown status."""


def check(record: dict[str, Any]) -> None:
    """Raise :class:`RecordError` when ``record`` does not hold what its type requires."""
    kind = record.get("type")
    if not kind:
        raise RecordError(f"record without a type: {sorted(record)}")
    if kind not in ("image", "unit"):
        return  # summary, smoke, ...: free-form
    try:
        status = parse(record.get("status", ""))
    except ValueError as err:
        raise RecordError(f"{kind} record: {err}") from None
    allowed = IMAGE_STATUSES if kind == "image" else UNIT_FAILURES
    if status not in allowed:
        raise RecordError(f"{kind} record with status {status.value!r}; allowed: {sorted(s.value for s in allowed)}")
    missing = [k for k in REQUIRED[(kind, status if kind == "image" else None)] if k not in record]
    if missing:
        raise RecordError(f"{kind} record ({status.value}) lacks {missing}")


def unit_record(unit_key: str, method: str, size: str, status: Status, message: str,
                display_name: str | None = None) -> dict[str, Any]:
    """A unit that could not run (or stopped): ``status`` is one of ``bench.core.status.UNIT_FAILURES``.

    ``display_name`` (the method's row name, when its class could be imported) lets the tables
    name the row without importing the method.
    """
    out = {"type": "unit", "unit_key": unit_key, "method": method, "size": size, "status": status,
           "message": message[-4000:]}
    return {**out, "display_name": display_name} if display_name else out


def failed_image_record(unit_key: str, method: str, size: str, image_id: str, reason: str,
                        n_expected: int) -> dict[str, Any]:
    """An image of a unit that could not be read; the unit went on without it."""
    return {"type": "image", "unit_key": unit_key, "method": method, "size": size, "image_id": image_id,
            "status": Status.ERROR, "message": reason[-2000:], "n_expected": n_expected}


def _clean(value: Any) -> Any:
    """JSON has no NaN: store it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _ends_with_newline(path: Path) -> bool:
    """True for a missing or empty file, or one whose last byte is a newline."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except FileNotFoundError:
        return True


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line (with ``schema``), flushed and fsynced.

    Raises:
        RecordError: the record lacks a field its type requires (nothing is written).
    """
    record = {"schema": SCHEMA, **record}
    check(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(record), sort_keys=True)
    # a kill mid-write leaves a torn last line; starting a fresh line keeps this record whole
    prefix = "" if _ends_with_newline(path) else "\n"
    with open(path, "a") as fh:
        fh.write(prefix + line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one file; a torn (partial) line, as a crash can leave, is skipped."""
    if not path.is_file():
        return
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def load(folder: Path) -> list[dict[str, Any]]:
    """Every record of every ``*.jsonl`` file in ``folder`` (per-rank files included)."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        out.extend(read(path))
    return out


def done_images(records: Iterable[dict[str, Any]], unit_key: str) -> set[str]:
    """Image ids of ``unit_key`` already recorded with status ok."""
    return {r["image_id"] for r in records
            if r.get("type") == "image" and r.get("unit_key") == unit_key and r.get("status") == "ok"}


def latest_by_image(records: Iterable[dict[str, Any]], unit_key: str) -> dict[str, dict[str, Any]]:
    """The last ok image record per image id of ``unit_key`` (duplicates never double-count)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("type") == "image" and r.get("unit_key") == unit_key and r.get("status") == "ok":
            out[r["image_id"]] = r
    return out


def failed_images(records: Iterable[dict[str, Any]], unit_key: str) -> dict[str, str]:
    """``{image_id: reason}`` of ``unit_key``'s images recorded as failed and never recorded ok."""
    failed: dict[str, str] = {}
    ok: set[str] = set()
    for r in records:
        if r.get("type") != "image" or r.get("unit_key") != unit_key:
            continue
        if r.get("status") == "ok":
            ok.add(r["image_id"])
        else:
            failed[r["image_id"]] = r.get("message") or r.get("status") or "failed"
    return {k: v for k, v in failed.items() if k not in ok}


def expected_images(records: Iterable[dict[str, Any]], unit_key: str) -> int | None:
    """How many images ``unit_key`` should cover (``n_expected`` of its image records; None for old records)."""
    counts = [r["n_expected"] for r in records
              if r.get("type") == "image" and r.get("unit_key") == unit_key and r.get("n_expected") is not None]
    return max(counts) if counts else None


def unit_status(records: Iterable[dict[str, Any]], unit_key: str) -> dict[str, Any] | None:
    """The last ``unit`` status record of ``unit_key``, if any."""
    last = None
    for r in records:
        if r.get("type") == "unit" and r.get("unit_key") == unit_key:
            last = r
    return last
