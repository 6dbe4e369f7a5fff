"""CascadePSP: the module against the released package, the global/local steps against its
inference code, crop coordinates, released-weights loading, the multi-class protocol, the
perturbation and the losses (hand-computed where possible)."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from baselines.cascadepsp.infer import local_crops, padded_forward, refine_masks
from baselines.cascadepsp.net import RefinementModule
from baselines.common.perturb import _iou, modify_boundary, perturb_seg
from baselines.cascadepsp.train import cascade_loss, make_sample, sobel_magnitude
from baselines.cascadepsp.method import CHECKPOINT, RELEASED, CascadePSP, CascadePSPConfig
from baselines.common.per_class import combine
from bench.models.coarse import compute_coarse
from bench.core.interface import Coarse

TINY = {"depth": 18, "width": 8, "psp_channels": 32, "up_channels": (16, 16, 8), "head_channels": 8}


def _reference():
    """The released package's modules; it imports torchvision and requests at package level
    (only ``main.py`` and ``download.py`` use them), so empty stand-ins are enough."""
    for name in ("torchvision", "torchvision.transforms", "requests"):
        sys.modules.setdefault(name, types.ModuleType(name))
    from segmentation_refinement import eval_helper
    from segmentation_refinement.models.psp import pspnet

    return pspnet, eval_helper


def _randomise_bn(module: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial BN statistics and affine terms, so a swapped or skipped BN cannot pass."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)


@pytest.fixture(scope="module")
def released_pair():
    """The package's ResNet-50 RefinementModule (random weights, randomised BN) and its state dict."""
    pspnet, _ = _reference()
    torch.manual_seed(0)
    ref = pspnet.RefinementModule().eval()
    _randomise_bn(ref)
    return ref, ref.state_dict()


def _tiny(seed: int = 0) -> RefinementModule:
    torch.manual_seed(seed)
    net = RefinementModule(**TINY).eval()
    _randomise_bn(net, seed + 1)
    return net


def _disc(h: int, w: int, cy: int, cx: int, r: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()[None, None] * 2 - 1


# --- the module against segmentation-refinement 0.6 ---------------------------------------------

def test_released_layout_loads_strictly_and_forward_equals_package(released_pair):
    ref, state = released_pair
    assert len(state) == 426 and sum(p.numel() for p in ref.parameters()) == 67_683_433
    ours = RefinementModule(**RELEASED).eval()
    ours.load_state_dict(state, strict=True)
    torch.manual_seed(3)
    x, seg = torch.randn(1, 3, 40, 48), _disc(40, 48, 20, 22, 12)
    inter8, inter4 = torch.tanh(torch.randn(1, 1, 40, 48)), torch.tanh(torch.randn(1, 1, 40, 48))
    with torch.no_grad():
        for args in ((x, seg), (x, seg, inter8), (x, seg, inter8, inter4)):
            a, b = ref(*args), ours(*args)
            assert sorted(a) == sorted(b)
            for key in a:
                torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    assert {"pred_224", "pred_28_3", "pred_56_2", "pred_28", "pred_28_2", "pred_56"} <= set(ref(x, seg))


def test_released_model_file_loads_through_the_method(released_pair, tiny_ctx, tmp_path):
    """A file in the release's layout (DataParallel ``module.`` keys, as its ``model``) loads
    strictly into the method; its refinement equals the package's model on the same masks."""
    ref, state = released_pair
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / CHECKPOINT)
    ctx = type(tiny_ctx)(**{**tiny_ctx.__dict__, "checkpoint_dir": tmp_path})
    method = CascadePSP(CascadePSPConfig(**RELEASED, L=32, local_step=False), ctx)
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = _disc(24, 32, 12, 14, 7)[0, 0] > 0
    ours = method.refine_binary(image, mask[None])
    _, helper = _reference()
    from bench.core.interface import normalize

    with torch.no_grad():
        theirs = helper.process_im_single_pass(ref, normalize(image), mask[None, None].float() * 2 - 1, 32)
    torch.testing.assert_close(ours, theirs[:, 0], rtol=0, atol=1e-6)


def test_release_file_without_bn_counters_loads(released_pair, tmp_path):
    """A plain dict without ``num_batches_tracked`` (as torch fills in for old files) loads; the
    counters become 0 and every other tensor is the file's."""
    from baselines.cascadepsp.method import load_released

    _, state = released_pair
    kept = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(kept) < len(state)
    torch.save(kept, tmp_path / "model")
    net = RefinementModule(**RELEASED)
    load_released(net, tmp_path / "model")
    own = net.state_dict()
    assert all(torch.equal(own[k[7:]], v) for k, v in kept.items())
    assert all(int(v) == 0 for k, v in own.items() if k.endswith("num_batches_tracked"))


