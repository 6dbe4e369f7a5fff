"""Scales, patch grids and pasting (magnet.md §1.1, §1.4)."""

from __future__ import annotations

import pytest
import torch

from magnet.geometry import Paster, derive_scales, grid_overlaps, patch_boxes, patch_ratios

CITYSCAPES = ((256, 128), (512, 256), (1024, 512), (2048, 1024))


def test_cityscapes_grids_tile_exactly_x_outer_y_inner():
    counts = [len(patch_boxes(s, (256, 128))) for s in CITYSCAPES]
    assert counts == [1, 4, 16, 64]
    boxes = patch_boxes((512, 256), (256, 128)).tolist()
    assert boxes == [[0, 0, 256, 128], [0, 128, 256, 256], [256, 0, 512, 128], [256, 128, 512, 256]]
    big = patch_boxes((2048, 1024), (256, 128))
    assert big[:9, 0].tolist() == [0] * 8 + [256] and big[:8, 1].tolist() == [128 * i for i in range(8)]
    assert not any(grid_overlaps(s, (256, 128)) for s in CITYSCAPES)


def test_ratios_and_deepglobe_grid():
    ratios = patch_ratios((512, 256), (256, 128))
    assert ratios.tolist() == [[0, 0, 0.5, 0.5], [0, 0.5, 0.5, 1], [0.5, 0, 1, 0.5], [0.5, 0.5, 1, 1]]
    assert [len(patch_boxes((s, s), (612, 612))) for s in (612, 1224, 2448)] == [1, 4, 16]
    assert torch.equal((patch_ratios((2448, 2448), (612, 612)) * 2448).round().long(), patch_boxes((2448, 2448), (612, 612)))


def test_uneven_grid_uses_the_released_step_rule():
    # n = ceil(1000 / 300) = 4, step = int(300 - (1200 - 1000) / 3) = 233
    assert patch_boxes((1000, 300), (300, 300))[:, 0].tolist() == [0, 233, 466, 699]
    assert grid_overlaps((1000, 300), (300, 300))


def test_derive_scales_doubles_to_the_image_size():
    assert derive_scales((256, 128), (2048, 1024)) == CITYSCAPES
    assert derive_scales((612, 612), (2448, 2448)) == ((612, 612), (1224, 1224), (2448, 2448))
    assert derive_scales((100, 100), (300, 250))[-1] == (300, 250)
    with pytest.raises(ValueError, match="fit in the image"):
        derive_scales((300, 100), (200, 100))


def test_paste_assigns_resizes_to_the_first_box_and_insets_the_mask():
    paster = Paster(2, (8, 4), inset=1, device="cpu")
    patches = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).view(2, 2, 2, 2)
    boxes = torch.tensor([[0, 0, 4, 4], [4, 0, 8, 4]])
    paster.add(patches, boxes)
    canvas, mask = paster.finish()
    expected = torch.nn.functional.interpolate(patches, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.equal(canvas[:, :, :4], expected[0]) and torch.equal(canvas[:, :, 4:], expected[1])
    assert mask.tolist() == [[False] * 8, [False, True, True, False] * 2, [False, True, True, False] * 2, [False] * 8]


def test_paste_leaves_unselected_pixels_at_zero_and_later_patches_overwrite():
    paster = Paster(1, (8, 4), inset=0, device="cpu")
    paster.add(torch.full((1, 1, 4, 4), 0.3), torch.tensor([[2, 0, 6, 4]]))
    paster.add(torch.full((1, 1, 4, 4), 0.9), torch.tensor([[4, 0, 8, 4]]))
    canvas, mask = paster.finish()
    # overlapping boxes: assignment then division by the count (the released quirk)
    assert canvas[0, 0].tolist() == pytest.approx([0, 0, 0.3, 0.3, 0.45, 0.45, 0.9, 0.9])
    assert mask[0].tolist() == [False, False] + [True] * 6
