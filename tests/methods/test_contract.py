"""Every registered method against the contract of bench/interface.py, on tiny images.

Learned methods are trained for a few steps first (SMOKE overrides): the contract is about
shapes, determinism and devices, not accuracy. Methods whose optional dependency is missing skip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bench
from bench.coarse import compute_coarse
from bench.interface import config_from_mapping
from bench.registry import MethodUnavailable, resolve

# a handful of optimiser steps, so training code runs without taking minutes
SMOKE: dict[str, dict] = {
    "dgf": {"iterations": 2},
    "pointrend": {"iterations": 2},
    "segfix": {"iterations": 2},
    "magnet": {"epochs": 1},
    "magnet_fast": {"epochs": 1},
    "magnet_fast_paper": {"epochs": 1},
}
# sizes the tiny context implies for MagNet (image 128x64, input 32x16)
TINY_OPTIONS: dict[str, dict] = {
    "magnet": {"scales": [[32, 16], [64, 32], [128, 64]], "n_points": 256},
    "magnet_fast": {"scales": [[32, 16], [64, 32], [128, 64]], "n_patches": 2},
    "magnet_fast_paper": {"scales": [[32, 16], [64, 32], [128, 64]], "n_patches": 2},
}


def _build(name, ctx, dataset):
    try:
        cls = resolve(name)
    except MethodUnavailable as err:
        pytest.skip(str(err))
    values = {**TINY_OPTIONS.get(name, {}), **SMOKE.get(name, {})}
    known = {f for f in getattr(cls.Config, "__dataclass_fields__", {})}
    cfg = config_from_mapping(cls.Config, {k: v for k, v in values.items() if k in known})
    paths = cls.checkpoints(cfg, ctx)
    if paths and not all(p.is_file() for p in paths.values()):
        cls.train(cfg, ctx, dataset, paths)
    return cls, cls(cfg, ctx)


@pytest.mark.parametrize("name", bench.list_methods())
def test_method_contract(name, tiny_ctx, tiny_dataset):
    cls, method = _build(name, tiny_ctx, tiny_dataset)
    sample = tiny_dataset[0]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device) if cls.uses_coarse else None
    if coarse is not None:
        assert coarse.probs.shape == (4, 16, 32)
    out = method.refine(sample.image, coarse)
    assert isinstance(out, torch.Tensor)
    assert out.shape == sample.label.shape and out.dtype == torch.int64 and out.device.type == "cpu"
    assert int(out.min()) >= 0 and int(out.max()) < 4
    again = method.refine(sample.image, coarse)
    assert torch.equal(out, again), "refine must be deterministic"
    assert cls.display_name and cls.name == name


def test_downsample_is_upsampled_coarse_argmax(tiny_ctx, tiny_dataset):
    _, method = _build("downsample", tiny_ctx, tiny_dataset)
    sample = tiny_dataset[1]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device)
    up = torch.nn.functional.interpolate(coarse.probs[None], size=(64, 128), mode="bilinear", align_corners=False)[0]
    assert torch.equal(method.refine(sample.image, coarse), up.argmax(0))


def test_patching_full_res_tiles_match_direct_forward(tiny_ctx, tiny_dataset):
    """Non-overlapping tiles at full resolution: each tile's labels equal a direct forward on it."""
    _, method = _build("patching", tiny_ctx, tiny_dataset)
    sample = tiny_dataset[2]
    out = method.refine(sample.image, None).numpy()
    from bench.interface import normalize

    tile = sample.image[16:32, 32:64]
    with torch.no_grad():
        direct = tiny_ctx.backbone(normalize(tile)).argmax(1)[0].numpy()
    np.testing.assert_array_equal(out[16:32, 32:64], direct)


def test_patching_batch_size_does_not_change_result(tiny_ctx, tiny_dataset):
    from baselines.patching import PatchingConfig, Patching

    sample = tiny_dataset[3]
    a = Patching(PatchingConfig(batch_size=1), tiny_ctx).refine(sample.image, None)
    b = Patching(PatchingConfig(batch_size=16), tiny_ctx).refine(sample.image, None)
    assert torch.equal(a, b)
