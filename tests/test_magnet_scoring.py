"""Uncertainty, point counts, patch choice and the two named behaviours (magnet.md §1.2, §1.5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import median_filter

from magnet.inference import StageOptions, choose_patches
from magnet.geometry import patch_boxes
from magnet.scoring import argmax_channels, error_score, margin, median_blur, patch_order, select_points, stage_points


def test_margin_is_top1_minus_top2():
    probs = torch.tensor([[0.5, 0.1], [0.3, 0.45], [0.2, 0.45]]).view(3, 1, 2)
    assert margin(probs).flatten().tolist() == pytest.approx([0.2, 0.0])
    x = torch.rand(7, 9, 11, generator=torch.Generator().manual_seed(0))
    x[4, :3] = x[2, :3]  # ties
    top = x.topk(2, dim=0).values
    assert torch.equal(margin(x), top[0] - top[1])
    assert torch.equal(margin(x[:2]), (x[0] - x[1]).abs())


def test_argmax_channels_is_argmax_with_first_index_on_ties():
    x = torch.randint(0, 4, (6, 10, 12), generator=torch.Generator().manual_seed(1)).float()  # many ties
    assert torch.equal(argmax_channels(x), x.argmax(0))


@pytest.mark.parametrize("k", [1, 3, 5, 11])
def test_median_blur_matches_scipy_with_zero_padding(k):
    x = torch.rand(23, 37, generator=torch.Generator().manual_seed(k))
    expected = median_filter(x.numpy(), size=k, mode="constant", cval=0.0)
    np.testing.assert_array_equal(median_blur(x, k).numpy(), expected)


def test_median_blur_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        median_blur(torch.zeros(4, 4), 4)


def test_points_per_stage():
    # Cityscapes full MagNet: 32768 at every stage (25 %, 6.25 %, 1.56 %)
    assert [stage_points(32768, w * h, n, n) for (w, h), n in (((512, 256), 4), ((1024, 512), 16), ((2048, 1024), 64))] \
        == [32768] * 3
    # DeepGlobe fraction 0.75
    assert stage_points(0.75, 1224 * 1224, 4, 4) == int(1224 * 1224 * 0.75)
    assert stage_points(1.0, 100, 4, 4) == 100
    # Fast: k = int(0.9 * area * n_sel / n_tot)
    assert stage_points(0.9, 512 * 256, 4, 4) == 117964
    assert stage_points(0.9, 1024 * 512, 4, 16) == int(0.9 * 1024 * 512 * 4 / 16) == 117964
    assert stage_points(0.9, 2448 * 2448, 3, 16) == int(0.9 * 2448 * 2448 * 3 / 16)
    # absolute counts are capped by the selected area and always int (released quirk 4)
    assert stage_points(5000, 64 * 64, 1, 16) == 256
    with pytest.raises(ValueError):
        stage_points(0, 10, 1, 1)


def _stage_with_patch_uncertainties(levels: list[float]) -> torch.Tensor:
    """(C=3, 16, 16) map, 4 patches of 8x8 (x outer, y inner) whose margin is 1 - level."""
    y = torch.zeros(3, 16, 16)
    for (x1, y1, x2, y2), level in zip(patch_boxes((16, 16), (8, 8)).tolist(), levels):
        top = (1 + 1 - level) / 2  # top - second = 1 - level, third = 0
        y[0, y1:y2, x1:x2], y[1, y1:y2, x1:x2] = top, 1 - top
    return y


@pytest.mark.parametrize("behaviour, expected", [("released", [2, 0]), ("paper", [1, 3])])
def test_fast_patch_choice_ascending_released_descending_paper(behaviour, expected):
    levels = [0.2, 0.9, 0.1, 0.5]
    uncertainty = 1 - margin(_stage_with_patch_uncertainties(levels))
    boxes = patch_boxes((16, 16), (8, 8))
    opts = StageOptions(n_points=0.9, n_patches=2, blur_kernel=1, behaviour=behaviour, batch_size=1, mask_inset=0)
    chosen = choose_patches(uncertainty, boxes, opts, (8, 8))
    assert chosen.tolist() == boxes[expected].tolist()
    full = choose_patches(uncertainty, boxes, StageOptions(0.9, -1, 1, behaviour, 1, 0), (8, 8))
    assert sorted(full.tolist()) == sorted(boxes.tolist())
    assert patch_order(torch.tensor(levels), behaviour).tolist()[:2] == expected


def _fast_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 12x12 stage where one processed patch covers x < 6 (mask inset 2: rows/cols 2..3).

    Certainty is 1 in the whole patch; the previous map is uncertain (U = 1) in the inner block
    and in the border band alike. Returns (cert, U, mask).
    """
    cert = torch.zeros(12, 12)
    cert[:, :6] = 1.0
    mask = torch.zeros(12, 12, dtype=torch.bool)
    mask[2:10, 2:4] = True
    uncertainty = torch.full((12, 12), 0.5)
    return cert, uncertainty, mask


def test_released_inverted_mask_leaves_only_zero_ties_inside_the_mask():
    cert, u, mask = _fast_case()
    score = error_score(cert, u, mask, "released", (12, 12), 1)
    assert torch.all(score[mask] == 0) and torch.all(score[:, :6][~mask[:, :6]] == 0.5)
    band = int((~mask[:, :6]).sum())
    # k up to the border band's size: every top point lies outside the mask and is dropped
    assert select_points(score, band, mask).numel() == 0
    # beyond it, the kept points are ties at zero inside the mask
    kept = select_points(score, 144, mask)
    assert kept.numel() == int(mask.sum()) and torch.all(score.view(-1)[kept] == 0)


def test_paper_mask_keeps_the_processed_points():
    cert, u, mask = _fast_case()
    score = error_score(cert, u, mask, "paper", (12, 12), 1)
    assert torch.all(score[mask] == 0.5) and torch.all(score[~mask] == 0)
    kept = select_points(score, int(mask.sum()), mask)
    assert sorted(kept.tolist()) == sorted(torch.nonzero(mask.view(-1)).view(-1).tolist())


def test_full_mode_ignores_the_mask_and_blurs_at_the_input_size():
    cert, u, _ = _fast_case()
    score = error_score(cert, u, None, "released", (6, 6), 3)
    small = torch.nn.functional.interpolate((cert * u)[None, None], size=(6, 6), mode="nearest")[0, 0]
    blurred = torch.from_numpy(median_filter(small.numpy(), size=3, mode="constant", cval=0.0))
    assert torch.equal(score, blurred.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert select_points(score, 5, None).numel() == 5
