"""ISDNet (baselines/isdnet): the behaviours of spec refinement_track.md §5.7 and the FPS mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.isdnet.loss import affinity_loss, isd_losses, seg_ce
from baselines.isdnet.method import RELEASE_ARCH, ISDNetConfig, arch, check_config, load_release_state
from baselines.isdnet.net import ISDNet, LaplacianPyramid, RelationAwareFusion
from bench.checks import fps

K = 4


def light(seed: int = 0, num_classes: int = K) -> ISDNet:
    torch.manual_seed(seed)
    return ISDNet(num_classes, **arch(ISDNetConfig()))


# -- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(64, 128), (72, 136)])
def test_output_is_input_size_and_branch_resolutions(hw):
    net = light().eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        out = net(x)
        assert tuple(net.deep_input(x).shape[2:]) == (hw[0] // 4, hw[1] // 4)
        lap_in, _ = net.refine_head.laplacian_input(x)
        s8, s16 = net.refine_head.stdc_net(lap_in)
    assert tuple(out.shape) == (1, K, *hw)
    assert tuple(s8.shape[2:]) == (-(-hw[0] // 8), -(-hw[1] // 8))  # stride-2 convs round up
    assert tuple(s16.shape[2:]) == (-(-hw[0] // 16), -(-hw[1] // 16))


# -- Laplacian pyramid ----------------------------------------------------------------------------


def _numpy_residuals(img: np.ndarray, levels: int = 2) -> list[np.ndarray]:
    """An independent restatement: (C, H, W) float64 -> residuals, blur = 5x5 binomial / 256, reflect pad."""
    row = np.array([1, 4, 6, 4, 1], dtype=np.float64)
    k = np.outer(row, row) / 256.0

    def blur(a: np.ndarray, kern: np.ndarray) -> np.ndarray:
        p = np.pad(a, ((0, 0), (2, 2), (2, 2)), mode="reflect")
        out = np.zeros_like(a)
        for dy in range(5):
            for dx in range(5):
                out += kern[dy, dx] * p[:, dy:dy + a.shape[1], dx:dx + a.shape[2]]
        return out

    res, cur = [], img
    for _ in range(levels):
        down = blur(cur, k)[:, ::2, ::2]
        up = np.zeros((cur.shape[0], 2 * down.shape[1], 2 * down.shape[2]))
        up[:, ::2, ::2] = down
        up = blur(up, 4 * k)[:, :cur.shape[1], :cur.shape[2]]  # even sizes only here: no resize needed
        res.append(cur - up)
        cur = down
    return res


def test_laplacian_matches_an_independent_restatement():
    img = np.random.default_rng(0).normal(size=(3, 32, 48))
    got = LaplacianPyramid(2, 3).double()(torch.from_numpy(img)[None])
    want = _numpy_residuals(img)
    assert len(got) == 2
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[0].numpy(), w, atol=1e-10)
    assert float(got[0].abs().max()) > 0.1  # a textured image has residuals


@pytest.mark.parametrize("hw", [(32, 48), (33, 47), (31, 31)])
def test_laplacian_of_a_constant_image_is_zero(hw):
    x = torch.full((1, 3, *hw), 0.7)
    for r in LaplacianPyramid(2, 3)(x):
        assert float(r.abs().max()) <= 1e-6


def test_laplacian_kernel_is_a_non_persistent_buffer_following_the_module():
    net = light()
    assert not any("lap" in k for k in net.state_dict())
    assert net.refine_head.lap.kernel.device.type == "cpu"
    net = net.double()
    assert net.refine_head.lap.kernel.dtype == torch.float64


# -- relation-aware fusion ------------------------------------------------------------------------


def _perturb_mlps(net: ISDNet) -> None:
    with torch.no_grad():
        for fuse in (net.refine_head.fuse8, net.refine_head.fuse16):
            for p in [*fuse.spatial_mlp.parameters(), *fuse.context_mlp.parameters()]:
                p.add_(torch.randn_like(p))


def test_gates_at_zero_make_the_relation_mlps_inert():
    net = light().eval()
    for fuse in (net.refine_head.fuse8, net.refine_head.fuse16):
        assert float(fuse.g1.detach()) == 0.0 and float(fuse.g2.detach()) == 0.0
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        before = net(x)
        _perturb_mlps(net)
        assert torch.equal(net(x), before)
        net.refine_head.fuse16.g1.fill_(0.5)  # an open gate lets the (perturbed) MLP in
        net.refine_head.fuse8.g2.fill_(0.5)
        assert not torch.equal(net(x), before)


def test_relation_mlp_needs_r_squared_equal_2c():
    RelationAwareFusion(64, 32, 8)
    with pytest.raises(ValueError, match="r\\^2 = 2C"):
        RelationAwareFusion(64, 32, 4)
    with pytest.raises(ValueError, match="isdnet.r"):
        check_config(ISDNetConfig(r=4))
    with pytest.raises(ValueError, match="batch_size"):
        check_config(ISDNetConfig(batch_size=1))


# -- losses ---------------------------------------------------------------------------------------


def _train_forward(seed: int = 0):
    net = light(seed).train()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 64, 128, generator=g)
    y = torch.randint(0, K, (2, 64, 128), generator=g)
    y[:, :8] = 255
    return net, net.run(x, train=True), y


def test_seven_loss_terms_present_finite_and_weighted():
    _, o, y = _train_forward()
    terms = isd_losses(o, y, 255)
    assert set(terms) == {"decode.loss_seg", "refine.loss_seg", "aux_1.loss_seg", "aux_2.loss_seg",
                          "aux_3.recon_losses", "aux_4.fa_loss", "aux.loss_seg"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
    up = F.interpolate(o.sr, size=(64, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(terms["aux_3.recon_losses"], 0.1 * ((up - o.residual) ** 2).mean())
    fcn = F.interpolate(o.fcn_logits, size=(64, 128), mode="bilinear", align_corners=False)
    all_pixels = F.cross_entropy(fcn, y, ignore_index=255, reduction="sum") / y.numel()  # mmseg 0.16's mean
    assert torch.allclose(terms["aux.loss_seg"], 0.4 * all_pixels)
    assert torch.allclose(seg_ce(o.fcn_logits, y, 255, "valid"), F.cross_entropy(fcn, y, ignore_index=255))
    assert float(terms["aux_4.fa_loss"].detach()) > 0


def test_affinity_loss_does_not_reach_the_sr_branch():
    net, o, _ = _train_forward()
    affinity_loss(o.deep, o.sr_feat).backward(retain_graph=True)
    sr = list(net.refine_head.sr_decoder.parameters())
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in sr)
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in net.decode_head.parameters())
    F.mse_loss(o.sr, torch.zeros_like(o.sr)).backward()  # the recon side does train it
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in sr)


# -- the released layout --------------------------------------------------------------------------

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_bn(p: str) -> list[str]:
    return [f"{p}conv.weight", *(f"{p}bn.{b}" for b in BN)]


def _seg_head(p: str) -> list[str]:
    return [*_conv_bn(f"{p}conv_bn_relu."), f"{p}conv_out.weight", f"{p}conv_out.bias"]


def _cat_block(p: str, stride2: bool) -> list[str]:
    keys = [k for i in range(4) for k in _conv_bn(f"{p}conv_list.{i}.")]
    return keys + ([f"{p}avd_layer.0.weight", *(f"{p}avd_layer.1.{b}" for b in BN)] if stride2 else [])


def _raf(p: str) -> list[str]:
    keys = [f"{p}g1", f"{p}g2"]
    keys += [f"{p}{m}.{i}.{w}" for m in ("spatial_mlp", "context_mlp") for i in (0, 2) for w in ("weight", "bias")]
    for att in ("spatial_att", "context_att"):
        keys += _conv_bn(f"{p}{att}.conv_bn_relu.") + _conv_bn(f"{p}{att}.conv_1x1.")
    return keys + _conv_bn(f"{p}context_head.") + _conv_bn(f"{p}smooth.")


def expected_head_keys() -> tuple[list[str], list[str]]:
    """The ISD head's keys at release size, from the spec (§5.5): (all 382, the 120 aliases)."""
    def feature(i: int) -> list[str]:
        return _conv_bn("") if i < 2 else _cat_block("", stride2=i in (2, 4))

    stdc, aliases = [], []
    for i, alias in enumerate(("x2.0.0", "x4.0.1", "x8.0.2", "x8.0.3", "x16.0.4", "x16.0.5")):
        stdc += [f"stdc_net.features.{i}.{k}" for k in feature(i)]
        aliases += [f"stdc_net.{alias}.{k}" for k in feature(i)]
    keys = stdc + aliases + _raf("fuse16.") + _raf("fuse8.")
    keys += [k for c in ("conv1", "conv2", "conv3") for k in _conv_bn(f"sr_decoder.{c}.")]
    keys += _seg_head("sr_decoder.conv_sr.")
    keys += _seg_head("conv_seg.") + _seg_head("conv_seg_aux_16.") + _seg_head("conv_seg_aux_8.")
    return keys, aliases


