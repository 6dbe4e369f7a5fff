"""Append-only records: a torn last line (a kill mid-write) loses only itself."""

from __future__ import annotations

import json

from bench import records


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, {"id": "a"})
    half = json.dumps({"id": "b", "payload": "x" * 40})
    with open(path, "a") as fh:
        fh.write(half[: len(half) // 2])  # what a kill in the middle of a write leaves
    records.append(path, {"id": "c"})
    assert [r["id"] for r in records.read(path)] == ["a", "c"]


def test_append_to_a_clean_file_adds_no_blank_line(tmp_path):
    path = tmp_path / "records.jsonl"
    records.append(path, {"id": "a"})
    records.append(path, {"id": "b"})
    assert path.read_text().count("\n") == 2 and "\n\n" not in path.read_text()
