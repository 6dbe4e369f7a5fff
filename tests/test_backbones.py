"""MagNet's released backbones as our own modules: key layout, counts, loading, forward contract.

Counts and key names come from spec magnet.md §3.1 (probed on the official classes). Structure
checks build on the meta device (no memory, no init cost); forward checks use tiny inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.models.backbones import create_backbone
from bench.models.backbones.hrnet_ocr import HRNetOCR, spatial_gather
from bench.models.backbones.resnet import ResNet, load_imagenet_weights, resnet50

SPEC_COUNTS = {
    # name: (num_classes, state-dict entries, parameters) from spec §3.1
    "hrnet18_small_v2_ocr": (19, 924, 6_379_278),
    "resnet50_fpn": (7, 344, 28_064_839),
    "pspnet_resnet101": (5, 658, 72_319_501),
}

REPRESENTATIVE_KEYS = {
    "hrnet18_small_v2_ocr": {
        "conv1.weight": (64, 3, 3, 3),
        "bn2.running_var": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.1.conv3.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (18, 256, 3, 3),
        "transition1.1.0.0.weight": (36, 256, 3, 3),
        "transition3.3.0.0.weight": (144, 72, 3, 3),
        "stage2.0.branches.1.1.conv2.weight": (36, 36, 3, 3),
        "stage3.2.fuse_layers.0.2.0.weight": (18, 72, 1, 1),
        "stage4.1.fuse_layers.3.0.1.0.weight": (18, 18, 3, 3),
        "stage4.1.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
        "stage4.1.fuse_layers.3.2.0.1.num_batches_tracked": (),
        "conv3x3_ocr.0.weight": (512, 270, 3, 3),
        "conv3x3_ocr.0.bias": (512,),
        "ocr_distri_head.object_context_block.f_pixel.0.weight": (256, 512, 1, 1),
        "ocr_distri_head.object_context_block.f_pixel.3.0.running_mean": (256,),
        "ocr_distri_head.object_context_block.f_object.2.weight": (256, 256, 1, 1),
        "ocr_distri_head.object_context_block.f_down.1.0.weight": (256,),
        "ocr_distri_head.object_context_block.f_up.0.weight": (512, 256, 1, 1),
        "ocr_distri_head.conv_bn_dropout.0.weight": (512, 1024, 1, 1),
        "ocr_distri_head.conv_bn_dropout.1.0.bias": (512,),
        "cls_head.weight": (19, 512, 1, 1),
        "cls_head.bias": (19,),
        "aux_head.0.weight": (270, 270, 1, 1),
        "aux_head.1.running_var": (270,),
        "aux_head.3.weight": (19, 270, 1, 1),
    },
    "resnet50_fpn": {
        "resnet_backbone.conv1.weight": (64, 3, 7, 7),
        "resnet_backbone.layer1.0.downsample.1.running_mean": (256,),
        "resnet_backbone.layer2.0.conv2.weight": (128, 128, 3, 3),
        "resnet_backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "toplayer.weight": (256, 2048, 1, 1),
        "latlayer1.weight": (256, 1024, 1, 1),
        "latlayer3.bias": (256,),
        "smooth1_1.weight": (256, 256, 3, 3),
        "smooth4_2.weight": (128, 256, 3, 3),
        "classify.weight": (7, 512, 3, 3),
        "classify.bias": (7,),
    },
    "pspnet_resnet101": {
        "feats.conv1.weight": (64, 3, 7, 7),
        "feats.layer3.22.conv3.weight": (1024, 256, 1, 1),
        "psp.stages.0.1.weight": (2048, 2048, 1, 1),
        "psp.stages.3.1.weight": (2048, 2048, 1, 1),
        "psp.bottleneck.weight": (1024, 10240, 1, 1),
        "psp.bottleneck.bias": (1024,),
        "up_1.conv.0.weight": (256, 1024, 3, 3),
        "up_1.conv.1.running_var": (256,),
        "up_1.conv.2.weight": (1,),
        "up_3.conv.0.weight": (64, 64, 3, 3),
        "final.weight": (5, 64, 1, 1),
        "final.bias": (5,),
        "classifier.weight": (5, 2048, 1, 1),
    },
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP barriers of 2 threads stall badly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _meta_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return create_backbone(name, SPEC_COUNTS[name][0])


@pytest.mark.parametrize("name", list(SPEC_COUNTS))
def test_state_dict_and_parameter_counts_match_spec(name: str) -> None:
    model = _meta_model(name)
    _, entries, params = SPEC_COUNTS[name]
    assert len(model.state_dict()) == entries
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.num_classes == SPEC_COUNTS[name][0]


@pytest.mark.parametrize("name", list(SPEC_COUNTS))
def test_representative_keys_and_shapes(name: str) -> None:
    state = _meta_model(name).state_dict()
    for key, shape in REPRESENTATIVE_KEYS[name].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key


def test_key_groups() -> None:
    hr = _meta_model("hrnet18_small_v2_ocr").state_dict()
    tops = {k.split(".")[0] for k in hr}
    assert tops == {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3",
                    "stage2", "stage3", "stage4", "conv3x3_ocr", "ocr_distri_head", "cls_head", "aux_head"}
    assert not any(k.startswith("ocr_gather_head") for k in hr)
    fpn = _meta_model("resnet50_fpn").state_dict()
    assert sum(k.startswith("resnet_backbone.") for k in fpn) == 318
    assert not any(k.startswith("resnet_backbone.fc") for k in fpn)
    psp = _meta_model("pspnet_resnet101").state_dict()
    assert sum(k.startswith("feats.") for k in psp) == 624


def test_bn_momentum_as_released() -> None:
    fpn = _meta_model("resnet50_fpn")
    body = fpn.resnet_backbone
    assert body.bn1.momentum == 0.1 and body.layer1[0].downsample[1].momentum == 0.1
    assert body.layer1[0].bn1.momentum == 0.01 and body.layer4[2].bn3.momentum == 0.01
    hr = _meta_model("hrnet18_small_v2_ocr")
    assert hr.bn1.momentum == 0.01 and hr.stage4[1].fuse_layers[0][1][1].momentum == 0.01
    assert hr.aux_head[1].momentum == 0.1


@pytest.fixture(scope="module")
def hrnet() -> HRNetOCR:
    torch.manual_seed(0)
    model = create_backbone("hrnet18_small_v2_ocr", 19).eval()
    _randomise_bn(model)
    return model


def _randomise_bn(model: torch.nn.Module) -> None:
    """Give BN layers non-trivial statistics so that outputs depend on every buffer."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def test_hrnet_stride1_stem_keeps_input_resolution(hrnet: HRNetOCR) -> None:
    x = torch.randn(1, 3, 16, 32)
    with torch.no_grad():
        logits, feats = hrnet.forward_features(x)
    assert hrnet.full_os
    assert feats["branch0"].shape == (1, 18, 16, 32)
    assert feats["branch3"].shape == (1, 144, 2, 4)
    assert feats["fine"].shape == (1, 270, 16, 32)
    assert logits.shape == (1, 19, 16, 32)
    upstream = create_backbone("hrnet18_small_v2_ocr", 19, full_os=False).eval()
    with torch.no_grad():
        logits4, feats4 = upstream.forward_features(torch.randn(1, 3, 32, 64))
    assert feats4["branch0"].shape == (1, 18, 8, 16)
    assert logits4.shape == (1, 19, 32, 64)


