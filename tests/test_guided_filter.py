"""Guided-filter maths (baselines/gf_ops.py) and the grey-guide GF baseline against float64 references.

The references are independent numpy float64 loops over explicit windows (small arrays only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from baselines.common.gf_ops import (
    box_mean,
    fast_guided_filter,
    guided_filter,
    guided_filter_coeffs,
    resize_bilinear_region,
)
from bench.models.coarse import compute_coarse
from bench.core.config import config_from_mapping
from bench.core.interface import Coarse

import cv2  # noqa: E402  (required by pyproject.toml: a broken install fails, never skips)


# ---------------------------------------------------------------- float64 references (naive loops)
def ref_box_truncated(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the in-image part of each (2r+1)^2 window; x is (H, W)."""
    h, w = x.shape
    out = np.empty_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = x[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean()
    return out


def ref_box_reflect(x: np.ndarray, r: int) -> np.ndarray:
    """Normalised (2r+1)^2 mean with OpenCV's BORDER_REFLECT (abc|cba); x is (H, W)."""
    p = np.pad(x.astype(np.float64), r, mode="symmetric")
    h, w = x.shape
    out = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = p[i:i + 2 * r + 1, j:j + 2 * r + 1].mean()
    return out


def ref_guided(guide: np.ndarray, src: np.ndarray, r: int, eps: float, box) -> np.ndarray:
    """He's guided filter, one channel, float64, with the given box mean."""
    guide, src = guide.astype(np.float64), src.astype(np.float64)
    mi, mp = box(guide, r), box(src, r)
    a = (box(guide * src, r) - mi * mp) / (box(guide * guide, r) - mi * mi + eps)
    b = mp - a * mi
    return box(a, r) * guide + box(b, r)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


# ---------------------------------------------------------------- box filter / guided filter maths
@pytest.mark.parametrize("r", [0, 1, 3, 9])
def test_box_mean_matches_truncated_window_reference(r):
    x = _rand(2, 3, 11, 17)
    got = box_mean(torch.from_numpy(x), r).numpy()
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[n, c], ref_box_truncated(x[n, c], r), rtol=0, atol=1e-12)


def test_box_mean_float32_close_and_rejects_bad_input():
    x = _rand(1, 2, 20, 30)
    got = box_mean(torch.from_numpy(x).float(), 4).numpy()
    np.testing.assert_allclose(got[0, 1], ref_box_truncated(x[0, 1], 4), atol=1e-6)
    with pytest.raises(ValueError, match="radius"):
        box_mean(torch.zeros(1, 1, 4, 4), -1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        box_mean(torch.zeros(4, 4), 1)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_guided_filter_matches_float64_reference(guide_channels):
    r, eps = 2, 1e-2
    guide, src = _rand(1, guide_channels, 12, 15, seed=1), _rand(1, 3, 12, 15, seed=2)
    got = guided_filter(torch.from_numpy(guide), torch.from_numpy(src), r, eps).numpy()
    for c in range(3):
        g = guide[0, 0 if guide_channels == 1 else c]
        np.testing.assert_allclose(got[0, c], ref_guided(g, src[0, c], r, eps, ref_box_truncated), atol=1e-12)


def test_guided_filter_limits():
    """Constant guide -> a = 0, q = box(box(p)); src a linear function of the guide -> q = src."""
    src = torch.from_numpy(_rand(1, 2, 10, 12, seed=3))
    a, b = guided_filter_coeffs(torch.ones(1, 1, 10, 12, dtype=torch.float64), src, 2, 1e-2)
    assert torch.all(a == 0)
    torch.testing.assert_close(b, box_mean(src, 2))
    guide = torch.from_numpy(_rand(1, 1, 10, 12, seed=4))
    q = guided_filter(guide, 3.0 * guide - 1.0, 2, 1e-12)
    torch.testing.assert_close(q, 3.0 * guide - 1.0, atol=1e-8, rtol=0)


def test_guided_filter_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="channels"):
        guided_filter(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8), 1, 1e-2)
    with pytest.raises(ValueError, match="differ"):
        guided_filter(torch.zeros(1, 1, 8, 9), torch.zeros(1, 3, 8, 8), 1, 1e-2)