def test_expected_head_keys_are_the_specs_counts():
    keys, aliases = expected_head_keys()
    assert len(keys) == len(set(keys)) == 382 and len(aliases) == 120


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    """An mmseg-0.16-style file (``meta`` + ``state_dict``) of a release-size model (DeepGlobe: 7 classes)."""
    torch.manual_seed(1)
    src = ISDNet(7, **RELEASE_ARCH)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    path = tmp_path_factory.mktemp("isd") / "isdnet_release.pth"
    torch.save({"meta": {"mmseg_version": "0.16.0", "CLASSES": list("abcdefg")}, "state_dict": state}, path)
    return path, state


def test_release_layout_head_is_the_manifest(release_file):
    _, state = release_file
    head = {k.removeprefix("refine_head.") for k in state if k.startswith("refine_head.")}
    assert head == set(expected_head_keys()[0])


def test_release_file_loads_strictly(release_file):
    path, state = release_file
    torch.manual_seed(2)
    model = ISDNet(7, **RELEASE_ARCH)
    load_release_state(model, path)
    got = model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_release_file_missing_a_key_or_with_a_differing_alias_fails(release_file, tmp_path):
    _, state = release_file
    broken = {k: v for k, v in state.items() if k != "refine_head.fuse16.g1"}
    torch.save({"state_dict": broken}, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="refine_head.fuse16.g1"):
        load_release_state(ISDNet(7, **RELEASE_ARCH), tmp_path / "missing.pth")
    alias = dict(state)
    key = "refine_head.stdc_net.x8.0.2.conv_list.0.conv.weight"
    alias[key] = alias[key] + 1
    torch.save({"state_dict": alias}, tmp_path / "alias.pth")
    with pytest.raises(RuntimeError, match="alias"):
        load_release_state(ISDNet(7, **RELEASE_ARCH), tmp_path / "alias.pth")


