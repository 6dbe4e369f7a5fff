"""Shared fixtures: a tiny blocky dataset and a method context on the light backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.checks.contract import TINY_INFO, TinyDataset, tiny_context  # noqa: F401 - TINY_INFO re-exported
from bench.core.interface import MethodContext

# One intra-op thread: tiny tensors gain nothing from two, and two threads stall badly whenever
# another process shares the cores (CI runners, parallel jobs).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def tiny_dataset() -> TinyDataset:
    return TinyDataset()


@pytest.fixture
def tiny_ctx(tmp_path: Path) -> MethodContext:
    return tiny_context(tmp_path)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
