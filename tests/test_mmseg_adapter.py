"""The mmsegmentation adapter: building, input mapping, outputs, checkpoints, point_sample shim."""

from __future__ import annotations

import fractions
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import mmcv  # noqa: E402, F401  (required by pyproject.toml: a broken install fails, never skips)
import mmengine  # noqa: E402, F401
import mmseg  # noqa: E402, F401

from bench.models.backbones import create_backbone  # noqa: E402
from bench.models.backbones.mmseg_adapter import MMSegBackbone, read_mmseg_checkpoint, resolve_config  # noqa: E402
from bench.models.backbones.point_sample import install_point_sample_shim, point_sample  # noqa: E402
from bench.core.interface import normalize  # noqa: E402

DEEPLAB = "deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py"
OCRNET = "ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py"
CGNET = "cgnet/cgnet_fcn_4xb4-60k_cityscapes-680x680.py"  # 0.5 M parameters, its own mean, std 1
C = 7


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP barriers of 2 threads stall badly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def deeplab() -> MMSegBackbone:
    torch.manual_seed(0)
    return create_backbone(f"mmseg:{DEEPLAB}", C).eval()


@pytest.fixture(scope="module")
def ocrnet() -> MMSegBackbone:
    torch.manual_seed(0)
    return create_backbone(f"mmseg:{OCRNET}", C).eval()


@pytest.fixture(scope="module")
def cgnet() -> MMSegBackbone:
    torch.manual_seed(0)
    return create_backbone(f"mmseg:{CGNET}", C).eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)


def _mmseg_preprocess(model: MMSegBackbone, image: np.ndarray) -> torch.Tensor:
    """What mmseg's own pipeline feeds the backbone: mmcv loads BGR uint8, then the data preprocessor."""
    bgr = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1)
    return model.model.data_preprocessor(dict(inputs=[bgr]), False)["inputs"]


def _backbone_input(model: MMSegBackbone, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = model.model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


def test_deeplab_logits_features_and_heads(deeplab: MMSegBackbone, image: np.ndarray) -> None:
    assert deeplab.num_classes == C
    assert deeplab.model.decode_head.conv_seg.out_channels == C
    assert deeplab.model.auxiliary_head.conv_seg.out_channels == C
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in deeplab.modules())
    assert deeplab.align_corners is False
    x = normalize(image)
    with torch.no_grad():
        logits = deeplab(x)
        logits2, feats = deeplab.forward_features(x)
    assert logits.shape == (1, C, 64, 128)
    assert torch.equal(logits, logits2)
    assert feats["fine"].shape == (1, 256, 16, 32)  # ResNet layer1, stride 4
    assert feats["fine"] is feats["feat0"] and feats["feat3"].shape == (1, 2048, 8, 16)
    assert feats["aux_logits"].shape == (1, C, 64, 128)


def test_no_double_normalisation(deeplab: MMSegBackbone, image: np.ndarray) -> None:
    x = normalize(image)
    expected = _mmseg_preprocess(deeplab, image)
    assert deeplab.input_map.identity
    seen = _backbone_input(deeplab, x)
    torch.testing.assert_close(seen, expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        raw = deeplab.model.encode_decode(expected, [dict(img_shape=(64, 128), pad_shape=(64, 128))])
        ours = deeplab(x)
    scale = raw.abs().max()
    torch.testing.assert_close(ours / scale, raw / scale, atol=1e-5, rtol=0)


def test_other_preprocessors_are_mapped_exactly(cgnet: MMSegBackbone, image: np.ndarray) -> None:
    assert not cgnet.input_map.identity  # CGNet: mean (72.4, 82.9, 73.2), std 1, RGB
    seen = _backbone_input(cgnet, normalize(image))
    torch.testing.assert_close(seen, _mmseg_preprocess(cgnet, image), atol=1e-3, rtol=0)
    options = {"model.data_preprocessor.bgr_to_rgb": False, "model.data_preprocessor.mean": [100.0, 110.0, 120.0],
               "model.data_preprocessor.std": [50.0, 60.0, 70.0]}
    bgr_model = create_backbone(f"mmseg:{CGNET}", C, cfg_options=options, init_weights=False).eval()
    assert bgr_model.input_map.perm == [2, 1, 0]
    seen = _backbone_input(bgr_model, normalize(image))
    torch.testing.assert_close(seen, _mmseg_preprocess(bgr_model, image), atol=1e-4, rtol=0)


def test_cascade_model_matches_encode_decode(ocrnet: MMSegBackbone) -> None:
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        logits, feats = ocrnet.forward_features(x)
        raw = ocrnet.model.encode_decode(x, [dict(img_shape=(32, 64), pad_shape=(32, 64))] * 2)
    assert logits.shape == (2, C, 32, 64)
    assert torch.equal(logits, raw)
    assert feats["fine"].shape == (2, 18, 8, 16)
    assert [feats[f"feat{i}"].shape[1] for i in range(4)] == [18, 36, 72, 144]
    assert ocrnet.align_corners is False


def test_checkpoint_round_trip_with_numpy_meta(cgnet: MMSegBackbone, tmp_path: Path) -> None:
    path = tmp_path / "zoo.pth"
    meta = {"dataset_meta": {"classes": tuple("abcdefg")}, "best_miou": np.float64(0.5), "hist": np.arange(3)}
    torch.save({"state_dict": cgnet.model.state_dict(), "meta": meta}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # why the adapter needs its numpy allow-list
    loaded = create_backbone(f"mmseg:{CGNET}", C, checkpoint=path).eval()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), cgnet(x))
    own = tmp_path / "own.pth"
    torch.save(loaded.state_dict(), own)  # our own state dict: keys under "model."
    again = create_backbone(f"mmseg:{CGNET}", C, checkpoint=own).eval()
    with torch.no_grad():
        assert torch.equal(again(x), cgnet(x))


