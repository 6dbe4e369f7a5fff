"""SegRefiner (refinement_track.md §4.7): the schedule and its telescoping invariant with a
constant-logit stub, the forward corruption, the reverse rule back to the original coarse mask,
seeded sampling, the empty-mask rule without a forward, NMS and the paste rule, the GroupNorm
widths, the released UNet layout (keys built from the authors' class, not from ours) and the
method contract.

Expected values come from the spec's formulas (schedule, telescoped fine probability, binomial
fractions) or are computed here by hand, never from the code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.segrefiner.diffusion import Inference, nms, paste, q_sample, refine_mask, reverse_step, sample_loop, schedule
from baselines.segrefiner.method import (CHECKPOINT, LOSS_KEYS, SegRefiner, SegRefinerConfig, combine, image_key,
                                         load_unet, mask_seed)
from baselines.segrefiner.train import segrefiner_loss, sobel
from baselines.segrefiner.unet import RELEASED, DenoiseUNet
from bench.checks import contract
from bench.core.interface import Coarse
from bench.models.coarse import upsampled_labels

GOLDEN = Path(__file__).parent / "golden" / "segrefiner_release_keys.json"
ALPHA, ALPHA_PREV = schedule()


class ConstantLogit:
    """A stub denoiser: every pixel gets ``logit``; records the steps and inputs it was called with."""

    def __init__(self, logit: float) -> None:
        self.logit, self.steps, self.inputs = logit, [], []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.steps.append(int(t[0]))
        self.inputs.append(x.clone())
        return torch.full((x.shape[0], 1, *x.shape[2:]), self.logit)


def _tiny_net(seed: int = 0) -> DenoiseUNet:
    torch.manual_seed(seed)
    return DenoiseUNet(base=32, channel_mult=(1, 2), num_res_blocks=1, attention_strides=(), num_heads=2).eval()


# -- schedule, corruption, reverse rule ------------------------------------------------------------

def test_schedule_values():
    assert np.allclose(ALPHA, [0.8, 0.64, 0.48, 0.32, 0.16, 0.0])
    assert np.allclose(ALPHA_PREV, [1.0, 0.8, 0.64, 0.48, 0.32, 0.16])


@pytest.mark.parametrize("logit", [0.3, 1.0, -2.0])
def test_fine_probability_telescopes_with_a_constant_logit(logit):
    """Steps 5..1 leave f = 0.8 c (the global step), one more step t = 0 leaves f = c."""
    c = 2 * abs(1 / (1 + math.exp(-logit)) - 0.5)
    stub = ConstantLogit(logit)
    image, coarse = torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    prob, fine = sample_loop(stub, image, coarse, None, [5, 4, 3, 2, 1], ALPHA, ALPHA_PREV, torch.Generator().manual_seed(0))
    assert stub.steps == [5, 4, 3, 2, 1]
    assert torch.allclose(fine, torch.full_like(fine, 0.8 * c), atol=1e-6)
    assert torch.allclose(prob, torch.full_like(prob, 1 / (1 + math.exp(-logit))), atol=1e-6)  # last step: sigmoid
    _, fine0 = sample_loop(stub, image, coarse, fine, [0], ALPHA, ALPHA_PREV)
    assert torch.allclose(fine0, torch.full_like(fine0, c), atol=1e-6)


def test_reverse_step_formula_at_one_step():
    """t = 3, c = 0.5 from f = 0.2: p = 0.5 (0.48 - 0.32) / (1 - 0.5 * 0.32) = 0.08 / 0.84."""
    logit = torch.full((1, 1, 1, 1), math.log(3.0))  # sigmoid = 0.75: c = 0.5
    out = reverse_step(logit, torch.full((1, 1, 1, 1), 0.2), 3, ALPHA, ALPHA_PREV)
    assert float(out) == pytest.approx(0.2 + 0.8 * 0.08 / 0.84, abs=1e-6)


def test_t5_corruption_is_the_coarse_mask_and_t0_keeps_80_percent_of_gt():
    g = torch.Generator().manual_seed(3)
    gt = (torch.rand(1, 1, 128, 128, generator=g) < 0.5).float()
    coarse = (torch.rand(1, 1, 128, 128, generator=g) < 0.5).float()
    x5 = q_sample(gt, coarse, torch.tensor([5]), ALPHA, torch.Generator().manual_seed(0))
    assert torch.equal(x5, coarse)
    x0 = q_sample(gt, coarse, torch.tensor([0]), ALPHA, torch.Generator().manual_seed(0))
    differ = gt != coarse
    n = int(differ.sum())
    share = float((x0 == gt)[differ].float().mean())
    assert abs(share - 0.8) < 5 * math.sqrt(0.8 * 0.2 / n)  # binomial tolerance
    assert torch.equal(x0[~differ], gt[~differ])  # where they agree nothing can change


def test_unconfident_pixels_return_to_the_original_coarse_mask():
    """A stub sure of 1 everywhere on an all-0 coarse mask: the mask entering step t - 1 holds 1
    where a pixel is fine, i.e. a share f_t = 1 - (1 - alpha[t-1]) of the pixels (0.16 after step 5,
    0.32 after 4, 0.48 after 3), not the larger share a walk from the previous state would give."""
    stub = ConstantLogit(30.0)
    coarse = torch.zeros(1, 1, 96, 96)
    sample_loop(stub, torch.zeros(1, 3, 96, 96), coarse, None, [5, 4, 3, 2, 1], ALPHA, ALPHA_PREV,
                torch.Generator().manual_seed(1))
    n = 96 * 96
    for step_index, expected in ((1, 0.16), (2, 0.32), (3, 0.48)):
        share = float(stub.inputs[step_index][:, 3].mean())
        assert abs(share - expected) < 5 * math.sqrt(expected * (1 - expected) / n), (step_index, share)
    assert torch.equal(stub.inputs[0][:, 3:], coarse)  # the first step sees the coarse mask itself


# -- inference: empty masks, local patches, NMS, paste --------------------------------------------

def _block_mask(h: int, w: int, pixels: int) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask.view(-1)[:pixels] = True
    return mask


def test_empty_coarse_gives_zeros_without_a_forward():
    calls = []

    def spy(x, t):
        calls.append(int(t[0]))
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    image = torch.zeros(1, 3, 64, 128)
    settings = Inference(model_size=32, min_pixels=128)
    out = refine_mask(spy, image, _block_mask(64, 128, 128), settings, ALPHA, ALPHA_PREV, None)
    assert calls == [] and out.shape == (64, 128) and not out.any()
    refine_mask(spy, image, _block_mask(64, 128, 129), settings, ALPHA, ALPHA_PREV, None)
    assert calls[:5] == [5, 4, 3, 2, 1]


def test_no_local_patch_where_the_global_mask_is_uniform_in_every_box():
    """Confident (+-10) on the object, unsure (logit -0.5) only far from it: the uncertain points'
    boxes hold only background, so no t = 0 call is made and the global result is returned."""
    calls = []

    def stub(x, t):
        calls.append(int(t[0]))
        logits = torch.where(x[:, 3:] > 0.5, 10.0, -10.0)
        logits[..., :, -4:] = -0.5  # the right-most grid columns are unsure background
        return logits

    mask = torch.zeros(64, 256, dtype=torch.bool)
    mask[16:48, 8:56] = True
    out = refine_mask(stub, torch.zeros(1, 3, 64, 256), mask, Inference(model_size=32), ALPHA, ALPHA_PREV,
                      torch.Generator().manual_seed(0))
    assert calls == [5, 4, 3, 2, 1]
    assert torch.equal(out >= 0.5, mask)


def test_nms_keeps_by_score_and_drops_overlaps_above_the_threshold():
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [8, 0, 18, 10], [30, 30, 40, 40]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.1, 0.3])
    # IoU(b1, b0) = 50/150, IoU(b1, b2) = 70/130, IoU(b0, b2) = 20/180
    assert nms(boxes, scores, 0.3).tolist() == [1, 3]
    assert nms(boxes, scores, 0.4).tolist() == [1, 0, 3]
    assert nms(boxes, scores, 0.6).tolist() == [1, 0, 3, 2]


def test_paste_rule():
    g = torch.Generator().manual_seed(0)
    global_prob = torch.rand(20, 30, generator=g)
    boxes = [(0, 0, 10, 8), (5, 4, 15, 12), (18, 10, 28, 18)]
    local = torch.rand(3, 8, 10, generator=g)
    out = paste(local, global_prob, boxes)
    for y in range(20):
        for x in range(30):
            values = [float(local[k, y - y1, x - x1]) for k, (x1, y1, x2, y2) in enumerate(boxes)
                      if x1 <= x < x2 and y1 <= y < y2]
            if values:
                assert bool(out[y, x] >= 0.5) == (sum(values) / len(values) >= 0.5), (y, x)
            else:
                assert bool(out[y, x] >= 0.5) == bool(global_prob[y, x] >= 0.5), (y, x)


def test_combine_keeps_the_coarse_label_where_no_class_was_refined():
    probs = torch.tensor([[[0.0, 0.7]], [[0.0, 0.2]]])  # class 2 skipped, class 5 refined
    coarse = torch.tensor([[5, 2]])
    assert combine(probs, torch.tensor([2, 5]), coarse).tolist() == [[5, 2]]


# -- the network -----------------------------------------------------------------------------------

def test_groupnorm_needs_widths_divisible_by_32():
    with pytest.raises(ValueError, match="48"):
        DenoiseUNet(base=48, channel_mult=(1, 2), num_res_blocks=1, attention_strides=())
    for net in (DenoiseUNet(base=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_strides=()), _tiny_net()):
        norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
        assert norms and all(m.num_groups == 32 and m.num_channels % 32 == 0 for m in norms)


def test_texture_loss_weight_and_sobel_of_a_step():
    """BCE + 5 x L1 of the Sobel magnitudes; BCE of logit 0 is log 2; a flat map has magnitude sqrt(1e-4)."""
    gt = torch.zeros(1, 1, 8, 8)
    gt[..., 4:] = 1
    logits = torch.zeros(1, 1, 8, 8)
    total, parts = segrefiner_loss(logits, gt)
    assert parts["bce"] == pytest.approx(math.log(2), abs=1e-6)
    assert float(total) == pytest.approx(parts["bce"] + 5 * parts["texture"], abs=1e-6)
    # constant prediction 0.5: sobel magnitude sqrt(1e-4) away from the zero padding
    assert float(sobel(torch.full((1, 1, 8, 8), 0.5))[0, 0, 4, 4]) == pytest.approx(0.01, abs=1e-6)


# -- released layout -------------------------------------------------------------------------------

def _golden():
    return json.loads(GOLDEN.read_text())


def test_release_size_unet_has_the_released_keys_in_order():
    golden = _golden()["keys"]
    assert len(golden) == 453
    with torch.device("meta"):
        net = DenoiseUNet(4, RELEASED["base"], RELEASED["channel_mult"], RELEASED["num_res_blocks"],
                          RELEASED["attention_strides"], RELEASED["num_heads"], 0.0, RELEASED["steps"])
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == golden
    assert sum(math.prod(shape) for _, shape in golden) == 118_604_673


def _release_file(path: Path, keys: list[tuple[str, list[int]]], drop: str | None = None, extra: str | None = None) -> None:
    """An mmcv checkpoint in the release's layout: tensor i filled with i under ``denoise_model.``,
    the texture loss's Sobel kernels, ``meta`` and ``optimizer``."""
    state = {f"denoise_model.{k}": torch.full(shape, float(i)) for i, (k, shape) in enumerate(keys) if k != drop}
    for key in LOSS_KEYS:
        state[key] = torch.ones(1, 1, 3, 3)
    if extra:
        state[extra] = torch.zeros(1)
    torch.save({"meta": {"iter": 40000, "mmcv_version": "1.7.0"}, "state_dict": state, "optimizer": {}}, path)


