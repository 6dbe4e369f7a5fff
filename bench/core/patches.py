"""Patch grids as MagNet lays them out (magnet.md §1.1, baselines.md §7.3)."""

from __future__ import annotations

import math


def axis_starts(length: int, crop: int) -> list[int]:
    """Evenly spread crop starts: ``n = ceil(L / c)``, ``step = int(c - (n c - L) / max(n - 1, 1))``."""
    n = math.ceil(length / crop)
    step = int(crop - (n * crop - length) / max(n - 1, 1))
    return [k * step for k in range(n)]


def patch_grid(size: tuple[int, int], crop: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` in pixels covering an image of ``size`` (w, h) with ``crop`` (w, h).

    Order is x outer, y inner (down the first column, then right), as in MagNet. The grid tiles
    exactly when the size is a multiple of the crop and overlaps evenly otherwise.
    """
    (width, height), (cw, ch) = size, crop
    if cw > width or ch > height:
        raise ValueError(f"crop {crop} is larger than the image {size}")
    return [(x, y, x + cw, y + ch) for x in axis_starts(width, cw) for y in axis_starts(height, ch)]