def test_mismatched_file_lists_missing_and_unexpected_keys(released_pair, tiny_ctx, tmp_path):
    _, state = released_pair
    bad = {f"module.{k}": v for k, v in state.items() if k != "final_21.weight"}
    bad["module.final_99.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / CHECKPOINT)
    ctx = type(tiny_ctx)(**{**tiny_ctx.__dict__, "checkpoint_dir": tmp_path})
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): \['final_21.weight'\].*unexpected keys \(1\): \['final_99.weight'\]"):
        CascadePSP(CascadePSPConfig(**RELEASED), ctx)


def test_missing_file_is_an_error_naming_it(tiny_ctx):
    with pytest.raises(FileNotFoundError, match="cascadepsp.pt"):
        CascadePSP(CascadePSPConfig(**TINY), tiny_ctx)


# --- global and local steps against the package's eval_helper ------------------------------------

@pytest.mark.parametrize("L", [96, 128, 230, 300])
def test_global_and_local_steps_equal_package(L):
    """Shrinking (L < 230), equal and growing global steps, with the local step's crops."""
    _, helper = _reference()
    net = _tiny()
    torch.manual_seed(1)
    im, seg = torch.randn(1, 3, 150, 230), _disc(150, 230, 70, 100, 50)
    with torch.no_grad():
        torch.testing.assert_close(refine_masks(net, im, seg, L), helper.process_high_res_im(net, im, seg, L),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(refine_masks(net, im, seg, L, local=False),
                                   helper.process_im_single_pass(net, im, seg, L), rtol=0, atol=1e-6)


def test_masks_batched_equal_masks_alone():
    _, helper = _reference()
    net = _tiny()
    im = torch.randn(1, 3, 100, 140)
    seg = torch.cat([_disc(100, 140, 50, 60, 30), -_disc(100, 140, 30, 100, 25), torch.ones(1, 1, 100, 140)])
    with torch.no_grad():
        both = refine_masks(net, im, seg, 96)
        for i in range(3):
            torch.testing.assert_close(both[i:i + 1], helper.process_high_res_im(net, im, seg[i:i + 1], 96),
                                       rtol=0, atol=1e-6)


def test_padded_forward_pads_both_sides_like_the_release():
    """(40, 44): 44 is not a multiple of 8, so both sides grow: the net sees (48, 48)."""
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, seg, inter_s8=None, inter_s4=None):
            seen["x"], seen["seg"] = x, seg
            p = torch.sigmoid(seg)
            return {"pred_224": p, "pred_28_3": p, "pred_56_2": p}

    out = padded_forward(Probe(), torch.ones(1, 3, 40, 44), torch.ones(1, 1, 40, 44))
    assert seen["x"].shape[-2:] == (48, 48) and out["pred_224"].shape[-2:] == (40, 44)
    assert float(seen["x"][0, 0, 45, 0]) == 0.0 and float(seen["seg"][0, 0, 0, 46]) == -1.0


# --- local crop coordinates -------------------------------------------------------------------------

def test_local_crops_hand_computed():
    """h 40, w 100, L 64, padding 8: step 16; columns 0, 16, 32, then 48.. shifted to 36 (dups
    dropped); every row clamps to 0:40. Paste margins: 8 px on sides not at the border."""
    crops = local_crops(40, 100, 64, 8)
    assert [(c.y0, c.y1, c.x0, c.x1) for c in crops] == [(0, 40, 0, 64), (0, 40, 16, 80), (0, 40, 32, 96), (0, 40, 36, 100)]
    assert [c.paste for c in crops] == [(0, 40, 0, 56), (0, 40, 24, 72), (0, 40, 40, 88), (0, 40, 44, 100)]
    assert [c.src for c in crops] == [(0, 64, 0, 56), (0, 64, 8, 56), (0, 64, 8, 56), (0, 64, 8, 64)]


