"""bench.runtime.measure's allocator setting: it reaches the measured child and takes effect there."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runtime import measure
from bench.core.config import build

_LINUX_GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"

# In the child: a 16 MiB tensor is made, touched and freed; reported are the allocator setting
# and how much resident memory the free gave back to the system (KiB).
_PROBE = """
import json, torch
from bench.runtime import measure
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])
x = torch.ones(4 << 20)
before = rss()
del x
print(json.dumps({**measure.allocator_in_use(), 'returned_kib': before - rss()}))
"""


def _probe(allocator: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=measure.child_env(allocator), capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    return json.loads(out)


def test_child_env_sets_the_allocator_from_the_config():
    base = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"}
    tuned = measure.child_env("tuned", base)
    assert tuned["PATH"] == "/bin"
    assert tuned["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0:" + measure.TUNED_MALLOC  # ours last: they win
    assert measure.child_env("tuned", {})["GLIBC_TUNABLES"] == measure.TUNED_MALLOC
    assert measure.child_env("default", base) == base
    assert base["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0"  # not modified
    with pytest.raises(ValueError, match="tuned"):
        measure.child_env("jemalloc", base)


def test_config_rejects_an_unknown_allocator():
    assert build({"allocator": "default"}).allocator == "default"
    with pytest.raises(ValueError, match="allocator must be one of"):
        build({"allocator": "fast"})


@pytest.mark.skipif(not _LINUX_GLIBC, reason="needs Linux with glibc")
def test_tuned_allocator_keeps_freed_tensors_for_reuse(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    tuned, plain = _probe("tuned"), _probe("default")
    assert tuned["tuned"] and not plain["tuned"]
    # default glibc unmaps a freed 16 MiB block; the tuned thresholds keep it on the heap
    assert plain["returned_kib"] > 12 * 1024 and tuned["returned_kib"] < 4 * 1024
