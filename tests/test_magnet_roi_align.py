"""The pure-torch RoIAlign against independent references (torchvision semantics, magnet.md §1.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from magnet.roi_align import roi_align


def _bilinear(f: np.ndarray, y: float, x: float) -> np.ndarray:
    """One sample, written from the spec's rules: zero outside [-1, H], clamp at 0 and at H-1."""
    _, h, w = f.shape
    if y < -1 or y > h or x < -1 or x > w:
        return np.zeros(f.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(y), h - 1), min(int(x), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    if y0 == h - 1:
        y = float(y0)
    if x0 == w - 1:
        x = float(x0)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1]
            + ly * (1 - lx) * f[:, y1, x0] + ly * lx * f[:, y1, x1])


def reference_per_bin(f: np.ndarray, box: tuple[float, ...], out_hw: tuple[int, int]) -> np.ndarray:
    """Loops over bins and samples (slow, independent)."""
    oh, ow = out_hw
    x1, y1, x2, y2 = box
    rh, rw = max(y2 - y1, 1.0), max(x2 - x1, 1.0)
    bh, bw = rh / oh, rw / ow
    gh, gw = math.ceil(rh / oh), math.ceil(rw / ow)
    out = np.zeros((f.shape[0], oh, ow))
    for ph in range(oh):
        for pw in range(ow):
            acc = np.zeros(f.shape[0])
            for iy in range(gh):
                for ix in range(gw):
                    acc += _bilinear(f, y1 + ph * bh + (iy + 0.5) * bh / gh, x1 + pw * bw + (ix + 0.5) * bw / gw)
            out[:, ph, pw] = acc / (gh * gw)
    return out


def _positions(start: float, roi: float, bins: int, grid: int, dtype: type) -> np.ndarray:
    """Sample positions ``start + p * bin + (i + 0.5) * bin / g`` (p outer, i inner) in ``dtype``."""
    start, size = dtype(start), dtype(roi) / dtype(bins)
    p = np.arange(bins, dtype=dtype)[:, None]
    i = np.arange(grid, dtype=dtype)[None, :]
    return (start + p * size + (i + dtype(0.5)) * size / dtype(grid)).reshape(-1).astype(np.float64)


def reference_scipy(f: np.ndarray, box: tuple[float, ...], out_hw: tuple[int, int], dtype: type = np.float64) -> np.ndarray:
    """Vectorised with scipy's order-1 map_coordinates (edge-replicating) plus the [-1, H] zero rule.

    ``dtype`` is the precision of the sample positions: torchvision computes them in float32,
    which moves samples by up to 6e-5 px at coordinates near 1224.
    """
    oh, ow = out_hw
    x1, y1, x2, y2 = box
    rh, rw = max(y2 - y1, 1.0), max(x2 - x1, 1.0)
    gh, gw = math.ceil(rh / oh), math.ceil(rw / ow)
    ys, xs = _positions(y1, rh, oh, gh, dtype), _positions(x1, rw, ow, gw, dtype)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    inside = (yy >= -1) & (yy <= f.shape[1]) & (xx >= -1) & (xx <= f.shape[2])
    out = []
    for channel in f:
        v = map_coordinates(channel, [yy, xx], order=1, mode="nearest") * inside
        out.append(v.reshape(oh, gh, ow, gw).mean(axis=(1, 3)))
    return np.stack(out)


@pytest.mark.parametrize("box", [
    (0, 0, 16, 8), (2.5, 3.2, 29.7, 19.9), (-3, -2, 5, 4), (25, 15, 34, 24), (4, 4, 4.2, 4.1), (-5, -5, 40, 30),
])
def test_matches_per_bin_reference(box):
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(3, 20, 30, generator=gen)
    ours = roi_align(f, torch.tensor([box]), (8, 16))[0].double().numpy()
    np.testing.assert_allclose(ours, reference_per_bin(f.double().numpy(), box, (8, 16)), atol=1e-6)


def test_several_boxes_with_different_sample_grids_at_once():
    gen = torch.Generator().manual_seed(1)
    f = torch.rand(2, 24, 24, generator=gen)
    boxes = [(0, 0, 6, 6), (0, 0, 24, 24), (3, 1, 17, 21), (1.5, 2.5, 9.5, 4.5)]
    ours = roi_align(f, torch.tensor(boxes), (6, 6)).double().numpy()
    for got, box in zip(ours, boxes):
        np.testing.assert_allclose(got, reference_per_bin(f.double().numpy(), box, (6, 6)), atol=1e-6)