def _release_structure(base: int) -> DenoiseUNet:
    return DenoiseUNet(4, base, RELEASED["channel_mult"], RELEASED["num_res_blocks"], RELEASED["attention_strides"],
                       RELEASED["num_heads"], 0.0, RELEASED["steps"])


def test_a_release_layout_file_loads_strictly_into_the_right_parameters(tmp_path):
    """The release's structure at width 32 (the same 453 names as the golden list, smaller shapes)."""
    net = _release_structure(32)
    keys = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert [k for k, _ in keys] == [k for k, _ in _golden()["keys"]]
    _release_file(tmp_path / "segrefiner_hr_latest.pth", keys)
    load_unet(net, tmp_path / "segrefiner_hr_latest.pth")
    for i, (k, v) in enumerate(net.state_dict().items()):
        assert torch.all(v == i), k


@pytest.mark.parametrize(("drop", "extra", "word"), [("middle_block.1.qkv.weight", None, "middle_block.1.qkv.weight"),
                                                     (None, "denoise_model.extra.weight", "extra.weight"),
                                                     (None, "loss_mask.weight", "loss_mask.weight")])
def test_a_release_layout_file_with_a_wrong_key_fails(tmp_path, drop, extra, word):
    net = _release_structure(32)
    keys = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    _release_file(tmp_path / "bad.pth", keys, drop=drop, extra=extra)
    with pytest.raises(RuntimeError, match=word.replace(".", r"\.")):
        load_unet(net, tmp_path / "bad.pth")


