"""Old import paths of the flat layout: they still import, warn with the new path, and docs/moved.md lists them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench._moved import MOVED, new_name

REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_an_old_module_path_warns_and_gives_the_new_module():
    run = _python("import bench.interface as old, bench.core.interface as new; "
                  "assert old.Method is new.Method and old.normalize is new.normalize")
    assert run.returncode == 0, run.stderr
    assert "bench.interface moved to bench.core.interface" in run.stderr and "MovedModuleWarning" in run.stderr


def test_a_moved_package_takes_its_submodules_along():
    assert new_name("bench.backbones.resnet") == "bench.models.backbones.resnet"
    assert new_name("bench.datasets.cityscapes") == "bench.data.cityscapes"
    assert new_name("bench.core.config") is None  # today's paths are never aliased
    run = _python("from bench.backbones.resnet import ResNet; from bench.models.backbones.resnet import ResNet as R; "
                  "assert ResNet is R")
    assert run.returncode == 0, run.stderr


def test_the_old_training_module_names_resolve_with_a_warning():
    run = _python("from bench import training; from bench.training import loop; "
                  "assert training.save_checkpoint is loop.save_checkpoint")
    assert run.returncode == 0, run.stderr
    assert "bench.training.save_checkpoint moved to bench.training.loop.save_checkpoint" in run.stderr


def test_docs_list_every_moved_path():
    text = (REPO / "docs" / "moved.md").read_text()
    missing = [old for old, new in MOVED.items() if f"| `{old}` | `{new}` |" not in text]
    assert missing == []
