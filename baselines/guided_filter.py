"""Training-free guided filter with a grey-image guide ("GF (gray guide)"); this is NOT DGF.

Each class-probability map, upsampled bilinearly (align_corners=False, as MagNet upsamples its
coarse maps) to the image size, is filtered by He's guided filter with the grey image in [0, 1]
as guide (OpenCV contrib ``cv2.ximgproc``: normalised box with BORDER_REFLECT), then argmax.
Because the guide is float32 in [0, 1], ``eps`` is in [0, 1]-guide units (no 255^2 factor).

The defaults are our choice, not a paper's: r = 8 (the coarse-to-full scale factor of the
Cityscapes 256x128 -> 2048x1024 and synthetic 128x64 -> 1024x512 setups, so an edge can move by
about one coarse pixel) and eps = 1e-2 (DGF's value; edges whose grey contrast has a standard
deviation above 0.1 are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from baselines.common.gf_ops import check_inputs, upsample_probs
from bench.core.interface import Coarse, Method, MethodContext


@dataclass(frozen=True)
class GuidedFilterGrayConfig:
    """Options of :class:`GuidedFilterGray`.

    Attributes:
        radius: box radius in full-resolution pixels (window 2r+1).
        eps: regulariser in squared [0, 1]-grey units.
    """

    radius: int = 8
    eps: float = 1e-2

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise ValueError(f"radius must be >= 1, got {self.radius}")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")


def gray_guide(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 grey in [0, 1] (ITU-R 601 weights, not quantised)."""
    return cv2.cvtColor(image.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2GRAY)


def filter_probs(guide: np.ndarray, probs: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Guided-filter every class map with one single-channel guide.

    Args:
        guide: (H, W) float32 guide.
        probs: (C, H, W) float32 maps.
        radius: box radius in pixels.
        eps: regulariser in squared guide units.

    Returns:
        (C, H, W) float32 filtered maps.
    """
    gf = cv2.ximgproc.createGuidedFilter(guide, radius, eps)
    out = np.empty_like(probs, dtype=np.float32)
    for k in range(probs.shape[0]):  # C iterations; the guide statistics are computed once above
        out[k] = gf.filter(np.ascontiguousarray(probs[k], dtype=np.float32))
    return out


class GuidedFilterGray(Method):
    """He's guided filter on the upsampled coarse probabilities, grey-image guide, no training."""

    name = "guided_filter"
    display_name = "GF (gray guide)"
    version = 1
    uses_coarse = True
    needs_backbone = True
    # OpenCV's filter runs on the CPU; on a CUDA context the maps make a host round trip.
    cpu_only = True
    Config = GuidedFilterGrayConfig

    def __init__(self, cfg: GuidedFilterGrayConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        if not hasattr(cv2, "ximgproc"):
            raise RuntimeError(
                "cv2.ximgproc is missing: the OpenCV build lacks contrib; "
                "pip install opencv-contrib-python-headless (same version as opencv-python)"
            )

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            coarse: (C, h, w) probabilities.

        Returns:
            (H, W) int64 labels on ``ctx.device``.
        """
        coarse = check_inputs(image, coarse, self.ctx.num_classes)
        probs = upsample_probs(coarse.probs, image.shape[:2])
        filtered = filter_probs(gray_guide(image), probs, self.cfg.radius, self.cfg.eps)
        return torch.from_numpy(filtered.argmax(0).astype(np.int64)).to(self.device)