@pytest.mark.slow
def test_a_release_size_file_loads_strictly(tmp_path):
    """The full 118.6 M-parameter file (452 MiB): written from the golden list alone."""
    keys = [(k, shape) for k, shape in _golden()["keys"]]
    _release_file(tmp_path / "segrefiner_hr_latest.pth", keys)
    net = _release_structure(RELEASED["base"])
    load_unet(net, tmp_path / "segrefiner_hr_latest.pth")
    assert float(net.state_dict()["out.2.bias"]) == len(keys) - 1


# -- the method ------------------------------------------------------------------------------------

@pytest.fixture()
def method_factory(tmp_path):
    """Build SegRefiner on the tiny context with a random-weight tiny UNet saved as its checkpoint."""
    ctx = contract.tiny_context(tmp_path)
    opts = {"base_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_strides": (), "num_heads": 2,
            "model_size": 32, "min_pixels": 16}
    torch.save(_tiny_net().state_dict(), tmp_path / CHECKPOINT)

    def make(**more):
        return SegRefiner(SegRefinerConfig(**{**opts, **more}), ctx), ctx

    return make


def _coarse(ctx, seed: int = 0) -> tuple[np.ndarray, Coarse]:
    sample = contract.TinyDataset()[seed]
    probs = torch.nn.functional.one_hot(torch.as_tensor(sample.label[::4, ::4].astype(np.int64)).clamp(max=3), 4)
    return sample.image, Coarse(probs.permute(2, 0, 1).float())