def test_hrnet_combination_equals_heads(hrnet: HRNetOCR) -> None:
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        main, aux = hrnet.forward_heads(x)
        out = hrnet(x)
        logits, feats = hrnet.forward_features(x)
    assert main.shape == aux.shape == out.shape == (2, 19, 16, 24)
    assert not torch.allclose(main, aux)
    torch.testing.assert_close(out, (main + 0.4 * aux) / 1.4)
    torch.testing.assert_close(logits, out)
    torch.testing.assert_close(feats["main_logits"], main)
    torch.testing.assert_close(feats["aux_logits"], aux)


def test_spatial_gather_matches_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 3, 4, generator=gen)
    logits = torch.randn(2, 3, 3, 4, generator=gen)
    out = spatial_gather(feats, logits)
    assert out.shape == (2, 5, 3, 1)
    for n in range(2):
        for k in range(3):
            w = torch.exp(logits[n, k]) / torch.exp(logits[n, k]).sum()
            expected = (feats[n] * w).sum(dim=(1, 2))
            torch.testing.assert_close(out[n, :, k, 0], expected)


def _released_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Write a state dict the way MagNet's backbone trainer does (FullModel wrapper)."""
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    state["loss.criterion.weight"] = torch.ones(model.num_classes)
    torch.save(state, path)


