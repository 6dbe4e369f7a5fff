"""bench.measure's allocator setting: it reaches the measured child and takes effect there."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench import measure
from bench.config import build

_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_LINUX_GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"

# In the child: a 16 MiB tensor is made, touched and freed; reported are the allocator settings,
# the huge-page-backed memory while it lived and how much resident memory its free gave back (KiB).
_PROBE = """
import json, torch
from bench import measure
def status(key):
    text = open('/proc/self/smaps_rollup' if key == 'AnonHugePages' else '/proc/self/status').read()
    return int(text.split(key + ':')[1].split()[0])
x = torch.ones(4 << 20)
rss, huge = status('VmRSS'), status('AnonHugePages')
del x
print(json.dumps({**measure.allocator_in_use(), 'huge_kib': huge, 'returned_kib': rss - status('VmRSS')}))
"""


def _probe(allocator: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=measure.child_env(allocator), capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    return json.loads(out)


def test_child_env_sets_the_allocator_from_the_config_not_the_shell():
    base = {"PATH": "/bin", measure.THP_ENV: "0", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"}
    tuned = measure.child_env("tuned", base)
    assert tuned[measure.THP_ENV] == "1" and tuned["PATH"] == "/bin"
    assert tuned["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0:" + measure.TUNED_MALLOC  # ours last: they win
    assert measure.child_env("tuned", {})["GLIBC_TUNABLES"] == measure.TUNED_MALLOC
    plain = measure.child_env("default", {**base, measure.THP_ENV: "1"})
    assert plain[measure.THP_ENV] == "0" and plain["GLIBC_TUNABLES"] == "glibc.pthread.rseq=0"
    assert base[measure.THP_ENV] == "0"  # not modified
    with pytest.raises(ValueError, match="tuned"):
        measure.child_env("jemalloc", base)


def test_config_rejects_an_unknown_allocator():
    assert build({"allocator": "default"}).allocator == "default"
    with pytest.raises(ValueError, match="allocator must be one of"):
        build({"allocator": "fast"})


@pytest.mark.skipif(not _LINUX_GLIBC or not Path("/proc/self/smaps_rollup").is_file(), reason="needs Linux with glibc")
def test_tuned_allocator_keeps_freed_tensors_and_uses_huge_pages():
    tuned, plain = _probe("tuned"), _probe("default")
    assert tuned["huge_pages"] and measure.TUNED_MALLOC in tuned["glibc_tunables"] and not plain["huge_pages"]
    # default glibc unmaps a freed 16 MiB block; the tuned thresholds keep it on the heap for reuse
    assert plain["returned_kib"] > 12 * 1024 and tuned["returned_kib"] < 4 * 1024
    if _THP_MODE.is_file() and "[never]" not in _THP_MODE.read_text():
        assert tuned["huge_kib"] >= 8 * 1024
        if "[madvise]" in _THP_MODE.read_text():  # only PyTorch's advised allocations become huge pages
            assert plain["huge_kib"] < tuned["huge_kib"]
