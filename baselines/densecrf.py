"""DenseCRF baseline: the fully connected CRF of Krähenbühl & Koltun (2011) through pydensecrf.

The coarse probabilities (C, h, w) are upsampled bilinearly (align_corners=False, as MagNet does)
to the image size, turned into unaries ``-log(clip(P, 1e-5, 1))`` and refined by mean-field
inference with a bilateral (appearance) term and, optionally, a Gaussian (smoothness) term. The
defaults are the MagNet supplement's values (50 steps, bilateral sxy 256, srgb 13, compat 1,
Gaussian term off), which the specs mark as unverified; every value is in the config.

Hard labels (``label_confidence``). A coarse map given as a file arrives one-hot (the refinement
track): its unary ``-log(clip(1, ...))`` = 0 against ``-log(1e-5)`` ~ 11.5 is so confident that
mean-field never moves it. With ``label_confidence`` set, an exactly one-hot coarse map is first
softened the way pydensecrf's ``unary_from_labels(labels, C, gt_prob, zero_unsure=False)`` reads
hard labels: p = ``label_confidence`` on the given label, (1 - ``label_confidence``) / (C - 1)
elsewhere. Soft maps (the backbone's) are never changed, and None (the default) changes nothing.

pydensecrf is single-threaded C++ and CPU-only. With these values, 19 classes and 50 steps it took
about 4.5 s of CPU per 1024x512 image and about 20 s per 2048x1024 image on this 2-core machine
(a Cityscapes frame; the bilateral lattice, hence the cost, grows as sxy shrinks: pydensecrf's
example values sxy 80 + a Gaussian term took about 35 s at 1024x512).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydensecrf.densecrf as dcrf
import torch
from pydensecrf.utils import unary_from_softmax

from baselines.common.gf_ops import check_inputs, upsample_probs
from bench.core.interface import Coarse, Method


@dataclass(frozen=True)
class DenseCRFConfig:
    """Options of :class:`DenseCRF`.

    Attributes:
        n_iters: mean-field steps.
        bilateral_sxy: spatial standard deviation of the bilateral kernel, in pixels.
        bilateral_srgb: colour standard deviation of the bilateral kernel, in uint8 RGB units.
        bilateral_compat: Potts weight of the bilateral term.
        gaussian: add the Gaussian (smoothness-only) term.
        gaussian_sxy: its spatial standard deviation, in pixels (pydensecrf example: 3).
        gaussian_compat: its Potts weight (pydensecrf example: 3).
        unary_clip: probabilities are clipped to [unary_clip, 1] before the log.
        label_confidence: None (default) or the probability given to the label of an exactly
            one-hot coarse map, the rest shared equally by the other classes (pydensecrf's
            ``gt_prob``; see the module docstring). In (0, 1).
    """

    n_iters: int = 50
    bilateral_sxy: float = 256.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 1.0
    gaussian: bool = False
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    unary_clip: float = 1e-5
    label_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.n_iters < 0:
            raise ValueError(f"n_iters must be >= 0, got {self.n_iters}")
        if min(self.bilateral_sxy, self.bilateral_srgb, self.gaussian_sxy) <= 0:
            raise ValueError("kernel standard deviations (bilateral_sxy, bilateral_srgb, gaussian_sxy) must be > 0")
        if not 0 < self.unary_clip < 1:
            raise ValueError(f"unary_clip must be in (0, 1), got {self.unary_clip}")
        if self.label_confidence is not None and not 0 < self.label_confidence < 1:
            raise ValueError(f"label_confidence must be None or in (0, 1), got {self.label_confidence}")


def soften_labels(probs: torch.Tensor, confidence: float) -> torch.Tensor:
    """An exactly one-hot (C, h, w) map -> ``confidence`` on its label and
    ``(1 - confidence) / (C - 1)`` on every other class (float32, same shape); any other map is
    returned as it is (the same tensor)."""
    num_classes = probs.shape[0]
    binary = bool(((probs == 0) | (probs == 1)).all())
    if num_classes < 2 or not binary or not bool((probs.sum(0) == 1).all()):
        return probs
    rest = (1 - confidence) / (num_classes - 1)
    return torch.where(probs == 1, confidence, rest).to(torch.float32)


def crf_marginals(image: np.ndarray, probs: np.ndarray, cfg: DenseCRFConfig) -> np.ndarray:
    """Mean-field marginals Q of the dense CRF.

    The inputs are copied into the C-contiguous float32 / uint8 buffers pydensecrf needs, so a
    flipped view or a float64 array works instead of raising pydensecrf's misleading
    "ndarray is not C-contiguous".

    Args:
        image: (H, W, 3) uint8 RGB.
        probs: (C, H, W) class probabilities at the image's resolution.
        cfg: CRF options.

    Returns:
        (C, H, W) float32 marginals.
    """
    num_classes, height, width = probs.shape
    unary = unary_from_softmax(np.asarray(probs, dtype=np.float32), clip=cfg.unary_clip)
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    if cfg.gaussian:
        crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb, rgbim=rgb, compat=cfg.bilateral_compat)
    return np.asarray(crf.inference(cfg.n_iters), dtype=np.float32).reshape(num_classes, height, width)


class DenseCRF(Method):
    """Fully connected CRF on the upsampled coarse probabilities (CPU only)."""

    name = "densecrf"
    display_name = "DenseCRF"
    version = 1
    uses_coarse = True
    needs_backbone = True
    cpu_only = True
    Config = DenseCRFConfig

    def refine(self, image: np.ndarray, coarse: Coarse | None) -> torch.Tensor:
        """Refine one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            coarse: (C, h, w) probabilities.

        Returns:
            (H, W) int64 labels on ``ctx.device``.
        """
        coarse = check_inputs(image, coarse, self.ctx.num_classes)
        if self.cfg.label_confidence is not None:
            # softening is affine, so it commutes with the bilinear upsampling below
            coarse = Coarse(soften_labels(coarse.probs, self.cfg.label_confidence))
        probs = upsample_probs(coarse.probs, image.shape[:2])
        q = crf_marginals(image, probs, self.cfg)
        return torch.from_numpy(q.argmax(0).astype(np.int64)).to(self.device)