def test_checkpoint_key_problems_are_reported(cgnet: MMSegBackbone, tmp_path: Path) -> None:
    state = dict(cgnet.model.state_dict())
    del state["decode_head.conv_seg.weight"]
    state["decode_head.9.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): \['decode_head.conv_seg.weight'\].*decode_head.9.extra"):
        create_backbone(f"mmseg:{CGNET}", C, checkpoint=path)
    with pytest.warns(UserWarning, match="partial load"):
        model = MMSegBackbone(CGNET, C, checkpoint=path, strict=False)
    assert model.load_report["missing"] == ["decode_head.conv_seg.weight"]
    assert model.load_report["unexpected"] == ["decode_head.9.extra"]
    torch.save({"state_dict": state, "meta": {"x": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(pickle.UnpicklingError, match="fractions.Fraction"):
        read_mmseg_checkpoint(path)


def test_config_resolution(tmp_path: Path) -> None:
    assert resolve_config(DEEPLAB.removesuffix(".py")).name == Path(DEEPLAB).name
    with pytest.raises(FileNotFoundError, match="deeplabv3plus"):
        resolve_config("deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscape-512x1024")


def test_bad_input_is_rejected(deeplab: MMSegBackbone) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        deeplab(torch.zeros(1, 3, 8, dtype=torch.float32))


def test_point_sample_hand_values() -> None:
    grid = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    # align_corners=False: pixel centres at 0.25 / 0.75; the map centre averages all four.
    pts = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5], [0.5, 0.25]]])
    torch.testing.assert_close(point_sample(grid, pts), torch.tensor([[[1.0, 2.0, 3.0, 2.5, 1.5]]]))
    # align_corners=True: corners at 0 / 1.
    pts = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.5, 0.5]]])
    torch.testing.assert_close(point_sample(grid, pts, align_corners=True), torch.tensor([[[1.0, 4.0, 2.0, 2.5]]]))
    pts4 = torch.tensor([[[[0.25, 0.25], [0.75, 0.75]]]])  # (1, 1, 2, 2) grid form
    assert point_sample(grid, pts4).shape == (1, 1, 1, 2)
    with pytest.raises(ValueError, match="points"):
        point_sample(grid, torch.zeros(1, 3, 3))


def test_point_sample_shim_installed() -> None:
    install_point_sample_shim()
    import mmseg.models.decode_heads.point_head as point_head

    assert point_head.point_sample is not None
    assert install_point_sample_shim() == []  # idempotent


@pytest.mark.slow
def test_pointrend_builds_and_predicts() -> None:
    model = create_backbone("mmseg:point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py", C).eval()
    with torch.no_grad():
        logits, feats = model.forward_features(torch.randn(1, 3, 64, 128))
    assert logits.shape == (1, C, 64, 128)
    assert feats["fine"].shape == (1, 256, 16, 32)