def test_hrnet_strict_load_of_released_layout(hrnet: HRNetOCR, tmp_path: Path) -> None:
    path = tmp_path / "cityscapes_hrnet.pth"
    _released_checkpoint(hrnet, path)
    loaded = create_backbone("hrnet18_small_v2_ocr", 19, checkpoint=path).eval()
    got = loaded.state_dict()
    for key, value in hrnet.state_dict().items():
        assert torch.equal(got[key], value), key
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), hrnet(x))


@pytest.mark.parametrize(("name", "classes", "seed", "file"), [
    ("resnet50_fpn", 7, 1, "deepglobe_fpn.pth"),
    pytest.param("pspnet_resnet101", 5, 2, "gleason_psp.pth", marks=pytest.mark.slow),
])
def test_strict_load_of_released_layout(name: str, classes: int, seed: int, file: str, tmp_path: Path) -> None:
    torch.manual_seed(seed)
    model = create_backbone(name, classes).eval()
    path = tmp_path / file
    _released_checkpoint(model, path)
    loaded = create_backbone(name, classes, checkpoint=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_corrupted_key_set_is_listed(hrnet: HRNetOCR, tmp_path: Path) -> None:
    state = {f"model.{k}": v for k, v in hrnet.state_dict().items()}
    del state["model.cls_head.weight"]
    state["model.last_layer.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    expected = r"missing keys \(1\): \['cls_head.weight'\].*unexpected keys \(1\): \['last_layer.weight'\]"
    with pytest.raises(RuntimeError, match=expected):
        create_backbone("hrnet18_small_v2_ocr", 19, checkpoint=path)
    state = {f"model.{k}": v for k, v in hrnet.state_dict().items()}
    state["model.cls_head.weight"] = torch.zeros(7, 512, 1, 1)
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="shape mismatch: cls_head.weight"):
        create_backbone("hrnet18_small_v2_ocr", 19, checkpoint=path)


@pytest.mark.parametrize(("name", "classes", "size"), [("resnet50_fpn", 7, (50, 70)), ("pspnet_resnet101", 5, (40, 72))])
def test_forward_output_at_input_size(name: str, classes: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, classes).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        out = model(x)
        logits, feats = model.forward_features(x)
    assert out.shape == (1, classes, *size)
    assert torch.equal(out, logits)
    h4, w4 = feats["c2"].shape[-2:]
    assert (h4, w4) == (-(-size[0] // 4), -(-size[1] // 4))
    if name == "resnet50_fpn":
        assert feats["fine"] is feats["c2"] and feats["fine"].shape[1] == 256
        assert feats["fpn"].shape == (1, 512, h4, w4)
    else:
        assert feats["fine"] is feats["c5"] and feats["fine"].shape[1] == 2048
        main, aux = model.forward_heads(x)
        torch.testing.assert_close(out, (main + 0.4 * aux) / 1.4)
        torch.testing.assert_close(feats["aux_logits"], aux)


def test_bad_input_is_rejected(hrnet: HRNetOCR) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        hrnet(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="float"):
        hrnet(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def _torchvision_layout(body: ResNet) -> dict[str, torch.Tensor]:
    """What torchvision's resnet50 file holds: body + fc, without num_batches_tracked (old files)."""
    state = {k: v.clone() for k, v in body.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.randn(1000, 2048)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_imagenet_weights_load_into_fpn(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = resnet50()
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save(_torchvision_layout(source), path)
    model = create_backbone("resnet50_fpn", 7, imagenet_checkpoint=path)
    got = model.resnet_backbone.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(got[key], value), key
    broken = _torchvision_layout(source)
    del broken["layer3.5.bn2.running_var"]
    broken["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(broken, path)
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): \['layer3.5.bn2.running_var'\].*layer5.0.conv1.weight"):
        load_imagenet_weights(resnet50(), path)


def test_resnet_strides() -> None:
    body = ResNet((1, 1, 1, 1)).eval()
    with torch.no_grad():
        c2, c3, c4, c5 = body(torch.randn(1, 3, 64, 96))
    assert c2.shape == (1, 256, 16, 24)
    assert c3.shape == (1, 512, 8, 12)
    assert c4.shape == (1, 1024, 4, 6)
    assert c5.shape == (1, 2048, 2, 3)


def test_hrnet_imagenet_body_loading(tmp_path: Path) -> None:
    torch.manual_seed(4)
    source = HRNetOCR(19)
    state = {k: v.clone() + 1 for k, v in source.state_dict().items()
             if not k.startswith(("conv3x3_ocr", "ocr_distri_head", "cls_head", "aux_head"))}
    state["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 18, 1, 1)
    state["classifier.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "hrnet_w18_small_v2_imagenet.pth"
    torch.save(state, path)
    model = create_backbone("hrnet18_small_v2_ocr", 19, imagenet_checkpoint=path)
    fresh = model.state_dict()
    assert torch.equal(fresh["stage4.1.branches.3.1.conv2.weight"], state["stage4.1.branches.3.1.conv2.weight"])
    assert torch.equal(fresh["conv1.weight"], state["conv1.weight"])
    del state["stage3.0.branches.0.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="stage3.0.branches.0.0.conv1.weight"):
        create_backbone("hrnet18_small_v2_ocr", 19, imagenet_checkpoint=path)


# ---------------------------------------------------------------- inference copy (BN folded, channels-last)
def _plain(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    before = model.inference_copy
    model.inference_copy = False
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.inference_copy = before


def test_inference_copy_is_opt_in() -> None:
    """Folding BN moves labels at near-ties, so the default forward stays the plain one."""
    assert create_backbone("hrnet18_small_v2_ocr", 19).inference_copy is False
    assert create_backbone("hrnet18_small_v2_ocr", 19, inference_copy=True).inference_copy is True


def test_fold_batchnorm_folds_every_pair_and_keeps_the_function(hrnet: HRNetOCR) -> None:
    from bench.models.backbones.fold import count_batchnorms, fold_batchnorm

    before = {k: v.clone() for k, v in hrnet.state_dict().items()}
    folded = fold_batchnorm(hrnet)
    assert count_batchnorms(hrnet) == 153 and count_batchnorms(folded) == 0 and folded.folded_pairs == 153
    after = hrnet.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # the original is untouched
    x = torch.randn(2, 3, 16, 24)
    folded.inference_copy = False
    with torch.no_grad():
        ref, got = _plain(hrnet, x), folded(x)
    assert not torch.equal(ref, got)  # the weights did change (non-trivial BN statistics)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_fold_matches_on_the_light_and_fpn_backbones() -> None:
    from bench.models.backbones.fold import count_batchnorms, fold_batchnorm

    for name, classes in (("resnet50_fpn", 7), ("light", 3)):
        torch.manual_seed(2)
        model = create_backbone(name, classes).eval()
        _randomise_bn(model)
        folded = fold_batchnorm(model)
        assert count_batchnorms(folded) == 0
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_inference_copy_only_in_eval_without_grad_and_rebuilt_on_new_weights(hrnet: HRNetOCR) -> None:
    hrnet.inference_copy = True
    x = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        out = hrnet(x)
    copy_ = hrnet._inference.model
    assert copy_ is not None and out.is_contiguous()
    assert copy_.conv3x3_ocr[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert copy_.conv3x3_ocr[0].bias is not None and isinstance(copy_.conv3x3_ocr[1], torch.nn.Identity)
    torch.testing.assert_close(out, _plain(hrnet, x), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        hrnet(x)
    assert hrnet._inference.model is copy_  # cached
    # new weights (in place, as load_state_dict does) -> a new copy that follows them
    state = {k: v.clone() for k, v in hrnet.state_dict().items()}
    changed = dict(state, **{"cls_head.bias": state["cls_head.bias"] + 1.0})
    try:
        hrnet.load_state_dict(changed)
        with torch.no_grad():
            moved = hrnet(x)
        assert hrnet._inference.model is not copy_
        torch.testing.assert_close(moved, _plain(hrnet, x), atol=1e-4, rtol=1e-4)
        assert (moved - out).abs().min() > 0.5
    finally:
        hrnet.load_state_dict(state)
    # with gradients (training, refiner features) the plain forward runs
    y = hrnet(x.clone().requires_grad_(True))
    assert y.requires_grad and y.grad_fn is not None
    torch.testing.assert_close(y.detach(), _plain(hrnet, x))


def test_in_place_fuse_sums_are_bit_identical_to_out_of_place(hrnet: HRNetOCR) -> None:
    """HRNet's fusion adds in place: same bits as terms summed in branch order out of place."""
    from bench.models.backbones.hrnet_ocr import _upsample

    module = hrnet.stage4[0]
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(1, c, 16 >> i, 24 >> i, generator=gen) for i, c in enumerate((18, 36, 72, 144))]
    with torch.no_grad():
        got = module([x.clone() for x in xs])
        branches = [b(x.clone()) for b, x in zip(module.branches, xs)]
        for i, row in enumerate(module.fuse_layers):
            terms = [branches[j] if j == i else layer(branches[j]) if j < i
                     else _upsample(layer(branches[j]), branches[i].shape[-2:]) for j, layer in enumerate(row)]
            y = terms[0]
            for t in terms[1:]:
                y = y + t
            assert torch.equal(got[i], torch.relu(y))


def test_inference_copy_labels_on_a_real_image() -> None:
    """Plain forward against the inference copy on a Cityscapes frame resized to 128x64 (random
    weights, BN calibrated on the frame): labels agree except at float-rounding near-ties."""
    import cv2
    import numpy as np
    from conftest import shared_data

    from bench.core.interface import normalize
    from perf.core import calibrated_backbone

    frames = sorted(shared_data("cityscapes", "leftImg8bit").rglob("*_leftImg8bit.png"))
    if not frames:
        pytest.skip("no Cityscapes frame under ../shared/data")
    image = cv2.cvtColor(cv2.imread(str(frames[0])), cv2.COLOR_BGR2RGB)
    x = normalize(cv2.resize(image, (128, 64), interpolation=cv2.INTER_LINEAR)[None], torch.device("cpu"))
    model = calibrated_backbone("hrnet18_small_v2_ocr", 19, images=x)  # BN statistics of this frame
    with torch.no_grad():
        fast = model(x)
    plain = _plain(model, x)
    changed = int((fast.argmax(1) != plain.argmax(1)).sum())
    top2 = plain.topk(2, dim=1).values
    print(f"label pixels changed: {changed} of {x.shape[-1] * x.shape[-2]}")
    assert changed <= 0.0005 * x.shape[-1] * x.shape[-2]
    # any changed pixel is a near-tie of the plain logits
    moved = fast.argmax(1) != plain.argmax(1)
    assert bool(((top2[:, 0] - top2[:, 1])[moved] < 1e-3).all())
    assert len(np.unique(plain.argmax(1).numpy())) > 1
