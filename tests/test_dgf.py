"""Deep Guided Filter baseline: shapes, training-window consistency, training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from baselines.common.gf_ops import guided_filter
from baselines.dgf import (
    DeepGuidedFilter,
    GuideHead,
    _batch_loss,
    _Window,
    dgf_logits,
    dgf_logits_windows,
    image_tensor,
    log_probs,
)
from bench.models.coarse import compute_coarse, resize_image
from bench.core.config import config_from_mapping
from bench.core.interface import Coarse

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "methods"
TINY = {"iterations": 3, "batch_size": 2, "crop_size": (48, 32)}


def _cfg(**options):
    return config_from_mapping(DeepGuidedFilter.Config, {**TINY, **options})


def _head(seed: int = 0) -> GuideHead:
    torch.manual_seed(seed)
    return GuideHead(4, 8).eval()


def compute_small_image(image: np.ndarray) -> np.ndarray:
    return resize_image(image, (32, 16))


def _coarse_inputs(ctx, sample):
    coarse = compute_coarse(ctx.backbone, sample.image, ctx.input_size, ctx.device)
    return coarse, log_probs(coarse.probs.clone())


def test_guide_head_and_filter_shapes(tiny_ctx, tiny_dataset):
    sample = tiny_dataset[0]
    _, logp = _coarse_inputs(tiny_ctx, sample)
    assert logp.shape == (1, 4, 16, 32) and torch.isfinite(log_probs(torch.zeros(4, 2, 2))).all()
    head = _head()
    assert head(image_tensor(sample.image, "cpu")).shape == (1, 4, 64, 128)
    for fast in (False, True):
        with torch.no_grad():
            out = dgf_logits(head, _cfg(fast=fast, hidden=8), sample.image, logp)
        assert out.shape == (1, 4, 64, 128) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_full_form_is_dgf_guided_filter_on_upsampled_log_probs(tiny_ctx, tiny_dataset):
    """Full form = GuidedFilter(r, eps)(g, bilinear_align_corners(log p)) with g from the [0, 1] image."""
    sample = tiny_dataset[1]
    _, logp = _coarse_inputs(tiny_ctx, sample)
    head, cfg = _head(), _cfg(hidden=8, radius=2, eps=0.05)
    x = torch.from_numpy(sample.image).permute(2, 0, 1)[None].float() / 255
    guide = F.conv2d(F.relu(F.conv2d(x, head.conv1.weight, head.conv1.bias)), head.conv2.weight, head.conv2.bias)
    up = F.interpolate(logp, size=(64, 128), mode="bilinear", align_corners=True)
    with torch.no_grad():
        torch.testing.assert_close(dgf_logits(head, cfg, sample.image, logp), guided_filter(guide, up, 2, 0.05))


@pytest.mark.parametrize("fast", [False, True])
def test_training_window_matches_whole_image(tiny_ctx, tiny_dataset, fast):
    """A training crop sees what inference computes on the same pixels (full form: away from the crop border)."""
    sample = tiny_dataset[2]
    _, logp = _coarse_inputs(tiny_ctx, sample)
    small = compute_small_image(sample.image)
    head, cfg = _head(), _cfg(fast=fast, hidden=8, radius=2)
    box = (10, 30, 40, 64)
    with torch.no_grad():
        whole = dgf_logits(head, cfg, sample.image, logp)[..., 10:50, 30:94]
        window = dgf_logits_windows(head, cfg, [_Window(sample.image, sample.label, small, logp, box)])
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # 2 * radius: two box passes
    part = inner if not fast else (slice(None),) * 4
    torch.testing.assert_close(window[part], whole[part], atol=1e-4, rtol=0)


def test_training_steps_reduce_the_loss(tiny_dataset):
    """On a blurry but informative coarse map (downsampled one-hot GT), a few steps lower the CE."""
    cfg = _cfg(hidden=8, lr=1e-2)
    head = _head().train()
    windows = []
    for i, box in enumerate([(0, 0, 32, 48), (20, 50, 32, 48), (32, 80, 32, 48)]):
        sample = tiny_dataset[i]
        onehot = F.one_hot(torch.from_numpy(np.minimum(sample.label, 3)).long(), 4).permute(2, 0, 1).float()
        probs = torch.softmax(3 * F.interpolate(onehot[None], size=(16, 32), mode="area")[0], 0)
        windows.append(_Window(sample.image, sample.label, compute_small_image(sample.image), log_probs(probs), box))
    optimiser = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(15):
        loss = _batch_loss(head, cfg, windows, 255)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_train_save_load_refine(tiny_ctx, tiny_dataset):
    cfg = _cfg(fast=True, hidden=8)
    path = DeepGuidedFilter.checkpoints(cfg, tiny_ctx)["dgf"]
    assert path == tiny_ctx.checkpoint_dir / "dgf.pt"
    with pytest.raises(FileNotFoundError, match="train"):
        DeepGuidedFilter(cfg, tiny_ctx)
    DeepGuidedFilter.train(cfg, tiny_ctx, tiny_dataset, {"dgf": path})
    state = torch.load(path, weights_only=True)
    assert set(state) == {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "trained_with"}
    first = {k: v.clone() for k, v in state.items()}
    DeepGuidedFilter.train(cfg, tiny_ctx, tiny_dataset, {"dgf": path})  # same seed, same weights
    assert all(torch.equal(first[k], v) for k, v in torch.load(path, weights_only=True).items())

    method = DeepGuidedFilter(cfg, tiny_ctx)
    sample = tiny_dataset[3]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device)
    out = method.refine(sample.image, coarse)
    assert out.shape == (64, 128) and out.dtype == torch.int64
    assert torch.equal(out, method.refine(sample.image, coarse))
    with pytest.raises(ValueError, match="uint8"):
        method.refine(sample.image.astype(np.float64), coarse)
    with pytest.raises(ValueError, match="fast=True"):
        DeepGuidedFilter(_cfg(fast=False, hidden=8), tiny_ctx)


def test_refine_uses_the_coarse_map(tiny_ctx, tiny_dataset):
    """A confident coarse map of one class gives that class everywhere."""
    cfg = _cfg(hidden=8)
    DeepGuidedFilter.train(cfg, tiny_ctx, tiny_dataset, DeepGuidedFilter.checkpoints(cfg, tiny_ctx))
    method = DeepGuidedFilter(cfg, tiny_ctx)
    probs = torch.full((4, 16, 32), 1e-4)
    probs[2] = 1 - 3e-4
    out = method.refine(tiny_dataset[0].image, Coarse(probs))
    assert torch.all(out == 2)


def test_yaml_config_loads():
    values = yaml.safe_load((CONFIGS / "dgf.yaml").read_text())
    assert "version" not in values  # the version is the class attribute alone (part of the run key)
    cfg = config_from_mapping(DeepGuidedFilter.Config, values)
    assert (cfg.radius, cfg.eps, cfg.fast, cfg.hidden) == (4, 1e-2, False, 64)
    with pytest.raises(ValueError, match="head_init"):
        config_from_mapping(DeepGuidedFilter.Config, {"head_init": "xavier"})
