"""`python -m bench check NAME` and `python -m bench new-method NAME`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.cli.main import main
from bench.cli.new_method import class_name, register

REPO = Path(__file__).resolve().parents[1]


def test_check_passes_a_builtin_and_names_an_unknown_method(capsys):
    assert main(["check", "downsample"]) == 0
    out = capsys.readouterr().out
    assert "ok   refine: shape, dtype, device, range, deterministic" in out
    assert "[check] downsample: keeps the method contract" in out
    assert main(["check", "downsampel"]) == 2
    assert "did you mean 'downsample'" in capsys.readouterr().err


def test_check_trains_a_learned_method_with_a_short_schedule_from_the_command_line(capsys):
    assert main(["check", "dgf", "iterations=1", "cache_images=2"]) == 0
    assert "ok   checkpoints trained and loaded" in capsys.readouterr().out


def test_check_fails_with_exit_1_naming_the_broken_promise(tmp_path, monkeypatch, capsys):
    (tmp_path / "nondeterministic.py").write_text(
        "import torch\n"
        "from baselines.downsample import Downsample\n"
        "class Noisy(Downsample):\n"
        "    name = 'noisy'\n"
        "    display_name = 'Noisy'\n"
        "    def refine(self, image, coarse):\n"
        "        return torch.randint(0, 4, image.shape[:2])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MAGNET_BENCH_METHODS", "noisy=nondeterministic:Noisy")
    assert main(["check", "noisy"]) == 1
    captured = capsys.readouterr()
    assert "FAIL refine: shape, dtype, device, range, deterministic: noisy.refine is not deterministic" in captured.out
    assert "[check] noisy: 1 check(s) failed" in captured.err


def test_register_adds_one_line_to_methods(tmp_path):
    registry = tmp_path / "__init__.py"
    registry.write_text('"""doc"""\n\nMETHODS = {\n    "downsample": "baselines.downsample:Downsample",\n}\n')
    assert register("my_refiner", registry)
    assert registry.read_text().endswith('    "my_refiner": "baselines.my_refiner:MyRefiner",\n}\n')
    assert class_name("edge_aware_2") == "EdgeAware2"
    assert not register("x", tmp_path / "missing.py")


def _copy_repo(dest: Path) -> Path:
    """The code, configs and test fixtures of this repository (no results, weights or venv)."""
    for part in ("bench", "baselines", "magnet", "configs"):
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "tests").mkdir()
    for name in ("conftest.py", "__init__.py"):
        if (REPO / "tests" / name).is_file():
            shutil.copy(REPO / "tests" / name, dest / "tests" / name)
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_new_method_skeleton_is_registered_and_its_test_passes(tmp_path, capsys):
    root = _copy_repo(tmp_path / "repo")
    assert main(["new-method", "edge_snap", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"registered \"edge_snap\": \"baselines.edge_snap:EdgeSnap\" in {root / 'baselines' / '__init__.py'}" in out
    for path in ("baselines/edge_snap.py", "configs/methods/edge_snap.yaml", "tests/test_edge_snap.py"):
        assert (root / path).is_file(), path
    assert main(["new-method", "edge_snap", "--root", str(root)]) == 2  # taken: nothing overwritten
    assert "already registered" in capsys.readouterr().err
    assert main(["new-method", "Bad-Name", "--root", str(root)]) == 2
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_edge_snap.py"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]


def test_check_runs_on_magnet_by_name():
    assert main(["check", "magnet"]) == 0  # trained one epoch on the tiny scenes (bench.checks.contract.SMOKE)


def test_pytest_option_narrows_the_contract_to_one_method():
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/methods",
                          "--method", "guided_filter", "-k", "test_method_contract"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-2000:]
