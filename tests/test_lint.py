"""The lint and type checks of pyproject.toml pass (what `make lint` and .ci/run run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_ruff_passes_and_catches_an_unused_import(tmp_path):
    run = _run("ruff", "check", "bench", "baselines", "magnet", "examples", "perf", "tests")
    assert run.returncode == 0, run.stdout[-3000:]
    bad = tmp_path / "bad.py"
    bad.write_text('"""Doc."""\nimport os\n')
    run = _run("ruff", "check", "--config", str(REPO / "pyproject.toml"), str(bad))
    assert run.returncode == 1 and "F401" in run.stdout


@pytest.mark.slow
def test_mypy_passes():
    run = _run("mypy")
    assert run.returncode == 0, run.stdout[-3000:]