# ---------------------------------------------------------------- CPU inference kernel (float32, no grad)
@pytest.mark.parametrize("guide_channels,r,size", [(1, 2, (12, 15)), (3, 3, (20, 31)), (3, 9, (11, 17))])
def test_cpu_kernel_matches_float64_reference(guide_channels, r, size):
    """The float32 kernel (cv2 running sums) against the naive float64 loops, also when r > size."""
    from baselines.common import gf_ops

    guide, src = _rand(2, guide_channels, *size, seed=11), _rand(2, 3, *size, seed=12)
    g32, s32 = torch.from_numpy(guide).float(), torch.from_numpy(src).float()
    assert gf_ops._use_cpu_kernel(g32, s32)
    got = guided_filter(g32, s32, r, 1e-2).numpy()
    assert got.dtype == np.float32
    for n in range(2):
        for c in range(3):
            g = guide[n, 0 if guide_channels == 1 else c]
            np.testing.assert_allclose(got[n, c], ref_guided(g, src[n, c], r, 1e-2, ref_box_truncated), atol=2e-6)


def test_cpu_kernel_only_without_gradient_and_equals_conv_path(monkeypatch):
    """Training (gradients) keeps the differentiable path; both paths agree on the same inputs."""
    from baselines.common import gf_ops

    guide = torch.from_numpy(_rand(1, 4, 40, 56, seed=13)).float()
    src = torch.from_numpy(_rand(1, 4, 40, 56, seed=14)).float()
    fast = guided_filter(guide, src, 4, 1e-2)
    leaf = guide.clone().requires_grad_(True)
    assert not gf_ops._use_cpu_kernel(leaf, src) and not gf_ops._use_cpu_kernel(guide.double(), src.double())
    out = guided_filter(leaf, src, 4, 1e-2)
    out.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    torch.testing.assert_close(fast, out.detach(), atol=1e-6, rtol=0)
    monkeypatch.setattr(gf_ops, "USE_CPU_KERNEL", False)
    torch.testing.assert_close(fast, guided_filter(guide, src, 4, 1e-2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("guide_channels", [1, 19])
def test_cpu_kernel_matches_reference_package(guide_channels):
    """Oracle: the DGF authors' ``guided-filter-pytorch`` GuidedFilter(4, 1e-2), max |diff| <= 1e-4.

    Inputs in [0, 1] as probabilities and images are; 1 thread and 2 threads give the same bits.
    """
    from guided_filter_pytorch.guided_filter import GuidedFilter

    gen = torch.Generator().manual_seed(15)
    guide = torch.rand(2, guide_channels, 96, 160, generator=gen)
    src = torch.rand(2, 19, 96, 160, generator=gen)
    with torch.inference_mode():
        ref = GuidedFilter(4, 1e-2)(guide, src)
        got = guided_filter(guide, src, 4, 1e-2)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            single = guided_filter(guide, src, 4, 1e-2)
        finally:
            torch.set_num_threads(threads)
    assert (got - ref).abs().max().item() <= 1e-4
    assert torch.equal(got, single)
    # a wrong eps or radius is caught by the oracle
    assert (guided_filter(guide, src, 3, 1e-2) - ref).abs().max().item() > 1e-3


def _smooth(h: int, w: int, phase: float) -> np.ndarray:
    """A smooth field sampled on the align_corners=True grid of an (h, w) image."""
    v, u = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    return 0.5 + 0.3 * np.sin(2.0 * u + phase) * np.cos(1.5 * v - phase) + 0.1 * u


def test_fast_form_equals_full_form_on_linear_relation():
    """If p = alpha * I + beta everywhere, a = alpha and b = beta: both forms return p exactly."""
    lr, hr = _smooth(16, 24, 0.3), _smooth(64, 96, 0.3)
    to_t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    full = guided_filter(to_t(hr), to_t(2 * hr + 0.5), 8, 1e-12)
    fast = fast_guided_filter(to_t(lr), to_t(2 * lr + 0.5), to_t(hr), 2, 1e-12)
    torch.testing.assert_close(full, to_t(2 * hr + 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(fast, to_t(2 * hr + 0.5), atol=1e-6, rtol=0)


def test_fast_form_approximates_full_form_on_smooth_inputs():
    """Smooth guide and signal: the fast form (r/4 at 1/4 resolution) is close to the full form."""
    lr_i, hr_i = _smooth(32, 48, 0.2), _smooth(128, 192, 0.2)
    lr_p, hr_p = _smooth(32, 48, 1.1) ** 2, _smooth(128, 192, 1.1) ** 2
    to_t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    full = guided_filter(to_t(hr_i), to_t(hr_p), 8, 1e-4)
    fast = fast_guided_filter(to_t(lr_i), to_t(lr_p), to_t(hr_i), 2, 1e-4)
    interior = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    err = (full - fast)[interior].abs().max().item()
    spread = (hr_p.max() - hr_p.min())
    assert err < 0.005 * spread, err  # a non-smooth guide gives about 0.07 * spread here
    assert (fast - to_t(hr_p))[interior].abs().max().item() < 0.02 * spread  # and both stay near p


@pytest.mark.parametrize("align_corners", [True, False])
def test_resize_bilinear_region_equals_interpolate_crop(align_corners):
    x = torch.randn(2, 3, 9, 13)
    full = F.interpolate(x, size=(70, 101), mode="bilinear", align_corners=align_corners)
    for box in [(0, 0, 70, 101), (5, 17, 30, 40), (69, 100, 1, 1)]:
        top, left, h, w = box
        got = resize_bilinear_region(x, (70, 101), box, align_corners)
        torch.testing.assert_close(got, full[..., top:top + h, left:left + w], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="not inside"):
        resize_bilinear_region(x, (70, 101), (60, 0, 20, 10), align_corners)


# ---------------------------------------------------------------- OpenCV guided filter (grey guide)
def test_cv2_guided_filter_matches_reflect_reference():
    """cv2.ximgproc.guidedFilter = He's filter with a BORDER_REFLECT box (1e-5 in the interior)."""
    r, eps = 3, 1e-2
    guide = _rand(24, 31, seed=5).astype(np.float32)
    src = _rand(24, 31, seed=6).astype(np.float32)
    got = cv2.ximgproc.guidedFilter(guide, src, r, eps)
    ref = ref_guided(guide, src, r, eps, ref_box_reflect)
    inner = (slice(2 * r, -2 * r), slice(2 * r, -2 * r))
    np.testing.assert_allclose(got[inner], ref[inner], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)  # reflect border matches everywhere
    # the truncated (DGF) box agrees in the interior only
    trunc = ref_guided(guide, src, r, eps, ref_box_truncated)
    np.testing.assert_allclose(got[inner], trunc[inner], atol=1e-5, rtol=0)


def _gf_method(ctx, **options):
    from baselines.guided_filter import GuidedFilterGray

    return GuidedFilterGray(config_from_mapping(GuidedFilterGray.Config, options), ctx)


def test_gray_gf_method_matches_reference(tiny_ctx, tiny_dataset):
    from baselines.guided_filter import gray_guide

    method = _gf_method(tiny_ctx, radius=3, eps=1e-3)
    image = tiny_dataset[0].image[:24, :40].copy()
    probs = torch.from_numpy(_rand(4, 6, 10, seed=7).astype(np.float32))
    probs = probs / probs.sum(0, keepdim=True)
    out = method.refine(image, Coarse(probs)).numpy()
    assert out.shape == (24, 40) and out.dtype == np.int64
    guide = gray_guide(image)
    assert guide.dtype == np.float32 and 0.0 <= guide.min() and guide.max() <= 1.0
    np.testing.assert_allclose(guide, image.astype(np.float64) @ [0.299, 0.587, 0.114] / 255, atol=1e-5)
    up = F.interpolate(probs[None].double(), size=(24, 40), mode="bilinear", align_corners=False)[0].numpy()
    ref = np.stack([ref_guided(guide, up[k], 3, 1e-3, ref_box_reflect) for k in range(4)])
    top2 = np.sort(ref, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # ignore near-ties that float32 rounding may flip
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(out[clear], ref.argmax(0)[clear])


def test_gray_gf_contract_and_errors(tiny_ctx, tiny_dataset):
    from baselines.guided_filter import GuidedFilterGray

    method = _gf_method(tiny_ctx)
    sample = tiny_dataset[1]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device)
    out = method.refine(sample.image, coarse)
    assert out.shape == (64, 128) and out.dtype == torch.int64
    assert torch.equal(out, method.refine(sample.image, coarse))
    assert GuidedFilterGray.display_name == "GF (gray guide)"
    assert GuidedFilterGray.checkpoints(method.cfg, tiny_ctx) == {}
    with pytest.raises(ValueError, match="uint8"):
        method.refine(sample.image.astype(np.float32), coarse)
    with pytest.raises(ValueError, match="coarse"):
        method.refine(sample.image, None)
    with pytest.raises(ValueError, match="radius"):
        config_from_mapping(GuidedFilterGray.Config, {"radius": 0})


def test_yaml_config_loads():
    from baselines.guided_filter import GuidedFilterGray

    path = Path(__file__).resolve().parents[1] / "configs" / "methods" / "guided_filter.yaml"
    values = yaml.safe_load(path.read_text())
    assert "version" not in values  # the version is the class attribute alone (part of the run key)
    assert config_from_mapping(GuidedFilterGray.Config, values) == GuidedFilterGray.Config(radius=8, eps=1e-2)
