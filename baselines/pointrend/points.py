"""PointRend point selection and subdivision inference around mmseg's ``PointHead`` (spec §5.3).

The point selection itself (``get_points_train`` / ``get_points_test``), the uncertainty
(``calculate_uncertainty``: top2 - top1 of the *logits*) and the subdivision loop with its
scatter (``PointHead.predict``) are mmseg's; this module only adapts the harness's sizes to them:

- how many subdivision steps: ``ceil(log2(max(H / h, W / w)))``, i.e. x2 upsampling from the
  coarse grid until it is at least the image size (a stride-4 head at Cityscapes gives 2, the
  spec's value; our stride-1 coarse map at 1/8 of the image gives 3);
- how many points per step: the paper's 8192 at 1024x2048, scaled with the image area;
- the final bilinear resize to exactly (H, W) (``predict_by_feat``), an identity when the last
  grid is already the image size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # mmseg ships no type information (Any to mypy); names the head's class
    from mmseg.models.decode_heads.point_head import PointHead


def subdivision_steps(coarse_hw: tuple[int, int], image_hw: tuple[int, int]) -> int:
    """Number of x2 subdivision steps from the coarse grid to the image grid.

    Args:
        coarse_hw: (h, w) of the coarse logits.
        image_hw: (H, W) of the full-resolution image.

    Returns:
        ``ceil(log2(max(H / h, W / w)))`` (0 when the coarse map is already full size): the
        smallest number of doublings whose grid covers the image in both directions.
    """
    ratio = max(image_hw[0] / coarse_hw[0], image_hw[1] / coarse_hw[1])
    if ratio <= 1.0:
        return 0
    # The small tolerance keeps exact powers of two (ratio 8 -> 3) from rounding up.
    return max(0, math.ceil(math.log2(ratio) - 1e-9))


def points_per_step(base_points: int, image_hw: tuple[int, int], reference_hw: tuple[int, int]) -> int:
    """Subdivision points per step, scaled with the image area.

    Args:
        base_points: points at the reference size (8192 for 1024x2048, spec §5.1).
        image_hw: (H, W) of the image.
        reference_hw: (H, W) the paper's count refers to, (1024, 2048).

    Returns:
        ``round(base_points * H * W / (Hr * Wr))``, at least 1.
    """
    scale = (image_hw[0] * image_hw[1]) / (reference_hw[0] * reference_hw[1])
    return max(1, int(round(base_points * scale)))


def subdivide(
    head: PointHead,
    fine: torch.Tensor,
    coarse_logits: torch.Tensor,
    steps: int,
    num_points: int,
    out_hw: tuple[int, int],
) -> torch.Tensor:
    """Subdivision inference with mmseg's ``PointHead.predict``.

    Per step: logits x2 (bilinear, align_corners=False); the ``num_points`` most uncertain cells
    (top2 - top1 of the logits); their cell-centre coordinates ``((i % W) + 0.5) / W``,
    ``((i // W) + 0.5) / H``; fine features sampled there and coarse features sampled from the
    *original* coarse logits; MLP; scatter into those cells. Finally a bilinear resize to
    ``out_hw``.

    Args:
        head: a ``PointHead`` (see ``_pointrend_head.build_point_head``), eval mode.
        fine: (N, F, h', w') fine-grained features.
        coarse_logits: (N, C, h, w) coarse logits.
        steps: subdivision steps (see :func:`subdivision_steps`).
        num_points: points per step.
        out_hw: (H, W) of the result.

    Returns:
        (N, C, H, W) float32 refined logits.
    """
    from mmengine.config import ConfigDict

    test_cfg = ConfigDict(subdivision_steps=steps, scale_factor=2, subdivision_num_points=num_points)
    metas = [{"img_shape": tuple(out_hw)}]
    return head.predict([fine], coarse_logits, metas, test_cfg)


def train_points(
    head: PointHead,
    coarse_logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> torch.Tensor:
    """Training points with mmseg's ``get_points_train`` (no grad).

    ``k N`` uniform points, the ``beta N`` most uncertain of them by top2 - top1 of the coarse
    logits *sampled at the points* (not a sampled uncertainty map), plus ``(1 - beta) N`` fresh
    uniform points (mmseg and the paper; current detectron2 takes a random subset of the
    remaining oversampled points instead).

    Args:
        head: a ``PointHead``.
        coarse_logits: (N, C, h, w) coarse logits.
        num_points: N per image.
        oversample_ratio: k.
        importance_sample_ratio: beta.

    Returns:
        (N, num_points, 2) coordinates (x, y) in [0, 1]^2; the first ``int(beta N)`` are the
        uncertain ones.
    """
    from mmengine.config import ConfigDict
    from mmseg.models.decode_heads.point_head import calculate_uncertainty

    cfg = ConfigDict(
        num_points=num_points, oversample_ratio=oversample_ratio, importance_sample_ratio=importance_sample_ratio
    )
    with torch.no_grad():
        return head.get_points_train(coarse_logits, calculate_uncertainty, cfg=cfg)