def test_seeded_sampling_reproduces_and_seeds_differ(method_factory):
    method, ctx = method_factory()
    image, coarse = _coarse(ctx)
    mask = coarse.probs.argmax(0).repeat_interleave(4, 0).repeat_interleave(4, 1) == 1
    a = method.refine_binary(image, mask, 7)
    assert torch.equal(a, method.refine_binary(image, mask, 7))
    others = [method.refine_binary(image, mask, s) for s in (8, 9, 10)]
    assert any(not torch.equal(a, o) for o in others)  # random weights: many unsure pixels
    assert torch.equal(method.refine(image, coarse), method.refine(image, coarse))


def test_samples_average_seeds_and_report_a_spread(method_factory):
    one, ctx = method_factory()
    two, _ = method_factory(samples=2)
    second, _ = method_factory(sample_seed=1)
    image, coarse = _coarse(ctx, 1)
    labels = upsampled_labels(coarse.probs, image.shape[:2])  # the coarse labels refine starts from
    classes = torch.unique(labels)
    runs = []
    for m in (one, second):
        per_class = []
        for c in classes:
            per_class.append(m.refine_binary(image, labels == c, mask_seed(m.cfg.sample_seed, image_key(image, labels), int(c))))
        runs.append(torch.stack(per_class))
    expected = combine((runs[0] + runs[1]) / 2, classes, labels)
    assert torch.equal(two.refine(image, coarse), expected)
    assert two.last_spread is not None and one.last_spread is None
    one.refine(image, coarse)
    assert one.last_spread is None


def test_one_coarse_class_is_kept_without_a_forward(method_factory, monkeypatch):
    method, ctx = method_factory()
    image, _ = _coarse(ctx)
    probs = torch.zeros(4, 16, 32)
    probs[2] = 1
    monkeypatch.setattr(method.net, "forward", lambda *a: (_ for _ in ()).throw(AssertionError("forward called")))
    assert torch.equal(method.refine(image, Coarse(probs)), torch.full((64, 128), 2))


@pytest.mark.slow
def test_method_contract(tmp_path):
    ctx = contract.tiny_context(tmp_path)
    dataset = contract.TinyDataset()
    method = contract.build("segrefiner", SegRefiner, ctx, dataset)
    contract.check_class("segrefiner", SegRefiner)
    contract.check_refine("segrefiner", SegRefiner, method, ctx, dataset)


def test_object_only_refines_class_1_alone_and_thresholds_at_one_half(method_factory, monkeypatch):
    method, ctx = method_factory(object_only=True)
    image, _ = _coarse(ctx)
    probs = torch.zeros(2, 16, 32)
    probs[1, :, 10:20] = 1
    probs[0] = 1 - probs[1]
    seen = []

    def fake(image, mask, seed):
        seen.append(mask.clone())
        out = torch.zeros(mask.shape)
        out[:, 40:60] = 0.5  # exactly one half counts as object (the release's >= 0.5)
        out[:, 60:80] = 0.49
        return out

    monkeypatch.setattr(method, "refine_binary", fake)
    labels = method.refine(image, Coarse(probs))
    assert len(seen) == 1 and torch.equal(seen[0], upsampled_labels(probs, (64, 128)) == 1)
    expected = torch.zeros(64, 128, dtype=torch.int64)
    expected[:, 40:60] = 1
    assert torch.equal(labels, expected)
