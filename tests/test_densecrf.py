"""DenseCRF baseline: identical to calling pydensecrf directly, robust input handling, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from bench.core.config import config_from_mapping
from bench.core.interface import Coarse

import pydensecrf.densecrf as dcrf  # noqa: E402  (required by pyproject.toml: a broken install fails, never skips)
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "methods"


def _inputs(seed: int = 0, size: tuple[int, int] = (40, 56), classes: int = 4) -> tuple[np.ndarray, torch.Tensor]:
    """A blocky image whose colours follow the classes, and a blurry coarse map (C, h, w)."""
    rng = np.random.default_rng(seed)
    h, w = size
    label = np.kron(rng.integers(0, classes, (4, 4)), np.ones((h // 4, w // 4), np.int64))
    colours = rng.integers(0, 256, (classes, 3))
    image = np.clip(colours[label] + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    logits = torch.from_numpy(rng.normal(0, 1, (classes, h // 4, w // 4))).float()
    return image, torch.softmax(logits, 0)


def _direct(image: np.ndarray, probs: torch.Tensor, iters: int, gaussian: bool) -> np.ndarray:
    """The pydensecrf README sequence, written out with the supplement's values."""
    from pydensecrf.utils import unary_from_softmax

    h, w = image.shape[:2]
    p = F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
    d = dcrf.DenseCRF2D(w, h, p.shape[0])
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(p)))
    if gaussian:
        d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=256, srgb=13, rgbim=np.ascontiguousarray(image), compat=1)
    return np.array(d.inference(iters)).reshape(p.shape)


def _method(ctx, **options):
    from baselines.densecrf import DenseCRF

    return DenseCRF(config_from_mapping(DenseCRF.Config, options), ctx)


@pytest.mark.parametrize("gaussian", [False, True])
def test_identical_to_direct_pydensecrf(tiny_ctx, gaussian):
    from baselines.densecrf import crf_marginals, upsample_probs

    image, probs = _inputs()
    method = _method(tiny_ctx, n_iters=10, gaussian=gaussian)
    q_direct = _direct(image, probs, 10, gaussian)
    q_ours = crf_marginals(image, upsample_probs(probs, image.shape[:2]), method.cfg)
    np.testing.assert_array_equal(q_ours, q_direct)  # bit-identical
    out = method.refine(image, Coarse(probs))
    assert out.dtype == torch.int64 and out.shape == image.shape[:2]
    np.testing.assert_array_equal(out.numpy(), q_direct.argmax(0))
    # the CRF changes something, so the comparison is not between two copies of the coarse argmax
    up = upsample_probs(probs, image.shape[:2])
    assert (out.numpy() != up.argmax(0)).mean() > 0.01


def test_zero_steps_is_upsampled_coarse(tiny_ctx):
    """With no mean-field step Q = softmax(-unary): the argmax of the upsampled probabilities."""
    image, probs = _inputs(seed=1)
    out = _method(tiny_ctx, n_iters=0).refine(image, Coarse(probs)).numpy()
    up = F.interpolate(probs[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
    np.testing.assert_array_equal(out, up.argmax(0).numpy())


def test_non_contiguous_and_float64_inputs_are_handled(tiny_ctx):
    """pydensecrf raises "ndarray is not C-contiguous" for these; the method must not."""
    image, probs = _inputs(seed=2)
    method = _method(tiny_ctx, n_iters=5)
    expected = method.refine(image, Coarse(probs))
    flipped = np.ascontiguousarray(image[:, ::-1])[:, ::-1]  # a negative-stride view with the same pixels
    assert not flipped.flags.c_contiguous
    assert torch.equal(method.refine(flipped, Coarse(probs.double())), expected)
    assert torch.equal(method.refine(image, Coarse(probs.permute(0, 2, 1).contiguous().permute(0, 2, 1))), expected)


def test_bad_inputs_give_clear_errors(tiny_ctx):
    image, probs = _inputs(seed=3)
    method = _method(tiny_ctx, n_iters=1)
    with pytest.raises(ValueError, match="uint8"):
        method.refine(image.astype(np.float32), Coarse(probs))
    with pytest.raises(ValueError, match="uint8"):
        method.refine(image[..., 0], Coarse(probs))
    with pytest.raises(ValueError, match="coarse"):
        method.refine(image, None)
    with pytest.raises(ValueError, match="C=4"):
        method.refine(image, Coarse(probs[:3]))
    with pytest.raises(ValueError, match="n_iters"):
        _method(tiny_ctx, n_iters=-1)


def test_yaml_config_is_the_supplement_setting_and_cpu_only(tiny_ctx):
    from baselines.densecrf import DenseCRF

    values = yaml.safe_load((CONFIGS / "densecrf.yaml").read_text())
    assert "version" not in values  # the version is the class attribute alone (part of the run key)
    cfg = config_from_mapping(DenseCRF.Config, values)
    assert cfg == DenseCRF.Config()
    supplement = (50, 256, 13, 1, False)
    assert (cfg.n_iters, cfg.bilateral_sxy, cfg.bilateral_srgb, cfg.bilateral_compat, cfg.gaussian) == supplement
    assert DenseCRF.cpu_only and DenseCRF.uses_coarse and DenseCRF.checkpoints(cfg, tiny_ctx) == {}
