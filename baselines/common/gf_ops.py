"""Guided-filter maths in torch, as the Deep Guided Filter (Wu et al., CVPR 2018) defines it.

Shapes follow PyTorch: (N, C, H, W) float tensors. The box mean is over the in-image pixels of a
(2r+1) x (2r+1) window (the window is truncated at the border and divided by the number of
pixels it covers), exactly DGF's ``BoxFilter(x) / BoxFilter(ones)``. The filter is the
per-channel guided filter of He et al.: channel k of the signal is guided by channel k of the
guide (or by the single guide channel), never the 3x3-covariance colour filter.

Two implementations of the filter give the same numbers (max |diff| ~2e-7 in float32):

- the differentiable one (:func:`box_mean` by depthwise convolutions), used for training and on
  CUDA;
- a CPU inference kernel (:func:`_guided_filter_cpu`), used when no gradient is needed: every
  (image, channel) plane is filtered on its own, so the dozen intermediate maps of one plane
  (2 MiB each at 1024x512) stay in cache, planes run on ``torch.get_num_threads()`` threads,
  and the box sums are OpenCV's running sums (``cv2.boxFilter``, which accumulates float32
  input in float64: O(1) per pixel and no cancellation, unlike a float32 cumulative sum). On 19
  channels at 1024x512 it is about 15x faster than the DGF authors' ``guided-filter-pytorch``
  (``python -m perf``).

It also holds the input checks and the coarse upsampling shared by the CPU post-processing
baselines (DenseCRF, grey-guide GF).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.models.coarse import upsample_probs as coarse_upsample
from bench.core.interface import Coarse


def _window_counts(n: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """(n,) number of in-image positions in the 1-D window of radius r around each position."""
    pos = torch.arange(n, device=like.device)
    return ((pos + r).clamp(max=n - 1) - (pos - r).clamp(min=0) + 1).to(like.dtype)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the in-image part of the (2r+1)^2 window around each pixel.

    This is DGF's ``BoxFilter(x) / BoxFilter(ones)``: a window sum with zeros outside the image,
    divided by the number of in-image pixels it covers. The sum is two 1-D depthwise
    convolutions (no long cumulative sum, so no float32 cancellation), which on the CPU is also
    the fastest of the forms we timed on 256x256 training crops.

    Args:
        x: (N, C, H, W) float tensor.
        r: window radius in pixels, >= 0.

    Returns:
        (N, C, H, W) box means, same dtype and device as ``x``.
    """
    if r < 0:
        raise ValueError(f"box radius must be >= 0, got {r}")
    if x.dim() != 4:
        raise ValueError(f"box_mean expects (N, C, H, W), got shape {tuple(x.shape)}")
    if r == 0:
        return x
    channels, k = x.shape[1], 2 * r + 1
    column = x.new_ones(channels, 1, k, 1)
    row = x.new_ones(channels, 1, 1, k)
    total = F.conv2d(F.conv2d(x, column, padding=(r, 0), groups=channels), row, padding=(0, r), groups=channels)
    count = _window_counts(x.shape[-2], r, x)[:, None] * _window_counts(x.shape[-1], r, x)[None, :]
    return total / count


def _check_pair(guide: torch.Tensor, src: torch.Tensor) -> None:
    if guide.dim() != 4 or src.dim() != 4:
        raise ValueError(f"guide and src must be (N, C, H, W); got {tuple(guide.shape)} and {tuple(src.shape)}")
    if guide.shape[0] != src.shape[0] or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and src {tuple(src.shape)} differ in batch or size")
    if guide.shape[1] not in (1, src.shape[1]):
        raise ValueError(f"guide must have 1 or {src.shape[1]} channels (one per src channel), got {guide.shape[1]}")


