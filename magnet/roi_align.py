"""Pure-torch RoIAlign with torchvision's semantics (magnet.md §1.3), for one image.

MagNet crops its cumulative probability map and its uncertainty map with
``torchvision.ops.roi_align(..., spatial_scale=1, sampling_ratio=-1, aligned=False)``; torchvision's
compiled ops are not available with the CPU-only torch wheel, so this replicates them.

Per output bin ``(ph, pw)`` of a box ``(x1, y1, x2, y2)``: ``roi = max(x2 - x1, 1)`` (not aligned),
``bin = roi / out``, ``g = ceil(roi / out)`` samples per bin and axis (adaptive), sample
``y = y1 + ph * bin_h + (iy + 0.5) * bin_h / g_h``; bilinear interpolation with integer coordinates
at pixel centres, zero outside ``[-1, H]``, clamped at the border; the bin is the mean of its
samples. The arithmetic follows the reference kernel's float32 operation order.

Vectorised over boxes and bins; the only Python loops are over groups of boxes with the same
sample counts and over the ``g_h * g_w`` sample positions inside a bin. MagNet's own crops (integer
boxes exactly the output size, one sample per bin) take a gather-free path with the same float
operations, hence bit-identical results.
"""


from __future__ import annotations

import torch

_GATHER_BUDGET = 1 << 22  # elements per gathered corner tensor; bounds memory on large stage maps


