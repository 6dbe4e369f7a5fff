"""Released-behaviour MagNet-Fast golden test on a hand-built backbone and refiner.

Every value the loop computes here is exact in float32 whatever the CPU kernels: the backbone's
logits are multiples of 2048 (softmax gives exactly 0, 1/2 or 1), the refiner's are multiples of
1024, and bilinear resizing by 2 mixes such values with weights 1/4 and 3/4. So the labels, the
patches chosen and the points replaced do not depend on vector width, FMA or summation order, and
a digest of the labels can be pinned.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

import magnet.inference as inference
from bench.models.coarse import compute_coarse
from bench.core.interface import MethodContext
from magnet.method import MagNet, MagNetFast

# sha256 of the int64 label bytes of the released MagNet-Fast on the scene below
RELEASED_FAST = "d539234eacda94b6510368d71c3ab5d6d7b2e4bb945fac0f8a5e70ec732fe385"
# boxes (x1, y1, x2, y2) processed per stage: released takes the least uncertain patches (left,
# few ties), paper the most uncertain ones
RELEASED_CHOSEN = [[[0, 0, 32, 16], [0, 16, 32, 32]], [[0, 32, 32, 48], [32, 32, 64, 48]],
                   [[64, 80, 96, 96], [32, 80, 64, 96]]]
PAPER_CHOSEN = [[[32, 16, 64, 32], [32, 0, 64, 16]], [[32, 16, 64, 32], [0, 32, 32, 48]],
                [[64, 0, 96, 16], [96, 80, 128, 96]]]


class ChannelBackbone(torch.nn.Module):
    """Class c in 0..2 for a normalised channel c above 0, class 3 for a dark pixel; ties share 1/2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x > 0).float()
        dark = (bright.sum(1, keepdim=True) == 0).float()
        return 2048.0 * torch.cat([bright, dark], 1)


class RuleRefiner(torch.nn.Module):
    """Logits 2048 * fine + 2048 * [coarse > 3/4] + 1024 * [class 1]: breaks ties toward class 1."""

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        bias = torch.zeros(1, fine.shape[1], 1, 1)
        bias[:, 1] = 1024.0
        return 2048.0 * fine + 2048.0 * (coarse > 0.75).float() + bias


COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 0), (0, 255, 255)], np.uint8)


@pytest.fixture
def scene() -> np.ndarray:
    """256x128: blocks of pure colours and two-class ties (yellow, cyan), more ties to the right."""
    rng = np.random.default_rng(11)
    blocks = np.zeros((16, 32), np.int64)
    for col in range(32):
        p_tie = 0.05 + 0.6 * col / 31
        blocks[:, col] = np.where(rng.random(16) < p_tie, rng.integers(4, 6, 16), rng.integers(0, 4, 16))
    return np.kron(COLOURS[blocks], np.ones((8, 8, 1), np.uint8))


@pytest.fixture
def ctx(tiny_ctx) -> MethodContext:
    return replace(tiny_ctx, backbone=ChannelBackbone(), image_size=(256, 128))


def _run(cls, ctx, image, monkeypatch, **kw):
    chosen: list[list[list[int]]] = []
    original = inference.choose_patches

    def spy(*args):
        boxes = original(*args)
        chosen.append(boxes.tolist())
        return boxes

    monkeypatch.setattr(inference, "choose_patches", spy)
    cfg = cls.Config(**{"mask_inset": 2, **kw})
    method = cls(cfg, ctx, refiners=[RuleRefiner()] * 3)
    labels = method.refine(image, compute_coarse(ctx.backbone, image, ctx.input_size, ctx.device))
    monkeypatch.undo()
    return labels, chosen


def test_the_scene_is_computed_exactly(ctx, scene):
    """The premise of the pinned digest: every probability is a multiple of 2^-16 (no rounding)."""
    coarse = compute_coarse(ctx.backbone, scene, ctx.input_size, ctx.device).probs
    assert set(torch.unique(coarse).tolist()) == {0.0, 0.5, 1.0}
    for behaviour in ("released", "paper"):
        method = MagNetFast(MagNetFast.Config(mask_inset=2, n_patches=2, behaviour=behaviour), ctx,
                            refiners=[RuleRefiner()] * 3)
        with torch.inference_mode():
            y = inference.progressive(scene, coarse, method.plan, method.opts, ctx.backbone, method.refiners)
        assert torch.equal(y * 2**16, (y * 2**16).round()), behaviour


def _digest(labels: torch.Tensor) -> str:
    return hashlib.sha256(labels.numpy().astype(np.int64).tobytes()).hexdigest()


def test_released_fast_golden_and_behaviours(ctx, scene, monkeypatch):
    fast, fast_chosen = _run(MagNetFast, ctx, scene, monkeypatch, n_patches=2)
    paper, paper_chosen = _run(MagNetFast, ctx, scene, monkeypatch, n_patches=2, behaviour="paper")
    assert fast_chosen == RELEASED_CHOSEN
    assert paper_chosen == PAPER_CHOSEN
    assert _digest(fast) == RELEASED_FAST
    assert not torch.equal(fast, paper)
    assert int((fast != paper).sum()) > 100
    full, _ = _run(MagNet, ctx, scene, monkeypatch, n_points=0.5)
    full_paper, _ = _run(MagNet, ctx, scene, monkeypatch, n_points=0.5, behaviour="paper")
    assert torch.equal(full, full_paper)
