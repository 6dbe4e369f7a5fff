"""`make <command>` without `make install` stops with the command to run (no empty venv, no ModuleNotFoundError)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_missing_or_empty_venv_stops_with_make_install(tmp_path):
    missing = tmp_path / "none"
    run = _make("bench", f"VENV={missing}")
    assert run.returncode != 0 and "Run first:  make install" in run.stderr, run.stderr
    assert not missing.exists()  # no empty venv left behind
    empty = tmp_path / "empty"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(empty)], check=True, timeout=120)
    for target in ("bench", "test", "check-data"):
        run = _make(target, f"VENV={empty}")
        assert run.returncode != 0 and "Run first:  make install" in run.stderr, (target, run.stderr)
        assert "ModuleNotFoundError" not in run.stderr


def test_installed_venv_passes_the_guard():
    run = _make("ready")
    assert run.returncode == 0, run.stderr