def _axis_samples(start: torch.Tensor, bin_size: torch.Tensor, n_bins: int, grid: int, index: int,
                  length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample positions along one axis for sub-sample ``index`` of every bin.

    Args:
        start: (K,) float32 box starts.
        bin_size: (K,) float32 bin sizes.
        n_bins: output bins along the axis.
        grid: samples per bin along the axis (same for every box here).
        index: which sample (0..grid-1).
        length: feature size along the axis.

    Returns:
        ``(low, high, w_low, w_high, valid)``, each (K, n_bins): neighbour indices (int64),
        their weights (float32) and whether the sample lies inside ``[-1, length]``.
    """
    bins = torch.arange(n_bins, dtype=torch.float32, device=start.device)
    offset = (torch.tensor(index + 0.5, dtype=torch.float32, device=start.device) * bin_size) / float(grid)
    pos = start[:, None] + bins[None, :] * bin_size[:, None] + offset[:, None]
    valid = (pos >= -1.0) & (pos <= float(length))
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_end = low >= length - 1
    low = low.clamp(max=length - 1)
    high = torch.where(at_end, low, low + 1)
    pos = torch.where(at_end, low.to(pos.dtype), pos)
    w_high = pos - low.to(pos.dtype)
    w_low = 1.0 - w_high
    return low, high, w_low, w_high, valid


def _align_group(flat: torch.Tensor, width: int, height: int, y1: torch.Tensor, x1: torch.Tensor,
                 bin_h: torch.Tensor, bin_w: torch.Tensor, out_hw: tuple[int, int],
                 grid: tuple[int, int]) -> torch.Tensor:
    """RoIAlign of boxes that share the sample grid ``(g_h, g_w)``; returns (K, C, oh, ow)."""
    (oh, ow), (gh, gw) = out_hw, grid
    channels = flat.shape[0]
    acc = torch.zeros(channels, y1.shape[0], oh, ow, dtype=flat.dtype, device=flat.device)
    for iy in range(gh):
        ylo, yhi, wyl, wyh, vy = _axis_samples(y1, bin_h, oh, gh, iy, height)
        for ix in range(gw):
            xlo, xhi, wxl, wxh, vx = _axis_samples(x1, bin_w, ow, gw, ix, width)
            valid = (vy[:, :, None] & vx[:, None, :]).to(flat.dtype)
            terms = (
                (wyl[:, :, None] * wxl[:, None, :], ylo, xlo),
                (wyl[:, :, None] * wxh[:, None, :], ylo, xhi),
                (wyh[:, :, None] * wxl[:, None, :], yhi, xlo),
                (wyh[:, :, None] * wxh[:, None, :], yhi, xhi),
            )
            sample = _corner(flat, width, valid, *terms[0])
            for weight, rows, cols in terms[1:]:
                sample = sample + _corner(flat, width, valid, weight, rows, cols)
            acc += sample
    acc /= float(max(gh * gw, 1))
    return acc.permute(1, 0, 2, 3)


def _corner(flat: torch.Tensor, width: int, valid: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor,
            cols: torch.Tensor) -> torch.Tensor:
    """One bilinear corner of every sample: (C, K, oh, ow) = weight * valid * flat at (rows, cols).

    ``flat`` is (C, H * W); ``weight`` and ``valid`` are (K, oh, ow); ``rows`` (K, oh) and
    ``cols`` (K, ow) are int64 pixel indices.
    """
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(-1)
    return (weight * valid).unsqueeze(0) * flat.index_select(1, index).view(flat.shape[0], *weight.shape)


def _unit_bins(boxes: torch.Tensor, out_hw: tuple[int, int]) -> bool:
    """True when every box has integer corners and exactly ``out_hw`` pixels (one sample per bin)."""
    oh, ow = out_hw
    whole = bool((boxes == boxes.round()).all())
    return whole and bool(((boxes[:, 2] - boxes[:, 0]) == ow).all() and ((boxes[:, 3] - boxes[:, 1]) == oh).all())


def _align_unit_bins(features: torch.Tensor, boxes: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """RoIAlign (not aligned) of integer boxes of exactly ``out_hw`` pixels inside the map; (K, C, oh, ow).

    Each bin has one sample at the pixel corner ``(x1 + j + 0.5, y1 + i + 0.5)``: the bilinear mix of
    a 2x2 neighbourhood, read here as four shifted slices. The weights come from ``_axis_samples``
    and the terms are added in the general path's order, so the values are bit-identical. At the
    last row/column of the map the reference clamps and gives the second neighbour weight 0; that
    term (an exact +0) is skipped instead of read past the edge.
    """
    (oh, ow), (channels, height, width) = out_hw, features.shape
    one = torch.ones(1, dtype=torch.float32, device=features.device)
    out = features.new_empty(boxes.shape[0], channels, oh, ow)
    for k, (x1, y1, _, _) in enumerate(boxes.long().tolist()):
        _, _, wyl, wyh, _ = _axis_samples(torch.tensor([float(y1)], device=features.device), one, oh, 1, 0, height)
        _, _, wxl, wxh, _ = _axis_samples(torch.tensor([float(x1)], device=features.device), one, ow, 1, 0, width)
        wyl, wyh, wxl, wxh = wyl[0, :, None], wyh[0, :, None], wxl[0, None, :], wxh[0, None, :]
        nr, nc = min(oh, height - 1 - y1), min(ow, width - 1 - x1)  # rows/cols with a second neighbour
        rows, cols = slice(y1, y1 + oh), slice(x1, x1 + ow)
        rows1, cols1 = slice(y1 + 1, y1 + 1 + nr), slice(x1 + 1, x1 + 1 + nc)
        acc = out[k]
        torch.mul(wyl * wxl, features[:, rows, cols], out=acc)
        acc[:, :, :nc] += (wyl * wxh)[:, :nc] * features[:, rows, cols1]
        acc[:, :nr, :] += (wyh * wxl)[:nr] * features[:, rows1, cols]
        acc[:, :nr, :nc] += (wyh * wxh)[:nr, :nc] * features[:, rows1, cols1]
    return out


def roi_align(features: torch.Tensor, boxes: torch.Tensor, output_size: tuple[int, int],
              sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """Crop-and-resize boxes of one feature map (torchvision ``roi_align`` with spatial_scale 1).

    Args:
        features: (C, H, W) float map.
        boxes: (K, 4) ``(x1, y1, x2, y2)`` in pixels of ``features`` (any float/int dtype).
        output_size: (out_h, out_w) of each crop (torch's (h, w) order).
        sampling_ratio: samples per bin and axis; <= 0 means adaptive ``ceil(roi / out)``.
        aligned: torchvision's ``aligned`` (half-pixel shift, no minimum box size of 1).

    Returns:
        (K, C, out_h, out_w) with the dtype of ``features``.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be (C, H, W), got shape {tuple(features.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (K, 4) (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    channels, height, width = features.shape
    oh, ow = int(output_size[0]), int(output_size[1])
    if boxes.shape[0] == 0:
        return features.new_zeros(0, channels, oh, ow)
    b = boxes.to(device=features.device, dtype=torch.float32)
    inside = bool((b[:, :2] >= 0).all() and (b[:, 2] <= width).all() and (b[:, 3] <= height).all())
    if not aligned and sampling_ratio <= 1 and inside and _unit_bins(b, (oh, ow)):
        return _align_unit_bins(features, b, (oh, ow))
    offset = 0.5 if aligned else 0.0
    x1, y1 = b[:, 0] - offset, b[:, 1] - offset
    roi_w, roi_h = (b[:, 2] - offset) - x1, (b[:, 3] - offset) - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / float(ow), roi_h / float(oh)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(roi_h, float(sampling_ratio))
    else:
        grid_h, grid_w = torch.ceil(roi_h / float(oh)), torch.ceil(roi_w / float(ow))
    grids = torch.stack([grid_h, grid_w], 1).long().tolist()
    flat = features.reshape(channels, height * width)
    out = features.new_empty(b.shape[0], channels, oh, ow)
    chunk = max(1, _GATHER_BUDGET // max(1, channels * oh * ow))
    for grid in sorted(set(map(tuple, grids))):
        members = torch.tensor([i for i, g in enumerate(grids) if tuple(g) == grid], device=features.device)
        for part in members.split(chunk):
            out[part] = _align_group(flat, width, height, y1[part], x1[part], bin_h[part], bin_w[part], (oh, ow), grid)
    return out
