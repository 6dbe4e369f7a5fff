"""GLNet's patch grid and crop coordinates (``get_patch_info`` / ``global2patch`` /
``_crop_global`` / ``_merge_local`` of VITA-Group/GLNet's ``helper.py`` and model), our code.

Grid, per axis of length L with patch side p (the release: square p, both axes from p[0]):
``n`` is the smallest count with ``n * p >= L``, then raised until neighbours overlap by at least
``min_overlap`` pixels (50 in the release): ``p - (L - p) / (n - 1) >= min_overlap``. Patch i < n-1
starts at ``round(i * (L - p) / (n - 1))`` (numpy's half-to-even), the last at ``L - p``. Patches
are listed row-major (top outer, left inner), as fractions ``(top / H, left / W)``.
Deviation: ``L == p`` gives one patch (the release divides by zero there).

Crops of a global map (H, W): ``h = round(H * p_h / img_h)``, ``w`` alike, ``top = round(H * top_frac)``,
``left`` alike, as the release. Deviations that only act where the release would fail (an empty
crop, or a crop running past the map that ``torch.stack`` refuses): ``h, w >= 1`` and the box is
shifted inside the map. At the release's DeepGlobe sizes (2448 -> 508, patches 508) neither
applies (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def axis_starts(length: int, patch: int, min_overlap: float) -> list[int]:
    """Start offsets of the patches along one axis (see the module docstring).

    Raises:
        ValueError: the patch is larger than the axis or not positive, or the overlap cannot be met.
    """
    if patch < 1 or patch > length:
        raise ValueError(f"glnet patch side {patch} must be in 1..{length} (the image side)")
    if patch == length:
        return [0]
    if min_overlap >= patch:
        raise ValueError(f"glnet min_overlap {min_overlap} must be smaller than the patch side {patch}")
    n = 1
    while length > n * patch:
        n += 1
    n = max(n, 2)
    while patch - (length - patch) / (n - 1) < min_overlap:
        n += 1
    step = (length - patch) / (n - 1)
    return [int(np.round(i * step)) for i in range(n - 1)] + [length - patch]


@dataclass(frozen=True)
class PatchGrid:
    """The patches of one image.

    Attributes:
        image_hw: (H, W) of the full-resolution image.
        patch_hw: (h, w) of a patch.
        boxes: (top, left) pixel offsets, row-major.
    """

    image_hw: tuple[int, int]
    patch_hw: tuple[int, int]
    boxes: tuple[tuple[int, int], ...]

    @property
    def top_lefts(self) -> list[tuple[float, float]]:
        """(top / H, left / W) per patch: the release's ``coordinates``."""
        H, W = self.image_hw
        return [(t / H, left / W) for t, left in self.boxes]

    @property
    def ratio(self) -> tuple[float, float]:
        """(p_h / H, p_w / W): the release's ``ratios``."""
        return self.patch_hw[0] / self.image_hw[0], self.patch_hw[1] / self.image_hw[1]

    def template(self) -> torch.Tensor:
        """(1, 1, H, W) float32: how many patches cover each pixel."""
        t = torch.zeros(1, 1, *self.image_hw)
        h, w = self.patch_hw
        for top, left in self.boxes:
            t[..., top:top + h, left:left + w] += 1
        return t

    def crop(self, image: np.ndarray, index: int) -> np.ndarray:
        top, left = self.boxes[index]
        return image[top:top + self.patch_hw[0], left:left + self.patch_hw[1]]


def patch_grid(image_hw: Sequence[int], patch_hw: Sequence[int], min_overlap: float = 50) -> PatchGrid:
    """The release's ``global2patch`` geometry for one image (pixels, (h, w) order)."""
    H, W = int(image_hw[0]), int(image_hw[1])
    ph, pw = int(patch_hw[0]), int(patch_hw[1])
    tops = axis_starts(H, ph, min_overlap)
    lefts = axis_starts(W, pw, min_overlap)
    return PatchGrid((H, W), (ph, pw), tuple((t, left) for t in tops for left in lefts))


def feature_box(map_hw: Sequence[int], top_left: tuple[float, float], ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """(top, left, h, w) of one patch's crop of a (H, W) global map (see the module docstring)."""
    H, W = int(map_hw[0]), int(map_hw[1])
    h = min(H, max(1, int(np.round(H * ratio[0]))))
    w = min(W, max(1, int(np.round(W * ratio[1]))))
    top = min(int(np.round(top_left[0] * H)), H - h)
    left = min(int(np.round(top_left[1] * W)), W - w)
    return top, left, h, w


def release_box(map_hw: Sequence[int], top_left: tuple[float, float], ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """The release's own (top, left, h, w), without our guards (for tests)."""
    H, W = int(map_hw[0]), int(map_hw[1])
    return (int(np.round(top_left[0] * H)), int(np.round(top_left[1] * W)),
            int(np.round(H * ratio[0])), int(np.round(W * ratio[1])))