# -- the published FPS mode -----------------------------------------------------------------------


def test_fps_timed_size_scale_and_swap():
    p = fps.FpsProtocol()
    assert (p.scale, p.warmup, p.timed, p.swap) == (0.8, 100, 300, True)
    assert fps.timed_hw((2048, 1024), p) == (1638, 819)  # the release: (width s, height s) as (H, W)
    assert fps.timed_hw((2048, 1024), fps.FpsProtocol(swap=False)) == (819, 1638)


def test_fps_calls_counted():
    calls = []

    class Count(torch.nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return x

    out = fps.time_calls(Count(), (40, 50), torch.device("cpu"), fps.FpsProtocol(warmup=2, timed=3))
    assert calls == [(1, 3, 40, 50)] * 5
    assert out["fps"] == pytest.approx(3 / out["total_s"])


def test_fps_record_fields():
    from bench.core.config import load

    cfg = load("synthetic", {})
    rec = fps.run_fps(cfg, "isdnet", fps.FpsProtocol(warmup=1, timed=2), (160, 80))
    assert rec["mode"] == "published_fps" and rec["method"] == "isdnet"
    assert rec["timed_hw"] == [128, 64] and rec["requested_size"] == "160x80"
    assert (rec["scale"], rec["swap"], rec["warmup"], rec["timed"]) == (0.8, True, 1, 2)
    assert rec["fps"] == pytest.approx(2 / rec["total_s"])
    assert "(1, 3, 128, 64)" in rec["caption"] and "scale 0.8" in rec["caption"]
