"""The refinement track's options on given (one-hot) coarse masks: CascadePSP's ``object_only``
(the release's BIG protocol) and DenseCRF's ``label_confidence`` (hard labels softened)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from baselines.cascadepsp.method import CascadePSP, CascadePSPConfig
from baselines.common.per_class import combine
from bench.core.interface import Coarse
from bench.core.config import config_from_mapping

H, W = 64, 128


class _Ramp(torch.nn.Module):
    """Answers a left-to-right ramp p[j] = j / (W - 1) whatever the mask; records the masks."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x, seg, inter_s8=None, inter_s4=None):
        self.seen.append(seg.clone())
        p = torch.linspace(0, 1, seg.shape[-1]).expand_as(seg).clone()
        return {"pred_224": p, "pred_28_3": p, "pred_56_2": p}


def _cascadepsp(ctx, **cfg) -> CascadePSP:
    method = CascadePSP.__new__(CascadePSP)
    # L = the image's longer side and no local step: the ramp reaches the output unresized
    config = CascadePSPConfig(L=W, local_step=False, **cfg)
    method.cfg, method.ctx, method.device, method.net = config, ctx, ctx.device, _Ramp()
    return method


def _binary_coarse() -> Coarse:
    probs = torch.zeros(2, H, W)
    probs[1, 16:48, 20:100] = 1
    probs[0] = 1 - probs[1]
    return Coarse(probs)


def test_cascadepsp_object_only_thresholds_the_object_probability_as_the_release(tiny_ctx):
    image = np.zeros((H, W, 3), np.uint8)
    coarse = _binary_coarse()
    method = _cascadepsp(tiny_ctx, object_only=True)
    labels = method.refine(image, coarse)
    # one forward, on the object's mask (seg in [-1, 1]) only
    assert len(method.net.seen) == 1
    assert torch.equal(method.net.seen[0][0, 0], coarse.probs[1] * 2 - 1)
    # the release: eval.py saves uint8(p * 255), eval_post.py keeps > 128
    ramp = np.linspace(0, 1, W, dtype=np.float32)
    expected = np.broadcast_to((ramp * 255).astype(np.uint8) > 128, (H, W))
    assert labels.dtype == torch.int64
    np.testing.assert_array_equal(labels.numpy(), expected.astype(np.int64))
    # column 64 has p = 64/127 > 0.5 but its 8-bit value is 128: not object (a >= 0.5 rule fails here)
    assert int(labels[0, 64]) == 0 and int(labels[0, 65]) == 1


def test_cascadepsp_default_refines_both_classes_and_takes_the_argmax(tiny_ctx):
    image = np.zeros((H, W, 3), np.uint8)
    coarse = _binary_coarse()
    method = _cascadepsp(tiny_ctx)
    labels = method.refine(image, coarse)
    # both masks refined; both get the same ramp, so the tie goes to class 0 everywhere
    assert len(method.net.seen) == 2
    ramp = torch.linspace(0, 1, W).expand(2, H, W)
    assert torch.equal(labels, combine(ramp, torch.tensor([0, 1]), coarse.labels))
    assert bool((labels == 0).all())
    # object_only on a set of more than two classes changes nothing
    probs = torch.zeros(3, H, W)
    probs[0, :, :40], probs[1, :, 40:90], probs[2, :, 90:] = 1, 1, 1
    a = _cascadepsp(tiny_ctx).refine(image, Coarse(probs))
    b = _cascadepsp(tiny_ctx, object_only=True).refine(image, Coarse(probs))
    assert torch.equal(a, b)


def _edge_case() -> tuple[np.ndarray, torch.Tensor]:
    """Red left of column 64, blue right of it; the given mask puts the object edge at column 48."""
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :64] = (200, 30, 30)
    image[:, 64:] = (30, 30, 200)
    probs = torch.zeros(2, H, W)
    probs[1, :, 48:] = 1
    probs[0] = 1 - probs[1]
    return image, probs


def _densecrf(ctx, **options):
    from baselines.densecrf import DenseCRF

    # a Potts weight of 3 (pydensecrf's example uses 10 with hard labels): at the default 1 this
    # small image's bilateral messages stay below the softened unary
    return DenseCRF(config_from_mapping(DenseCRF.Config, {"n_iters": 10, "bilateral_compat": 3.0, **options}),
                    dataclasses.replace(ctx, num_classes=2))


def test_densecrf_label_confidence_moves_a_one_hot_mask_to_the_colour_edge(tiny_ctx):
    image, probs = _edge_case()
    coarse_labels = probs.argmax(0)
    plain = _densecrf(tiny_ctx).refine(image, Coarse(probs))
    assert torch.equal(plain, coarse_labels)  # the one-hot unary pins every pixel
    soft = _densecrf(tiny_ctx, label_confidence=0.7).refine(image, Coarse(probs))
    # the wrongly labelled red strip (columns 48..63) goes back to the background, the rest stays
    assert bool((soft[:, 48:64] == 0).all()) and bool((soft[:, 64:] == 1).all()) and bool((soft[:, :48] == 0).all())


def test_densecrf_label_confidence_leaves_soft_maps_alone(tiny_ctx):
    from baselines.densecrf import soften_labels

    image, probs = _edge_case()
    soft = probs * 0.8 + 0.1
    a = _densecrf(tiny_ctx).refine(image, Coarse(soft))
    b = _densecrf(tiny_ctx, label_confidence=0.7).refine(image, Coarse(soft))
    assert torch.equal(a, b)
    assert soften_labels(soft, 0.7) is soft
    three = torch.zeros(3, 2, 2)
    three[1] = 1
    out = soften_labels(three, 0.6)
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.2, 0.6, 0.2]))
