"""Patching (baselines.md §7.3): the backbone on input-size tiles of the full-resolution image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.models.coarse import resize_image, upsample_probs
from bench.core.interface import Coarse, Method, normalize
from bench.core.patches import patch_grid


@dataclass(frozen=True)
class PatchingConfig:
    """Options.

    Attributes:
        scale: (w, h) the image is resized to before tiling; None = full resolution.
        crop_size: (w, h) tile size at ``scale``; None = the input size (as in MagNet).
        batch_size: tiles per backbone forward, the declared batch setting (``batch_option``;
            ``bench.core.batch``). 1 by default, so that time and memory compare with the other
            rows at batch 1; the labels at 1 and 16 are identical on CPU (tests/test_batch.py),
            time and peak memory are not.
        stitch: ``average`` (overlaps averaged) or ``assign`` (later tiles overwrite, as MagNet's
            ``ensemble``); identical when tiles do not overlap.
    """

    scale: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = None
    batch_size: int = 1
    stitch: str = "average"

    batch_option: ClassVar[str] = "batch_size"


class Patching(Method):
    """Tiles at ``scale`` resized to the input size, softmax, resized back, stitched, argmax."""

    name = "patching"
    display_name = "Patching"
    uses_coarse = False
    Config = PatchingConfig

    def __init__(self, cfg: PatchingConfig, ctx) -> None:  # noqa: ANN001 - MethodContext
        super().__init__(cfg, ctx)
        if cfg.stitch not in ("average", "assign"):
            raise ValueError(f"patching.stitch must be 'average' or 'assign', got {cfg.stitch!r}")
        self.backbone = ctx.backbone

    @torch.inference_mode()
    def _predict(self, tiles: list[np.ndarray]) -> torch.Tensor:
        w, h = self.ctx.input_size
        outs = []
        for i in range(0, len(tiles), self.cfg.batch_size):
            batch = np.stack([resize_image(t, (w, h)) for t in tiles[i:i + self.cfg.batch_size]])
            outs.append(F.softmax(self.backbone(normalize(batch, self.device)).float(), dim=1))
        return torch.cat(outs)

    @torch.inference_mode()
    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        height, width = image.shape[:2]
        scale = tuple(self.cfg.scale or (width, height))
        crop = tuple(self.cfg.crop_size or self.ctx.input_size)
        scaled = resize_image(image, scale)
        boxes = patch_grid(scale, crop)
        probs = self._predict([scaled[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes])
        canvas = torch.zeros(probs.shape[1], scale[1], scale[0], device=self.device)
        count = torch.zeros(1, scale[1], scale[0], device=self.device)
        tile = F.interpolate(probs, size=(crop[1], crop[0]), mode="bilinear", align_corners=False)
        for (x0, y0, x1, y1), p in zip(boxes, tile):
            if self.cfg.stitch == "assign":
                canvas[:, y0:y1, x0:x1] = p
                count[:, y0:y1, x0:x1] = 1
            else:
                canvas[:, y0:y1, x0:x1] += p
                count[:, y0:y1, x0:x1] += 1
        canvas /= count
        return upsample_probs(canvas, (height, width)).argmax(0)
