"""Issue 11 obs. 3: a killed ``bench run`` leaves no worker, no duplicate, no gap, no temp file, and
two runs cannot share an ``out_dir``.

Every test kills the parent process alone (``kill -9 <pid>``, not its group), on the default
isolated path where each unit runs in a worker subprocess.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.evaluation import records
from bench.core.config import build
from bench.runtime.procs import LOCK_NAME, TEMP_PREFIX
from bench.pipeline.runner import train_missing
from tests.test_runner import _flat, plugin_env  # noqa: F401 - the fixture

N_IMAGES = 6


def _setup(tmp_path: Path) -> tuple[list[str], Path]:
    flat = _flat(tmp_path, methods=["slow_downsample"], table1_sizes=[], save_predictions=0, bootstrap=0,
                 **{"data.n_images": N_IMAGES})
    (tmp_path / "cfg.yaml").write_text(json.dumps(flat))
    train_missing(build(flat))
    return [sys.executable, "-m", "bench", "run", "--config", str(tmp_path / "cfg.yaml")], Path(flat["out_dir"])


def _ids(out: Path) -> list[str]:
    return [r["image_id"] for r in records.load(out) if r["type"] == "image" and r["status"] == "ok"]


def _confusion(out: Path) -> dict[str, list]:
    return {r["image_id"]: r["cm"] for r in records.load(out) if r["type"] == "image" and r["status"] == "ok"}


def _workers(tmp_path: Path) -> list[int]:
    """Pids of live processes whose command line names this test's folder (the unit workers)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(tmp_path) in cmdline and " unit " in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def _start_and_wait(cmd: list[str], out: Path, new: int, extra_s: float = 0.0) -> subprocess.Popen:
    """Start a run and return once it has recorded ``new`` more images (plus ``extra_s`` seconds)."""
    before = len(_ids(out))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_ids(out)) < before + new:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    time.sleep(extra_s)
    return proc


def _kill_parent_alone(proc: subprocess.Popen, tmp_path: Path, out: Path) -> None:
    proc.send_signal(signal.SIGKILL)  # the parent's pid only, not its process group
    proc.wait()
    # the kernel kills the worker at once; an orphan would live on for its remaining images (>= 0.8 s)
    deadline = time.time() + 0.5
    while _workers(tmp_path) and time.time() < deadline:
        time.sleep(0.02)
    assert not _workers(tmp_path), "the unit worker outlived its killed parent"
    settled = len(records.load(out))
    time.sleep(0.6)  # longer than one image of slow_downsample: an orphan would append meanwhile
    assert len(records.load(out)) == settled


def _kill_and_resume(tmp_path: Path, kills: int, seed: int) -> None:
    cmd, out = _setup(tmp_path)
    rng = random.Random(seed)
    for _ in range(kills):
        assert len(_ids(out)) < N_IMAGES - 2, "too few images for this many kills"
        proc = _start_and_wait(cmd, out, 1, extra_s=rng.uniform(0.0, 0.4))  # a random point within an image
        _kill_parent_alone(proc, tmp_path, out)
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    ids = _ids(out)
    assert sorted(ids) == sorted(set(ids)), "an image was recorded twice"
    assert sorted(ids) == [f"val_{i:04d}" for i in range(N_IMAGES)], "an image is missing"
    assert not list(out.glob(f"{TEMP_PREFIX}*")), "a killed run's temporary config.json was left behind"
    clean = tmp_path / "uninterrupted"
    assert subprocess.run([*cmd, f"out_dir={clean}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    assert _confusion(out) == _confusion(clean), "a resumed image differs from the uninterrupted run"


def test_sigkill_of_the_parent_kills_its_worker_and_resume_is_exact(tmp_path, plugin_env):  # noqa: F811
    _kill_and_resume(tmp_path, kills=2, seed=0)


@pytest.mark.slow
def test_ten_random_parent_kills(tmp_path, plugin_env, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sys.modules[__name__], "N_IMAGES", 32)  # each kill lets one or two images through
    _kill_and_resume(tmp_path, kills=10, seed=1)


def test_second_run_on_the_same_out_dir_is_refused_naming_the_holder(tmp_path, plugin_env, monkeypatch):  # noqa: F811
    # 30 images (12 s): the first run still holds the lock while the second prints its plan (issue 21)
    monkeypatch.setattr(sys.modules[__name__], "N_IMAGES", 30)
    cmd, out = _setup(tmp_path)
    first = _start_and_wait(cmd, out, 1)
    try:
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"is in use by another bench run (pid {first.pid}" in second.stderr
        if first.poll() is None:  # still running: its pid is in the lock (a finished run removes the file)
            assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_sigterm_cleans_up_the_temporary_config_and_the_worker(tmp_path, plugin_env):  # noqa: F811
    cmd, out = _setup(tmp_path)
    proc = _start_and_wait(cmd, out, 1)
    assert list(out.glob(f"{TEMP_PREFIX}*/config.json"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    assert not list(out.glob(f"{TEMP_PREFIX}*")) and not _workers(tmp_path)
