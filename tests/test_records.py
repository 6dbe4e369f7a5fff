"""Append-only records: a torn last line (a kill mid-write) loses only itself; every line is typed."""

from __future__ import annotations

import json

import pytest

from bench.evaluation import records
from bench.core.status import Status


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, {"type": "summary", "id": "a"})
    half = json.dumps({"id": "b", "payload": "x" * 40})
    with open(path, "a") as fh:
        fh.write(half[: len(half) // 2])  # what a kill in the middle of a write leaves
    records.append(path, {"type": "summary", "id": "c"})
    assert [r["id"] for r in records.read(path)] == ["a", "c"]


def test_append_to_a_clean_file_adds_no_blank_line(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, {"type": "summary", "id": "a"})
    records.append(path, {"type": "summary", "id": "b"})
    assert path.read_text().count("\n") == 2 and "\n\n" not in path.read_text()


def test_every_line_carries_the_schema(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, records.unit_record("k", "magnet", "128x64", Status.OOM, "img: out of memory"))
    records.append(path, records.failed_image_record("k", "magnet", "128x64", "img", "truncated PNG", 4))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["schema"] for r in lines] == [records.SCHEMA] * 2
    assert [r["status"] for r in lines] == ["oom", "error"]


@pytest.mark.parametrize("record, match", [
    ({"type": "unit", "unit_key": "k", "method": "m", "size": "8x8", "status": "missing_checkpiont", "message": ""},
     "unknown status 'missing_checkpiont'"),
    ({"type": "unit", "unit_key": "k", "method": "m", "size": "8x8", "status": "ok", "message": ""},
     "unit record with status 'ok'"),
    ({"type": "image", "unit_key": "k", "method": "m", "size": "8x8", "status": "ok", "image_id": "a"}, "lacks"),
    ({"image_id": "a"}, "without a type"),
])
def test_a_record_that_does_not_describe_itself_is_refused(tmp_path, record, match):
    """A misspelt status or a missing field is a programming error: nothing is written."""
    path = tmp_path / "records.jsonl"
    with pytest.raises(records.RecordError, match=match):
        records.append(path, record)
    assert not path.exists()