def test_cityscapes_case_is_a_half_pixel_shift():
    """Box 256x128 -> 256x128 (one sample per bin): each output is the mean of a 2x2 neighbourhood."""
    gen = torch.Generator().manual_seed(2)
    f = torch.rand(2, 256, 512, generator=gen)
    a = f.double().numpy()
    for x1, y1 in ((256, 128), (0, 0)):
        out = roi_align(f, torch.tensor([[x1, y1, x1 + 256, y1 + 128]]), (128, 256))[0].double().numpy()
        ys = np.minimum(np.arange(y1, y1 + 128)[:, None] + np.array([0, 1]), 255)  # clamped at the last row
        xs = np.minimum(np.arange(x1, x1 + 256)[:, None] + np.array([0, 1]), 511)
        expected = sum(a[:, ys[:, i]][:, :, xs[:, j]] for i in (0, 1) for j in (0, 1)) / 4
        np.testing.assert_allclose(out, expected, atol=1e-6)


def test_deepglobe_case_two_by_two_samples():
    """612 -> 508 at the real size: ceil(612 / 508) = 2 samples per bin and axis."""
    gen = torch.Generator().manual_seed(3)
    f = torch.rand(1, 1224, 1224, generator=gen)
    box = (612.0, 0.0, 1224.0, 612.0)
    out = roi_align(f, torch.tensor([box]), (508, 508))[0].double().numpy()
    np.testing.assert_allclose(out, reference_scipy(f.double().numpy(), box, (508, 508), np.float32), atol=1e-6)
    np.testing.assert_allclose(out, reference_scipy(f.double().numpy(), box, (508, 508)), atol=1e-4)
    small = roi_align(f[:, :40, :40], torch.tensor([[2.0, 3.0, 26.0, 27.0]]), (20, 20))[0].double().numpy()
    np.testing.assert_allclose(small, reference_per_bin(f[:, :40, :40].double().numpy(), (2, 3, 26, 27), (20, 20)),
                               atol=1e-6)


def test_scipy_reference_agrees_with_per_bin_reference():
    f = np.random.default_rng(4).random((1, 15, 17))
    for box in ((-2.0, -1.5, 18.0, 16.5), (1.0, 2.0, 13.0, 9.0)):
        np.testing.assert_allclose(reference_scipy(f, box, (5, 4)), reference_per_bin(f, box, (5, 4)), atol=1e-12)


def test_constant_map_and_bad_input():
    f = torch.ones(1, 10, 10)
    np.testing.assert_allclose(roi_align(f, torch.tensor([[0, 0, 10, 10]]), (3, 7)).numpy(), 1.0)
    assert roi_align(f, torch.zeros(0, 4), (3, 3)).shape == (0, 1, 3, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        roi_align(torch.ones(1, 1, 4, 4), torch.zeros(1, 4), (2, 2))
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        roi_align(f, torch.zeros(4), (2, 2))


def test_unit_bin_fast_path_is_bit_identical_to_the_general_path(monkeypatch):
    """MagNet's grid crops (integer boxes of exactly the output size) skip the gathers, same bits."""
    import magnet.roi_align as ra

    gen = torch.Generator().manual_seed(3)
    f = torch.rand(5, 64, 96, generator=gen)
    boxes = torch.tensor([[0, 0, 32, 16], [64, 48, 96, 64], [31, 17, 63, 33], [64, 0, 96, 16]])
    assert ra._unit_bins(boxes.float(), (16, 32))
    fast = roi_align(f, boxes, (16, 32))
    monkeypatch.setattr(ra, "_unit_bins", lambda *a: False)
    general = roi_align(f, boxes, (16, 32))
    assert torch.equal(fast, general)
    # and the fast path really ran: the general one is not a no-op replacement
    assert not ra._unit_bins(torch.tensor([[0.5, 0, 32.5, 16]]), (16, 32))
    assert not ra._unit_bins(torch.tensor([[0, 0, 64, 32]]).float(), (16, 32))
