"""The default HRNet-OCR forward (packed conv weights, in-place ReLUs) is bitwise the plain one (issue 15).

``reference_forward`` runs the forward as it was before these changes; every comparison here is
``torch.equal``, on the backbone logits and on MagNet's and MagNet-Fast's final probabilities.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from bench.models.backbones.hrnet_ocr import reference_forward
from bench.models.backbones.packed import PackedConv2d, _mkldnn_backend, pack_convs, reference_conv, unpack_convs
from perf.core import calibrated_backbone


@pytest.fixture(autouse=True)
def two_threads():
    """PyTorch runs fp32 convolutions through oneDNN only on more than one thread (on one it takes
    its own im2col path, which PackedConv2d leaves alone): these tests need the oneDNN path."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "bias"), [
    (3, 64, 3, 1, False), (18, 36, 3, 2, False), (64, 256, 1, 1, False), (270, 19, 1, 1, True), (36, 18, 1, 1, True),
])
@pytest.mark.parametrize("batch", [1, 2])
def test_packed_conv_is_bitwise_f_conv2d(cin, cout, k, stride, bias, batch):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias).eval()
    pack_convs(conv)
    assert type(conv) is PackedConv2d
    x = torch.randn(batch, cin, 24, 40)
    with torch.inference_mode():
        out = conv(x)
        # packed exactly where F.conv2d would use oneDNN (small inputs may take PyTorch's own path)
        assert (conv._packed is not None) == _mkldnn_backend(conv, x)
        assert torch.equal(out, reference_conv(conv, x))
        assert torch.equal(conv(x[:1]), reference_conv(conv, x[:1]))  # another shape, same pack


def test_packed_conv_repacks_after_a_weight_change_and_falls_back_when_it_must():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, padding=1).eval()
    pack_convs(conv)
    x = torch.randn(2, 64, 16, 32)
    assert _mkldnn_backend(conv, x)
    with torch.no_grad():
        conv(x)
        old = conv._packed
        conv.load_state_dict({"weight": torch.randn(64, 64, 3, 3), "bias": torch.randn(64)})  # in place
        out = conv(x)
        assert conv._packed is not old and torch.equal(out, reference_conv(conv, x))
        # channels-last input: F.conv2d's NHWC primitive, not the packed NCHW one
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(conv(cl), reference_conv(conv, cl))
    conv.train()
    y = conv(x)  # training with autograd: the plain path, gradients flow
    y.sum().backward()
    assert conv.weight.grad is not None
    conv.use_packed = False
    conv.eval()
    with torch.no_grad():
        conv.drop_packed()
        conv(x)
        assert conv._packed is None


def test_packed_conv_copies_pickles_and_state_dict_are_plain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)).eval()
    keys = list(model.state_dict())
    assert pack_convs(model) == 1 and list(model.state_dict()) == keys
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert other[0]._packed is None and torch.equal(other(x), ref)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    assert set(torch.load(buf, weights_only=True)) == set(keys)
    unpack_convs(model)
    assert type(model[0]) is nn.Conv2d
    with torch.no_grad():
        assert torch.equal(model(x), ref)


@pytest.fixture(scope="module")
def hrnet() -> nn.Module:
    return calibrated_backbone("hrnet18_small_v2_ocr", 19, size=(64, 32))


def test_hrnet_default_forward_is_bitwise_the_reference(hrnet):
    assert any(isinstance(m, PackedConv2d) for m in hrnet.modules())
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        for batch in (x, x[:1]):
            with reference_forward(hrnet):
                ref = hrnet(batch)
                assert all(not m.use_packed for m in hrnet.modules() if isinstance(m, PackedConv2d))
            assert torch.equal(hrnet(batch), ref)
            # most convs ran packed: not f_up (its input, the attention context, is channels-last),
            # nor those PyTorch runs on its own im2col path at this small size
            convs = [m for m in hrnet.modules() if isinstance(m, PackedConv2d)]
            assert hrnet.ocr_distri_head.object_context_block.f_up[0]._packed is None
            assert sum(m._packed is not None for m in convs) >= 0.7 * len(convs)
    assert all(m.use_packed for m in hrnet.modules() if isinstance(m, PackedConv2d))  # restored
    with torch.no_grad():  # no_grad (not inference mode) takes the packed path too
        with reference_forward(hrnet):
            ref = hrnet(x[:1])
        assert torch.equal(hrnet(x[:1]), ref)


def _probs(method, backbone, image, input_size, reference: bool) -> torch.Tensor:
    from perf.magnet_section import image_call

    probs, labels = image_call(method, backbone, image, input_size, "reference" if reference else "exact")
    assert torch.equal(labels, probs.argmax(0))
    return probs


@pytest.mark.parametrize("fast", [False, True])
def test_magnet_final_probabilities_are_bitwise_the_reference(hrnet, fast):
    from perf.magnet_section import magnet_method

    input_size, image_size = (64, 32), (128, 64)
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    method = magnet_method(fast, hrnet, 19, input_size, image_size, 2)
    ref = _probs(method, hrnet, image, input_size, reference=True)
    out = _probs(method, hrnet, image, input_size, reference=False)
    assert ref.shape == (19, 64, 128) and torch.equal(out, ref)
    # the coarse map alone (one forward of the whole image at the input size) as well
    from bench.models.coarse import compute_coarse

    with torch.inference_mode():
        with reference_forward(hrnet):
            c_ref = compute_coarse(hrnet, image, input_size, torch.device("cpu")).probs
        assert torch.equal(compute_coarse(hrnet, image, input_size, torch.device("cpu")).probs, c_ref)


def test_direct_concatenations_are_torch_cat():
    from bench.models.backbones.hrnet_ocr import _cat_context, _concat_upsampled, _upsample

    gen = torch.Generator().manual_seed(0)
    branches = [torch.randn(2, c, 16 // 2**i, 32 // 2**i, generator=gen) for i, c in enumerate((18, 36, 72, 144))]
    context = torch.randn(2, 24, 16, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    feats = torch.randn(2, 24, 16, 32, generator=gen)
    with torch.inference_mode():
        ref = torch.cat([branches[0], *(_upsample(b, (16, 32)) for b in branches[1:])], 1)
        assert torch.equal(_concat_upsampled(branches), ref) and _concat_upsampled(branches).is_contiguous()
        out = _cat_context(context, feats)
        assert out.is_contiguous() and torch.equal(out, torch.cat([context, feats], 1))


def test_each_speedup_alone_is_bitwise_and_unknown_ones_are_refused(hrnet):
    from bench.models.backbones.hrnet_ocr import EXACT_SPEEDUPS

    x = torch.randn(1, 3, 32, 64, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        with reference_forward(hrnet):
            ref = hrnet(x)
        for part in EXACT_SPEEDUPS:
            with reference_forward(hrnet, keep=(part,)):
                assert torch.equal(hrnet(x), ref), part
    with pytest.raises(ValueError, match="unknown speed-ups"):
        with reference_forward(hrnet, keep=("fold",)):
            pass
