"""Scales, patch grids and the pasting of refined patches (magnet.md §1.1 and §1.4).

Sizes are (w, h) like the MagNet scripts; tensors are (C, H, W). Boxes are integer pixel boxes
``(x1, y1, x2, y2)`` at a stage's scale; the released code stores them as ratios of the scale and
multiplies back, which gives the same integers for every official grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.patches import patch_grid
from magnet.scoring import margin

Size = tuple[int, int]


def derive_scales(crop: Size, image_size: Size) -> tuple[Size, ...]:
    """Scales from the crop size doubling up to the image size (the last scale is the image size).

    Cityscapes: crop 256x128, image 2048x1024 -> 256x128, 512x256, 1024x512, 2048x1024.
    """
    (cw, ch), (iw, ih) = crop, image_size
    if cw > iw or ch > ih or min(cw, ch) < 1:
        raise ValueError(f"crop size {crop} must be positive and fit in the image size {image_size}")
    scales = [(cw, ch)]
    while scales[-1] != (iw, ih):
        w, h = scales[-1]
        scales.append((min(2 * w, iw), min(2 * h, ih)))
    return tuple(scales)


def patch_boxes(scale: Size, crop: Size, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, 4) int64 pixel boxes of the patch grid at ``scale``, x outer and y inner (MagNet's order)."""
    (w, h), (cw, ch) = scale, crop  # as tuples whatever sequence came in (patch_grid's messages print them)
    return torch.tensor(patch_grid((w, h), (cw, ch)), dtype=torch.int64, device=device).view(-1, 4)


def patch_ratios(scale: Size, crop: Size) -> torch.Tensor:
    """(K, 4) float64 boxes as ratios of ``scale`` (how the released code stores them)."""
    w, h = scale
    return patch_boxes(scale, crop).double() / torch.tensor([w, h, w, h], dtype=torch.float64)


def grid_overlaps(scale: Size, crop: Size) -> bool:
    """Whether the grid's patches overlap (never for the official configs; pasting then assigns)."""
    (w, h), (cw, ch) = scale, crop
    boxes = patch_grid((w, h), (cw, ch))
    area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes)
    return area != scale[0] * scale[1]


class Paster:
    """Pastes refined patches into a zero canvas at a stage's scale (the released ``ensemble``).

    Each patch is resized bilinearly (align_corners=False) to the box size of the **first** box
    pasted (rounded) and written by assignment, so a later patch overwrites an earlier one. A
    counter is incremented on every box shrunk by ``inset`` pixels per side; ``finish`` divides
    the canvas by ``max(counter, 1)`` and returns ``mask = counter > 0``. Pixels outside every
    pasted patch stay zero (margin 0).

    Args:
        channels: C.
        scale: (w, h) of the canvas.
        inset: pixels removed from each side of a box for the coverage mask.
        device: canvas device.
    """

    def __init__(self, channels: int, scale: Size, inset: int, device: torch.device | str,
                 dense: bool = True) -> None:
        w, h = scale
        # Fast mode pastes a few patches: its canvas is read only inside them (``certainty`` and
        # the points, which stay inside the mask), so it need not be zero-filled.
        self.canvas = (torch.zeros if dense else torch.empty)(channels, h, w, device=device)
        self.count = torch.zeros(h, w, device=device)
        self.inset = inset
        self.dense = dense
        self.box_hw: tuple[int, int] | None = None
        self.corners: dict[tuple[int, int], None] = {}  # (y1, x1) of every pasted patch, in order

    def add(self, patches: torch.Tensor, boxes: torch.Tensor) -> None:
        """Paste (b, C, nh, nw) patches at (b, 4) integer boxes, in order."""
        if self.box_hw is None:
            x1, y1, x2, y2 = boxes[0].tolist()
            self.box_hw = (round(y2 - y1), round(x2 - x1))
        if tuple(patches.shape[-2:]) != self.box_hw:
            patches = F.interpolate(patches, size=self.box_hw, mode="bilinear", align_corners=False)
        bh, bw, m = *self.box_hw, self.inset
        for patch, (x1, y1, x2, y2) in zip(patches, boxes.tolist()):
            self.canvas[:, y1:y1 + bh, x1:x1 + bw] = patch
            self.count[y1 + m:y2 - m, x1 + m:x2 - m] += 1
            self.corners[(y1, x1)] = None

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(canvas (C, H, W) float32, mask (H, W) bool)``; outside the pasted patches the canvas
        is 0 when ``dense`` and undefined otherwise."""
        if bool((self.count > 1).any()):  # overlapping boxes only; dividing by 1 would change nothing
            self.canvas /= self.count.clamp(min=1)
        return self.canvas, self.count > 0

    def certainty(self) -> torch.Tensor:
        """(H, W) top-two margin of the finished canvas: 0 outside the pasted patches.

        The margin is per pixel, so computing it only inside the patches gives the same values as
        on the zero-filled canvas, at the cost of the patches instead of the whole map.
        """
        if self.dense:
            return margin(self.canvas)
        cert = torch.zeros(self.canvas.shape[1:], device=self.canvas.device)
        if self.box_hw is not None:
            bh, bw = self.box_hw
            for y1, x1 in self.corners:
                cert[y1:y1 + bh, x1:x1 + bw] = margin(self.canvas[:, y1:y1 + bh, x1:x1 + bw])
        return cert