@pytest.mark.parametrize("h,w,L,pad", [(512, 1024, 256, 16), (150, 230, 96, 16), (64, 64, 64, 8), (30, 500, 100, 10)])
def test_local_crops_cover_the_image_and_fit_their_source(h, w, L, pad):
    cover = np.zeros((h, w), np.int32)
    for c in local_crops(h, w, L, pad):
        assert 0 <= c.y0 < c.y1 <= h and 0 <= c.x0 < c.x1 <= w and c.y1 - c.y0 == min(L, h) and c.x1 - c.x0 == min(L, w)
        py0, py1, px0, px1 = c.paste
        sy0, sy1, sx0, sx1 = c.src
        # the pasted window is the crop's prediction window shifted by the crop origin (clipped)
        assert (py0 - c.y0, px0 - c.x0) == (sy0, sx0)
        assert py1 - py0 == min(sy1, c.y1 - c.y0) - sy0 and px1 - px0 == min(sx1, c.x1 - c.x0) - sx0
        cover[py0:py1, px0:px1] += 1
    assert cover.min() >= 1


def test_local_crops_reject_a_step_below_one():
    with pytest.raises(ValueError, match="L=64 with padding=16"):
        local_crops(100, 100, 64, 16)


# --- the multi-class protocol: hand-made cases ---------------------------------------------------

def test_combine_argmax_ties_to_lowest_class_and_min_confidence():
    probs = torch.tensor([[[0.6, 0.2, 0.3]], [[0.6, 0.7, 0.1]]])  # classes 2 and 5, one row of 3 px
    classes = torch.tensor([2, 5])
    coarse = torch.tensor([[5, 2, 5]])
    assert combine(probs, classes, coarse).tolist() == [[2, 5, 2]]  # tie at px 0 -> class 2
    assert combine(probs, classes, coarse, min_confidence=0.5).tolist() == [[2, 5, 5]]  # px 2 keeps coarse


class _Identity(torch.nn.Module):
    """A refiner that returns its input mask: the pipeline must give back the coarse labels."""

    def forward(self, x, seg, inter_s8=None, inter_s4=None):
        p = (seg + 1) / 2
        return {"pred_224": p, "pred_28_3": p, "pred_56_2": p}


def _method_with(net: torch.nn.Module, ctx, **cfg) -> CascadePSP:
    method = CascadePSP.__new__(CascadePSP)
    method.cfg, method.ctx, method.device, method.net = CascadePSPConfig(**cfg), ctx, ctx.device, net
    return method


def test_identity_refiner_returns_the_downsample_labels(tiny_ctx, tiny_dataset):
    """With L equal to the image's longer side no resize happens, so an identity refiner must
    reproduce the upsampled coarse argmax exactly, through the global and the local step."""
    sample = tiny_dataset[0]
    coarse = compute_coarse(tiny_ctx.backbone, sample.image, tiny_ctx.input_size, tiny_ctx.device)
    up = torch.nn.functional.interpolate(coarse.probs[None], size=(64, 128), mode="bilinear", align_corners=False)[0]
    assert torch.unique(up.argmax(0)).numel() > 1
    for local in (True, False):
        method = _method_with(_Identity(), tiny_ctx, L=128, local_step=local, padding=16)
        assert torch.equal(method.refine(sample.image, coarse), up.argmax(0))


def test_one_class_coarse_map_needs_no_forward(tiny_ctx):
    class Boom(torch.nn.Module):
        def forward(self, *args):
            raise AssertionError("no forward expected")

    probs = torch.zeros(4, 16, 32)
    probs[2] = 1
    out = _method_with(Boom(), tiny_ctx).refine(np.zeros((64, 128, 3), np.uint8), Coarse(probs))
    assert out.dtype == torch.int64 and out.shape == (64, 128) and bool((out == 2).all())


def test_refined_probabilities_decide_the_labels(tiny_ctx):
    """A refiner that claims the left half for whatever mask it gets: pixels go to the class of
    highest probability, ties to the lowest id, and an absent class never appears."""

    class LeftHalf(torch.nn.Module):
        def forward(self, x, seg, inter_s8=None, inter_s4=None):
            p = torch.zeros_like(seg)
            p[..., : seg.shape[-1] // 2] = 0.9
            p = torch.maximum(p, (seg + 1) / 2 * 0.5)  # own coarse region at 0.5
            return {"pred_224": p, "pred_28_3": p, "pred_56_2": p}

    probs = torch.zeros(4, 16, 32)
    probs[1, :, :8], probs[3, :, 8:] = 1, 1  # class 1 on the left quarter, 3 elsewhere, 0 and 2 absent
    method = _method_with(LeftHalf(), tiny_ctx, L=128, local_step=False)
    out = method.refine(np.zeros((64, 128, 3), np.uint8), Coarse(probs))
    assert bool((out[:, :64] == 1).all())  # both classes at 0.9 on the left: tie -> class 1
    assert bool((out[:, 64:] == 3).all())  # right: only class 3 has 0.5
    assert set(torch.unique(out).tolist()) == {1, 3}


# --- training: perturbation, samples, losses -----------------------------------------------------

def test_perturb_seg_reaches_the_target_and_is_seeded():
    mask = ((_disc(80, 90, 40, 45, 25)[0, 0] > 0).numpy() * 255).astype(np.uint8)
    a = perturb_seg(mask, 0.8, np.random.default_rng(0))
    b = perturb_seg(mask, 0.8, np.random.default_rng(0))
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0, 255}
    assert _iou(a, mask) < 0.8 and _iou(a, mask) > 0.3