def guided_filter_coeffs(
    guide: torch.Tensor, src: torch.Tensor, r: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window linear coefficients ``a, b`` (before their own box averaging).

    ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a * mean(I)`` over each window.

    Args:
        guide: (N, 1 or C, H, W) guide I.
        src: (N, C, H, W) signal p.
        r: window radius in pixels.
        eps: regulariser, in squared guide units.

    Returns:
        ``(a, b)``, each (N, C, H, W).
    """
    _check_pair(guide, src)
    mean_i = box_mean(guide, r)
    mean_p = box_mean(src, r)
    cov_ip = box_mean(guide * src, r) - mean_i * mean_p
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return a, b


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He's guided filter, per channel: ``q = mean(a) * I + mean(b)``.

    Args:
        guide: (N, 1 or C, H, W) guide I.
        src: (N, C, H, W) signal p.
        r: window radius in pixels.
        eps: regulariser, in squared guide units.

    Returns:
        (N, C, H, W) filtered signal.
    """
    if _use_cpu_kernel(guide, src):
        _check_pair(guide, src)
        return _guided_filter_cpu(guide, src, r, eps)
    a, b = guided_filter_coeffs(guide, src, r, eps)
    return box_mean(a, r) * guide + box_mean(b, r)


# The CPU inference kernel (no autograd) is used for float32 CPU tensors when no gradient flows;
# set False to time or test the convolution path on the same inputs (``python -m perf``).
USE_CPU_KERNEL = True


def _use_cpu_kernel(guide: torch.Tensor, src: torch.Tensor) -> bool:
    needs_grad = torch.is_grad_enabled() and (guide.requires_grad or src.requires_grad)
    return (USE_CPU_KERNEL and not needs_grad and guide.device.type == "cpu" and src.device.type == "cpu"
            and guide.dtype == torch.float32 and src.dtype == torch.float32 and guide.dim() == 4 and src.dim() == 4)


def _box_sum(x: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    """(H, W) float32 sum over the in-image part of the k x k window (zeros outside), into ``out``."""
    return cv2.boxFilter(x, -1, (k, k), dst=out, normalize=False, borderType=cv2.BORDER_CONSTANT)


def _plane(guide: np.ndarray, src: np.ndarray, out: np.ndarray, inv_count: np.ndarray, k: int, eps: float) -> None:
    """He's guided filter of one (H, W) float32 plane into ``out``, in place where it can be.

    Same formulas and order as :func:`guided_filter_coeffs` / :func:`guided_filter`; four
    scratch planes are enough.
    """
    t1, t2, mean_i, mean_p = (np.empty_like(src) for _ in range(4))
    _box_sum(guide, k, mean_i)
    mean_i *= inv_count
    _box_sum(src, k, mean_p)
    mean_p *= inv_count
    np.multiply(guide, src, out=t1)
    _box_sum(t1, k, t2)
    t2 *= inv_count
    t2 -= np.multiply(mean_i, mean_p, out=t1)  # cov(I, p)
    np.multiply(guide, guide, out=t1)
    _box_sum(t1, k, out)
    out *= inv_count
    out -= np.multiply(mean_i, mean_i, out=t1)  # var(I)
    out += eps
    a = np.divide(t2, out, out=t2)
    b = np.subtract(mean_p, np.multiply(a, mean_i, out=mean_i), out=mean_p)
    _box_sum(a, k, t1)
    t1 *= inv_count
    t1 *= guide
    _box_sum(b, k, out)
    out *= inv_count
    out += t1


def _guided_filter_cpu(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """:func:`guided_filter` for float32 CPU tensors without autograd: (N, C, H, W) float32."""
    if r < 0:
        raise ValueError(f"box radius must be >= 0, got {r}")
    g = guide.detach().contiguous().numpy()
    p = src.detach().contiguous().numpy()
    out = np.empty_like(p)
    n, c, h, w = p.shape
    counts = _window_counts(h, r, src)[:, None] * _window_counts(w, r, src)[None, :]
    inv_count = (1.0 / counts).numpy().astype(np.float32)
    planes = [(g[i, j if g.shape[1] > 1 else 0], p[i, j], out[i, j]) for i in range(n) for j in range(c)]

    def run(plane: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        _plane(*plane, inv_count, 2 * r + 1, eps)

    workers = min(torch.get_num_threads(), len(planes))
    if workers > 1:  # OpenCV and numpy release the GIL: planes run in parallel
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, planes))
    else:
        for plane in planes:
            run(plane)
    return torch.from_numpy(out)


def fast_guided_filter(
    guide_lr: torch.Tensor, src_lr: torch.Tensor, guide_hr: torch.Tensor, r: int, eps: float
) -> torch.Tensor:
    """DGF's fast guided filter: ``a, b`` at low resolution, upsampled, applied to the full guide.

    As in DGF's ``FastGuidedFilter`` (and unlike He's fast filter), ``a`` and ``b`` are *not* box
    averaged before the bilinear (align_corners=True) upsampling.

    Args:
        guide_lr: (N, 1 or C, h, w) low-resolution guide.
        src_lr: (N, C, h, w) low-resolution signal.
        guide_hr: (N, 1 or C, H, W) full-resolution guide, same channels as ``guide_lr``.
        r: window radius in low-resolution pixels.
        eps: regulariser, in squared guide units.

    Returns:
        (N, C, H, W) filtered signal.
    """
    if guide_hr.dim() != 4 or guide_hr.shape[:2] != guide_lr.shape[:2]:
        raise ValueError(f"guide_hr {tuple(guide_hr.shape)} must match guide_lr {tuple(guide_lr.shape)} in N and C")
    a, b = guided_filter_coeffs(guide_lr, src_lr, r, eps)
    size = guide_hr.shape[-2:]
    a_hr = F.interpolate(a, size=size, mode="bilinear", align_corners=True)
    b_hr = F.interpolate(b, size=size, mode="bilinear", align_corners=True)
    return a_hr * guide_hr + b_hr


def _interp_matrix(
    n_in: int, n_out: int, start: int, length: int, align_corners: bool, like: torch.Tensor
) -> torch.Tensor:
    """(length, n_in) 1-D bilinear weights of output positions ``start..start+length-1``."""
    pos = torch.arange(start, start + length, device=like.device, dtype=torch.float64)
    if align_corners:
        src = pos * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(pos)
    else:
        # PyTorch's half-pixel mapping, negative coordinates clamped to 0.
        src = ((pos + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    weights = torch.zeros(length, n_in, device=like.device, dtype=torch.float64)
    rows = torch.arange(length, device=like.device)
    weights.index_put_((rows, i0), 1 - frac, accumulate=True)
    weights.index_put_((rows, i1), frac, accumulate=True)
    return weights.to(like.dtype)


def resize_bilinear_region(
    x: torch.Tensor, size: tuple[int, int], box: tuple[int, int, int, int], align_corners: bool
) -> torch.Tensor:
    """A window of ``F.interpolate(x, size, mode="bilinear")`` without computing the whole map.

    Written as two small matrix products (rows, then columns), whose backward pass is also a
    matrix product: training crops of upsampled maps stay cheap even when gradients flow.

    Args:
        x: (N, C, h, w) float tensor.
        size: (H, W) of the full upsampled map.
        box: (top, left, height, width) of the window, inside (H, W).
        align_corners: as in ``F.interpolate``.

    Returns:
        (N, C, height, width): equal to ``F.interpolate(...)[..., top:top+height, left:left+width]``
        up to float32 rounding.
    """
    top, left, height, width = box
    big_h, big_w = size
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > big_h or left + width > big_w:
        raise ValueError(f"box {box} is not inside the output size {size}")
    rows = _interp_matrix(x.shape[-2], big_h, top, height, align_corners, x)
    cols = _interp_matrix(x.shape[-1], big_w, left, width, align_corners, x)
    return rows @ x @ cols.T


def check_inputs(image: np.ndarray, coarse: Coarse | None, num_classes: int) -> Coarse:
    """Raise a clear error unless ``image`` is (H, W, 3) uint8 and ``coarse`` has C channels.

    Returns:
        ``coarse``, now known to be there.

    Raises:
        ValueError: wrong image shape/dtype, missing coarse, or wrong class count.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '?')} {getattr(image, 'dtype', '?')}"
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB numpy array, got {got}")
    if coarse is None:
        raise ValueError("this method refines the coarse prediction: coarse must not be None")
    if coarse.probs.dim() != 3 or coarse.probs.shape[0] != num_classes:
        raise ValueError(f"coarse.probs must be (C={num_classes}, h, w), got {tuple(coarse.probs.shape)}")
    return coarse


def upsample_probs(probs: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) probabilities -> (C, H, W) float32 numpy on the CPU, bilinear, align_corners=False (MagNet)."""
    return coarse_upsample(probs.detach().float().cpu(), size).numpy()
