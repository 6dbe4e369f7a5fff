"""Downsample (baselines.md §7.2): the coarse prediction upsampled to full resolution."""

from __future__ import annotations

import numpy as np
import torch

from bench.models.coarse import upsample_probs
from bench.core.interface import Coarse, Method


class Downsample(Method):
    """Backbone on the whole image resized to the input size; probabilities upsampled bilinearly
    (align_corners=False) to the image size, then argmax. The coarse pass is the work."""

    name = "downsample"
    display_name = "Downsample"

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        if coarse is None:
            raise ValueError("downsample needs the coarse prediction")
        return upsample_probs(coarse.probs, image.shape[:2]).argmax(0)
