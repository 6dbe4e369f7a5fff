"""Every registered method against the contract of bench/core/interface.py, on tiny images.

The checks are ``bench.checks.contract``'s (also ``python -m bench check NAME``, or
``pytest tests/methods --method NAME``, for any method, a plugin's included). Learned methods are trained for a few steps first (``bench.checks.contract.SMOKE``):
the contract is about shapes, determinism and devices, not accuracy. Methods whose optional
dependency is missing skip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bench
from bench.checks import contract
from bench.models.coarse import compute_coarse
from bench.core.registry import MethodUnavailable, resolve


def _build(name, ctx, dataset):
    try:
        cls = resolve(name)
    except MethodUnavailable as err:
        pytest.skip(str(err))
    return cls, contract.build(name, cls, ctx, dataset)


def pytest_generate_tests(metafunc):
    """``--method NAME`` (tests/methods/conftest.py) narrows the contract to the named methods."""
    if metafunc.function.__name__ == "test_method_contract":
        names = metafunc.config.getoption("--method", default=None) or bench.list_methods()
        metafunc.parametrize("name", names)


def test_method_contract(name, tiny_ctx, tiny_dataset):
    cls, method = _build(name, tiny_ctx, tiny_dataset)
    contract.check_class(name, cls)
    if cls.uses_coarse:
        coarse = compute_coarse(tiny_ctx.backbone, tiny_dataset[0].image, tiny_ctx.input_size, tiny_ctx.device)
        assert coarse.probs.shape == (4, 16, 32)
    contract.check_refine(name, cls, method, tiny_ctx, tiny_dataset)


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
    from bench.core.interface import normalize

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
