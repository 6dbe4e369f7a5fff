"""PointRend: the point head's structure, point selection, cell centres, the scatter, step and point
counts, the coarse logits' consistency with the Downsample coarse map, and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmcv  # noqa: E402, F401  (required by pyproject.toml: a broken install fails, never skips)
import mmengine  # noqa: E402, F401
import mmseg  # noqa: E402, F401

from baselines.pointrend.features import coarse_and_fine  # noqa: E402
from baselines.pointrend.head import build_point_head, point_sample  # noqa: E402
from baselines.pointrend.points import points_per_step, subdivide, subdivision_steps, train_points  # noqa: E402
from baselines.pointrend.train import train_head  # noqa: E402
from baselines.pointrend.method import PointRend, PointRendConfig  # noqa: E402
from bench.models.coarse import compute_coarse  # noqa: E402


def _uncertainty(logits: torch.Tensor) -> torch.Tensor:
    from mmseg.models.decode_heads.point_head import calculate_uncertainty

    return calculate_uncertainty(logits)


def test_point_head_structure_follows_the_spec():
    head = build_point_head(in_channels=32, num_classes=5)
    convs = [fc.conv for fc in head.fcs]
    assert [tuple(c.weight.shape) for c in convs] == [(256, 37, 1), (256, 261, 1), (256, 261, 1)]
    assert all(isinstance(c, torch.nn.Conv1d) and fc.norm_name is None for c, fc in zip(convs, head.fcs))
    assert tuple(head.fc_seg.weight.shape) == (5, 261, 1)
    assert head.fc_seg.weight.std().item() == pytest.approx(0.01, rel=0.2) and head.fc_seg.bias.abs().sum() == 0
    # coarse logits are re-appended after every layer: changing them changes the output even when
    # the fine features and the first layer's coarse part are fixed
    fine, coarse = torch.randn(1, 32, 7), torch.randn(1, 5, 7)
    out = head(fine, coarse)
    assert out.shape == (1, 5, 7)
    with torch.no_grad():
        head.fcs[0].conv.weight[:, 32:] = 0
    assert not torch.allclose(head(fine, coarse), head(fine, coarse + 1.0))


def test_uncertainty_is_top2_minus_top1_of_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, -1.0], [-5.0, 4.0, 3.5]]).T[None, :, None, :]  # (1, 3, 1, 3)
    np.testing.assert_allclose(_uncertainty(logits)[0, 0, 0].numpy(), [-2.0, 0.0, -0.5])


def test_point_sample_is_bilinear_with_cell_centres():
    feat = torch.arange(12.0).view(1, 1, 3, 4)
    pts = torch.tensor([[[0.5 / 4, 0.5 / 3], [3.5 / 4, 2.5 / 3], [1.0 / 4, 0.5 / 3]]])
    np.testing.assert_allclose(point_sample(feat, pts)[0, 0].numpy(), [0.0, 11.0, 0.5], atol=1e-6)


def test_test_points_are_top_k_cells_at_their_centres():
    from mmengine.config import ConfigDict

    head = build_point_head(4, 3)
    logits = torch.zeros(1, 3, 3, 4)
    logits[0, 0] = 5.0  # certain everywhere ...
    for idx, margin in ((6, 0.1), (9, 0.5), (1, 1.0)):  # ... except three cells, most uncertain first
        logits[0, 1].view(-1)[idx] = 5.0 - margin
    indices, coords = head.get_points_test(logits, _uncertainty, ConfigDict(subdivision_num_points=3))
    assert indices[0].tolist() == [6, 9, 1]
    expected = [[((i % 4) + 0.5) / 4, ((i // 4) + 0.5) / 3] for i in (6, 9, 1)]
    np.testing.assert_allclose(coords[0].numpy(), expected, atol=1e-7)


def test_subdivision_scatters_head_output_into_the_uncertain_cells(monkeypatch):
    head = build_point_head(4, 3).eval()
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = torch.tensor([[4.0, 4.0], [4.0, 0.2]])  # bottom-right cell is uncertain
    fine = torch.randn(1, 4, 2, 2)
    seen = {}

    def fake_forward(fine_pts, coarse_pts):
        seen["coarse_pts"] = coarse_pts
        out = torch.zeros(1, 3, fine_pts.shape[-1])
        out[:, 2] = 9.0
        return out

    monkeypatch.setattr(head, "forward", fake_forward)
    out = subdivide(head, fine, logits, steps=1, num_points=4, out_hw=(4, 4))
    up = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
    top = torch.topk(_uncertainty(up).view(-1), 4).indices
    mask = torch.zeros(16, dtype=torch.bool)
    mask[top] = True
    flat_out, flat_up = out.view(3, 16), up.view(3, 16)
    assert torch.equal(flat_out[:, ~mask], flat_up[:, ~mask])
    assert (flat_out[2, mask] == 9.0).all() and (flat_out[:2, mask] == 0).all()
    assert mask.view(4, 4)[2:, 2:].all()  # the four sub-cells of the uncertain cell
    # the coarse features come from the ORIGINAL coarse logits at the cell centres
    ys, xs = top // 4, top % 4
    pts = torch.stack([(xs + 0.5) / 4, (ys + 0.5) / 4], -1)[None].float()
    assert torch.allclose(seen["coarse_pts"], point_sample(logits, pts))


def test_subdivision_resizes_to_the_exact_image_size():
    head = build_point_head(4, 3).eval()
    with torch.no_grad():
        out = subdivide(head, torch.randn(1, 4, 5, 6), torch.randn(1, 3, 5, 6), steps=2, num_points=7, out_hw=(19, 23))
    assert out.shape == (1, 3, 19, 23)


def test_step_and_point_counts():
    assert subdivision_steps((64, 128), (512, 1024)) == 3  # synthetic default: 1/8
    assert subdivision_steps((128, 256), (1024, 2048)) == 3
    assert subdivision_steps((256, 512), (1024, 2048)) == 2  # stride-4 head at Cityscapes: the spec's 2
    assert subdivision_steps((508, 508), (2448, 2448)) == 3  # 4.8x: 3 doublings cover it
    assert subdivision_steps((64, 128), (64, 128)) == 0
    assert points_per_step(8192, (1024, 2048), (1024, 2048)) == 8192
    assert points_per_step(8192, (512, 1024), (1024, 2048)) == 2048
    assert points_per_step(8192, (1, 1), (1024, 2048)) == 1


def test_train_points_keep_the_most_uncertain_first():
    head = build_point_head(4, 3)
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0, :, :4] = 10.0  # left half certain, right half a tie (maximally uncertain)
    torch.manual_seed(0)
    pts = train_points(head, logits, num_points=64, oversample_ratio=3, importance_sample_ratio=0.75)
    assert pts.shape == (1, 64, 2)
    assert (pts[0, :48, 0] > 0.5).all()  # the 48 importance points lie in the uncertain half
    assert ((pts >= 0) & (pts <= 1)).all()


def test_coarse_logits_match_the_downsample_coarse_map(tiny_ctx, tiny_dataset):
    image = tiny_dataset[0].image
    logits, fine = coarse_and_fine(tiny_ctx.backbone, image, tiny_ctx.input_size, tiny_ctx.device)
    coarse = compute_coarse(tiny_ctx.backbone, image, tiny_ctx.input_size, tiny_ctx.device)
    assert torch.allclose(torch.softmax(logits, 1)[0], coarse.probs, atol=1e-6)
    assert fine.shape[0] == 1 and fine.dim() == 4
    with pytest.raises(KeyError, match="fine"):
        coarse_and_fine(tiny_ctx.backbone, image, tiny_ctx.input_size, tiny_ctx.device, feature_key="nope")
    with pytest.raises(ValueError, match="uint8"):
        coarse_and_fine(tiny_ctx.backbone, image.astype(np.float32), tiny_ctx.input_size, tiny_ctx.device)


def test_training_lowers_the_point_loss(tiny_ctx, tiny_dataset):
    torch.manual_seed(0)
    items = []
    for i in range(len(tiny_dataset)):
        s = tiny_dataset[i]
        logits, fine = coarse_and_fine(tiny_ctx.backbone, s.image, tiny_ctx.input_size, tiny_ctx.device)
        items.append((logits[0], fine[0], torch.from_numpy(s.label.copy())))
    head = build_point_head(int(items[0][1].shape[0]), 4, fc_channels=64)
    cfg = PointRendConfig(iterations=30, batch_size=4, train_points=256, lr=1e-2)
    losses = train_head(head, lambda i: items[i], len(items), cfg, 255)
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])


def test_train_save_load_refine(tiny_ctx, tiny_dataset):
    cfg = PointRendConfig(iterations=2, batch_size=2, train_points=64, fc_channels=32)
    PointRend.train(cfg, tiny_ctx, tiny_dataset, PointRend.checkpoints(cfg, tiny_ctx))
    state = torch.load(tiny_ctx.checkpoint_dir / "pointrend.pt", weights_only=True)
    method = PointRend(cfg, tiny_ctx)
    assert set(state) == set(method.head.state_dict())
    image = np.ascontiguousarray(tiny_dataset[1].image[:60, :100])  # not a power-of-two multiple of 32x16
    out = method.refine(image, None)
    assert out.shape == (60, 100) and out.dtype == torch.int64
    assert torch.equal(out, method.refine(image, None))
