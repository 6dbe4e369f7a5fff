"""Refiner training: OHEM loss, pairs, input order, schedule, checkpoints (magnet.md §2.1)."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import magnet.pairs as mp
import magnet.train as mt
from bench.core.interface import normalize
from magnet.config import MagNetConfig, resolve_plan
from magnet.loss import ohem_cross_entropy, scaled_min_kept
from magnet.method import MagNet, MagNetFast
from magnet.refinement import RefinementModule, load_refiner
from magnet.roi_align import roi_align

TINY = {"scales": ((32, 16), (64, 32), (128, 64)), "n_points": 128, "mask_inset": 2}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _two_class_logits(p_true: list[float]) -> torch.Tensor:
    p = torch.tensor(p_true, dtype=torch.float64)
    return torch.stack([p.log(), (1 - p).log()]).view(1, 2, 1, -1)


def test_ohem_hand_case():
    logits = _two_class_logits([0.9, 0.6, 0.3, 0.8, 0.5])
    target = torch.tensor([[[0, 0, 0, 0, 255]]])  # the last pixel is ignored
    ce = {p: -math.log(p) for p in (0.9, 0.6, 0.3, 0.8)}
    # sorted p = 0.3, 0.6, 0.8, 0.9; min_kept 1 -> p[1] = 0.6 < 0.7 -> threshold 0.7
    assert float(ohem_cross_entropy(logits, target, 255, 0.7, 1)) == pytest.approx((ce[0.3] + ce[0.6]) / 2)
    # min_kept 2 -> p[2] = 0.8 -> keeps p < 0.8
    assert float(ohem_cross_entropy(logits, target, 255, 0.7, 2)) == pytest.approx((ce[0.3] + ce[0.6]) / 2)
    # min_kept >= N - 1 -> p[N-1] = 0.9 -> keeps all but the easiest
    assert float(ohem_cross_entropy(logits, target, 255, 0.7, 100)) == pytest.approx((ce[0.3] + ce[0.6] + ce[0.8]) / 3)
    # threshold 0.95 keeps everything
    assert float(ohem_cross_entropy(logits, target, 255, 0.95, 1)) == pytest.approx(sum(ce.values()) / 4)


def test_ohem_nothing_kept_is_zero_with_a_graph():
    logits = _two_class_logits([0.99, 0.99]).requires_grad_()
    loss = ohem_cross_entropy(logits, torch.zeros(1, 1, 2, dtype=torch.long), 255, 0.7, 1)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="target"):
        ohem_cross_entropy(logits, torch.zeros(1, 2, dtype=torch.long), 255)


def test_min_kept_scales_down_with_the_input_area_only():
    assert scaled_min_kept(0, (256, 128)) == 100_000
    assert scaled_min_kept(0, (128, 64)) == 25_000
    assert scaled_min_kept(0, (508, 508)) == 100_000
    assert scaled_min_kept(1234, (128, 64)) == 1234


def test_milestones():
    assert mt.milestones(MagNetConfig()) == [10, 20, 30, 40, 45]
    assert mt.milestones(MagNetConfig(epochs=10)) == [2, 4, 6, 8, 9]
    assert mt.milestones(MagNetConfig(milestones=(7, 3))) == [3, 7]


def test_epoch_batches():
    rng = np.random.RandomState(0)
    one_pass = mt._epoch_batches(rng, 10, 4, 0, [])
    assert [len(b) for b in one_pass] == [4, 4, 2] and sorted(sum(one_pass, [])) == list(range(10))
    stream: list[int] = []
    fixed = mt._epoch_batches(rng, 10, 4, 5, stream)
    assert [len(b) for b in fixed] == [4] * 5 and len(stream) == 0


def _source(tiny_ctx, tiny_dataset, budget_mb=64):
    cfg = MagNetConfig(**TINY)
    plan = resolve_plan(cfg, tiny_ctx.input_size, tiny_ctx.image_size)
    return mp.PairSource(tiny_dataset, plan, tiny_ctx.backbone, tiny_ctx.device, budget_mb)


def test_pairs_follow_the_spec(tiny_ctx, tiny_dataset):
    """Fine patch, coarse crop and label of one pair, recomputed by hand from the same draws."""
    source = _source(tiny_ctx, tiny_dataset)
    fine, crop, target = mp.sample_batch(source, [2, 0], ((64, 32), (128, 64)), np.random.RandomState(5))
    draws = np.random.RandomState(5)
    backbone = tiny_ctx.backbone
    for row, index in enumerate([2, 0]):
        sw, sh = ((64, 32), (128, 64))[draws.randint(2)]
        x, y = draws.randint(0, sw - 32), draws.randint(0, sh - 16)
        sample = tiny_dataset[index]
        image = cv2.resize(sample.image, (sw, sh), interpolation=cv2.INTER_LINEAR) if sw != 128 else sample.image
        label = cv2.resize(sample.label, (sw, sh), interpolation=cv2.INTER_NEAREST) if sw != 128 else sample.label
        with torch.no_grad():
            expected_fine = F.softmax(backbone(normalize(image[y:y + 16, x:x + 32])), 1)[0]
            coarse = F.softmax(backbone(normalize(cv2.resize(sample.image, (32, 16), interpolation=cv2.INTER_LINEAR))), 1)[0]
        box = torch.tensor([[x / sw * 32, y / sh * 16, (x + 32) / sw * 32, (y + 16) / sh * 16]])
        torch.testing.assert_close(fine[row], expected_fine, atol=1e-6, rtol=0)
        torch.testing.assert_close(crop[row], roi_align(coarse, box, (16, 32))[0], atol=1e-6, rtol=0)
        assert torch.equal(target[row], torch.from_numpy(label[y:y + 16, x:x + 32].astype(np.int64)))


def test_caches_do_not_change_pairs(tiny_ctx, tiny_dataset):
    a = mp.sample_batch(_source(tiny_ctx, tiny_dataset, 64), [0, 1, 3], ((64, 32),), np.random.RandomState(1))
    b = mp.sample_batch(_source(tiny_ctx, tiny_dataset, 0), [0, 1, 3], ((64, 32),), np.random.RandomState(1))
    for x, y in zip(a, b):
        assert torch.equal(x, y)


class _Recorder(RefinementModule):
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, first, second):
        _Recorder.seen.append((first, second))
        return super().forward(first, second)


@pytest.mark.parametrize("order", ["matching", "released"])
def test_training_input_order(monkeypatch, tiny_ctx, tiny_dataset, order):
    fine, crop = torch.full((2, 4, 16, 32), 0.1), torch.full((2, 4, 16, 32), 0.4)
    monkeypatch.setattr(mt, "sample_batch", lambda *a, **k: (fine, crop, torch.zeros(2, 16, 32, dtype=torch.long)))
    monkeypatch.setattr(mt, "RefinementModule", _Recorder)
    _Recorder.seen = []
    cfg = MagNetConfig(**TINY, epochs=1, iterations_per_epoch=1, train_input_order=order)
    mt.train_one(_source(tiny_ctx, tiny_dataset), ((64, 32),), cfg, 4, 255, 0)
    first, second = _Recorder.seen[0]
    assert (first is fine and second is crop) if order == "matching" else (first is crop and second is fine)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(monkeypatch, tiny_ctx, tiny_dataset):
    batch = mp.sample_batch(_source(tiny_ctx, tiny_dataset), [0, 1, 2, 3], ((64, 32),), np.random.RandomState(0))
    monkeypatch.setattr(mt, "sample_batch", lambda *a, **k: batch)
    cfg = MagNetConfig(**TINY, epochs=6, iterations_per_epoch=1, lr=0.05, ohem_min_kept=10_000)
    _, history = mt.train_one(_source(tiny_ctx, tiny_dataset), ((64, 32),), cfg, 4, 255, 0)
    assert history[-1] < 0.8 * history[0]


def test_train_writes_strict_state_dicts_shared_with_fast(tiny_ctx, tiny_dataset):
    cfg = MagNetConfig(**TINY, epochs=1, train_batch_size=2)
    paths = MagNet.checkpoints(cfg, tiny_ctx)
    assert paths == MagNetFast.checkpoints(replace(cfg, n_patches=2, n_points=0.9), tiny_ctx)
    summary = mt.train_refiners(cfg, tiny_ctx, tiny_dataset, paths)
    assert [s["scales"] for s in summary.values()] == [[[64, 32]], [[128, 64]]]
    assert all(len(s["loss"]) == 1 and np.isfinite(s["loss"][0]) for s in summary.values())
    for path in paths.values():
        assert load_refiner(path, 4).state_dict()["bn0.num_batches_tracked"] == 2  # 4 images / batch 2
    sample = tiny_dataset[0]
    from bench.models.coarse import compute_coarse

    out = MagNet(cfg, tiny_ctx).refine(sample.image, compute_coarse(tiny_ctx.backbone, sample.image, (32, 16), "cpu"))
    assert out.shape == sample.label.shape


def test_bn_recalibration_averages_batch_statistics(monkeypatch, tiny_ctx, tiny_dataset):
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(2, 4, 16, 32, generator=gen), torch.rand(2, 4, 16, 32, generator=gen), None) for _ in range(3)]
    calls = iter(batches)
    monkeypatch.setattr(mt, "sample_batch", lambda *a, **k: next(calls))
    refiner = RefinementModule(4)
    cfg = MagNetConfig(**TINY, bn_recalibration=3, train_batch_size=2)
    mt.recalibrate_bn(refiner, _source(tiny_ctx, tiny_dataset), ((64, 32),), cfg, np.random.RandomState(0))
    means = torch.stack([torch.cat([f, c], 1).mean(dim=(0, 2, 3)) for f, c, _ in batches])
    torch.testing.assert_close(refiner.bn0.running_mean, means.mean(0))
    assert int(refiner.bn0.num_batches_tracked) == 3 and refiner.bn0.momentum == 0.01