def test_modify_boundary_coarsens_and_keeps_shape():
    mask = ((_disc(100, 100, 50, 50, 30)[0, 0] > 0).numpy() * 255).astype(np.uint8)
    out = modify_boundary(mask, 0.95, np.random.default_rng(1))
    assert out.shape == mask.shape and out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    assert 0.5 < _iou(out, mask) < 1.0
    tiny = np.zeros((20, 20), np.uint8)
    tiny[5:7, 5:7] = 255  # contour under 10 vertices: kept, then perturbed
    assert modify_boundary(tiny, 0.0, np.random.default_rng(0)).shape == (20, 20)


def test_make_sample_shapes_and_target(tiny_dataset):
    s = tiny_dataset[0]
    cfg = CascadePSPConfig(crop_size=(48, 32), scale_min=0.5, scale_max=1.0)
    im, seg, gt = make_sample(s.image, s.label, cfg, 255, np.random.default_rng(0))
    assert im.shape == (3, 32, 48) and seg.shape == gt.shape == (1, 32, 48)
    assert set(np.unique(gt)) <= {0.0, 1.0} and set(np.unique(seg)) <= {-1.0, 1.0} and gt.max() == 1.0


def test_sobel_magnitude_hand_computed():
    """Step edge 0 | 1 between columns 2 and 3: after the 3x3 box the interior row reads
    0, 0, 1/3, 2/3, 1, 1; gx(c) = x(c-1) - x(c+1), gy = 0, so column 2 has sqrt(4/9 + 1e-4)."""
    x = torch.zeros(1, 1, 5, 6)
    x[..., 3:] = 1
    g = sobel_magnitude(x)
    assert math.isclose(float(g[0, 0, 2, 2]), math.sqrt(4 / 9 + 1e-4), rel_tol=1e-6)
    assert math.isclose(float(g[0, 0, 2, 0]), 0.01, rel_tol=1e-4)  # flat: sqrt(eps)


def test_cascade_loss_hand_computed_at_half_probability():
    """Zero logits everywhere, target all ones: CE = ln 2 with total weight 4; L1 0.5, L2 0.25:
    (0.5 + 0.25) + 2 x 0.25 x (0.5 + 0.25) = 1.125; the gradient loss is 0 in the interior only."""
    out = {k: torch.zeros(2, 1, 16, 16) for k in ("out_224", "out_28", "out_56", "out_28_2", "out_28_3", "out_56_2")}
    loss, parts = cascade_loss(out, torch.ones(2, 1, 16, 16))
    assert math.isclose(parts["ce"], 4 * math.log(2), rel_tol=1e-6)
    assert math.isclose(parts["l1l2"], 1.125, rel_tol=1e-6)
    # sobel of the constants 1 and 0.5 differ only at the zero-padded border
    expected_grad = float((sobel_magnitude(torch.full((1, 1, 16, 16), 0.5)) - sobel_magnitude(torch.ones(1, 1, 16, 16))).abs().mean())
    assert math.isclose(parts["grad"], expected_grad, rel_tol=1e-5)
    assert math.isclose(float(loss), 4 * math.log(2) + 1.125 + 5 * expected_grad, rel_tol=1e-5)


def test_training_lowers_the_loss(tiny_dataset):
    """A few steps on the tiny set: the loss of the last steps is below that of the first."""
    from baselines.cascadepsp.train import train_net
    from baselines.cascadepsp.method import build_net

    cfg = CascadePSPConfig(**TINY, iterations=12, batch_size=4, crop_size=(48, 48), lr=3e-3, milestones=())
    torch.manual_seed(0)
    samples = [(s.image, s.label) for s in (tiny_dataset[i] for i in range(4))]
    losses = train_net(build_net(cfg), samples, cfg, 255, torch.device("cpu"))
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
