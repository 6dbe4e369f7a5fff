"""Shared fixtures: a tiny blocky dataset and a method context on the light backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.backbones import create_backbone
from bench.interface import DatasetInfo, MethodContext, Sample

# One intra-op thread: tiny tensors gain nothing from two, and two threads stall badly whenever
# another process shares the cores (CI runners, parallel jobs).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY_INFO = DatasetInfo(
    name="tiny", class_names=("a", "b", "c", "d"), ignore_index=255,
    palette=((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)), thin_classes=(3,),
)


class TinyDataset:
    """Blocky 4-class scenes with a thin vertical bar (class 3); colour = class + noise."""

    info = TINY_INFO
    image_size = (128, 64)

    def __init__(self, n: int = 4, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def ids(self) -> list[str]:
        return [f"tiny_{i}" for i in range(self.n)]

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng(self.seed * 1000 + i)
        label = np.kron(rng.integers(0, 3, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
        x = int(rng.integers(4, 120))
        label[:, x:x + 2] = 3
        label[0, 0] = 255
        colours = np.array(TINY_INFO.palette, np.float64)
        image = colours[np.minimum(label, 3)] * 0.7 + rng.normal(0, 20, label.shape + (3,))
        return Sample(self.ids()[i], np.clip(image, 0, 255).astype(np.uint8), label)


@pytest.fixture
def tiny_dataset() -> TinyDataset:
    return TinyDataset()


@pytest.fixture
def tiny_ctx(tmp_path: Path) -> MethodContext:
    torch.manual_seed(0)
    backbone = create_backbone("light", TINY_INFO.num_classes, width=16).eval()
    return MethodContext(num_classes=TINY_INFO.num_classes, input_size=(32, 16), device=torch.device("cpu"),
                         backbone=backbone, checkpoint_dir=tmp_path, dataset=TINY_INFO, image_size=(128, 64))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
