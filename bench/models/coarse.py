"""The coarse pass shared by every refiner: the backbone on the whole image, downsampled.

MagNet's stage 1 and the paper's "Downsample" baseline: ``cv2.resize`` (INTER_LINEAR) of the
uint8 image to the input size (through ``first_scale`` first when the dataset's first scale
differs from the input size, the two-step resize of DeepGlobe 2448 -> 612 -> 508), ImageNet
normalisation, one backbone forward, softmax over classes.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.core.interface import Coarse, normalize


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (size[1], size[0], 3) uint8 with INTER_LINEAR; no copy when equal."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_LINEAR)


@torch.inference_mode()
def compute_coarse(backbone: torch.nn.Module, image: np.ndarray, input_size: tuple[int, int],
                   device: torch.device, first_scale: tuple[int, int] | None = None) -> Coarse:
    """Coarse probabilities (C, h, w) float32 at ``input_size`` (w, h), on ``device``."""
    small = resize_image(image, first_scale) if first_scale else image
    small = resize_image(small, input_size)
    logits = backbone(normalize(small, device))
    return Coarse(F.softmax(logits.float(), dim=1)[0])


def upsample_probs(probs: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) -> (C, H, W) bilinear, align_corners=False (MagNet's final upsampling)."""
    if tuple(probs.shape[-2:]) == tuple(size_hw):
        return probs
    return F.interpolate(probs[None], size=size_hw, mode="bilinear", align_corners=False)[0]


def upsampled_labels(probs: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) probabilities -> (H, W) int64 argmax of their float32 bilinear upsampling
    (align_corners=False): the Downsample labels the label-refining baselines start from."""
    return upsample_probs(probs.float(), size_hw).argmax(0)
