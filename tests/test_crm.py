"""CRM (baselines/crm): the released 367-entry layout, the continuous decoder against the release's
concatenated grid_sample form, the four loss terms on hand-made cases, the soft hand-over of the
multi-resolution inference, per-class combination, training resumption."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.crm import method as crm_method
from baselines.crm.infer import decode_grid, handover, refine_masks
from baselines.common.per_class import combine
from baselines.crm.method import CHECKPOINT, CRM, RELEASED, CRMConfig, build_net, load_released
from baselines.crm.net import CRMNet, blend_weights, grid_cells, grid_coords
from baselines.crm.train import crm_loss, sobel
from bench.checks import contract
from bench.core.interface import Coarse
from bench.models.coarse import upsampled_labels
from bench.training import resume

TINY = {"depth": 18, "width": 8, "layer4": False, "tap_channels": (8, 8, 8), "feature_channels": 12,
        "hidden": (16, 16), "dropout": 0.0}


def _tiny_net(seed: int = 0) -> CRMNet:
    torch.manual_seed(seed)
    net = CRMNet(**TINY).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    for m in net.modules():  # BN away from identity, so a mis-wired layer shows in the output
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    return net


# --- the released layout ------------------------------------------------------------------------

def release_manifest() -> dict[str, tuple[int, ...]]:
    """The 367 entries of CRMNet(backend='resnet50') written out from the spec (§3.4), not from our net."""
    out: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{k}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    out["feats.conv1.weight"] = (64, 4, 7, 7)
    bn("feats.bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for i in range(blocks):
            p = f"feats.layer{stage}.{i}"
            out[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            out[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            out[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if i == 0:
                out[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    for name, cin, cout in (("128", 64, 64), ("256", 256, 64), ("1024", 1024, 128)):
        out[f"aspp_.aspp1_{name}.atrous_conv.weight"] = (cout, cin, 1, 1)
        bn(f"aspp_.aspp1_{name}.bn", cout)
        bn(f"aspp_.bn1_{name}", cout)
    out["aspp_.last_conv.0.weight"] = (256, 256, 3, 3)
    bn("aspp_.last_conv.1", 256)
    for i, (cin, cout) in enumerate(((262, 32), (32, 32), (32, 32), (32, 32), (32, 1))):
        out[f"imnet.layers.{2 * i}.weight"] = (cout, cin)
        out[f"imnet.layers.{2 * i}.bias"] = (cout,)
    return out


def test_release_manifest_counts_match_the_spec():
    """The spec's numbers: 367 entries, 60 BN counters, 60 layer4 entries, 24 265 697 parameters."""
    man = release_manifest()
    assert len(man) == 367
    assert sum(k.endswith("num_batches_tracked") for k in man) == 60
    assert sum(k.startswith("feats.layer4.") for k in man) == 60
    params = sum(math.prod(s) for k, s in man.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 24265697


def test_release_net_has_exactly_the_manifest_keys_and_shapes():
    with torch.device("meta"):
        net = CRMNet(**RELEASED)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == release_manifest()
    assert sum(p.numel() for p in net.parameters()) == 24265697


def _release_file(path: Path, drop: str | None = None, extra: str | None = None) -> None:
    """A ``module.``-prefixed state dict in the released layout with random values (the file the
    authors' DataParallel net would write), optionally without one key or with one more."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in release_manifest().items():
        if key == drop:
            continue
        if key.endswith("num_batches_tracked"):
            state["module." + key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state["module." + key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state["module." + key] = torch.randn(shape, generator=gen) * 0.05
    if extra:
        state["module." + extra] = torch.zeros(3)
    torch.save(state, path)


def test_release_file_loads_strictly_and_runs(tmp_path):
    path = tmp_path / "model_45705"
    _release_file(path)
    net = CRMNet(**RELEASED)
    load_released(net, path)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(net.state_dict()["imnet.layers.0.weight"], saved["module.imnet.layers.0.weight"])
    assert int(net.state_dict()["feats.bn1.num_batches_tracked"]) == 7
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 40, 48), torch.ones(1, 1, 40, 48), grid_coords(10, 12), grid_cells(10, 12))
    assert out["out_224"].shape == (1, 120, 1) and torch.isfinite(out["out_224"]).all()


@pytest.mark.parametrize("drop, extra", [("feats.layer4.2.bn3.num_batches_tracked", None),
                                         ("imnet.layers.8.bias", None), (None, "imnet.layers.10.weight")])
def test_release_file_with_a_missing_or_extra_key_fails_naming_it(tmp_path, drop, extra):
    path = tmp_path / "model"
    _release_file(path, drop=drop, extra=extra)
    with pytest.raises(RuntimeError) as err:
        load_released(CRMNet(**RELEASED), path)
    assert (drop or extra) in str(err.value)


def test_missing_checkpoint_is_an_error_naming_it(tiny_ctx):
    with pytest.raises(FileNotFoundError, match=CHECKPOINT):
        CRM(CRMConfig(), tiny_ctx)


# --- the network and the continuous decoder ----------------------------------------------------

def _release_decode(net: CRMNet, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """The release's decoder as §3.1 describes it: grid_sample(nearest) of the features and of the
    feature-cell centres, the 262-style concatenation through the whole MLP, area-swapped blending."""
    b, _, fh, fw = feat.shape
    rows = -1 + 1 / fh + 2 / fh * torch.arange(fh).float()
    cols = -1 + 1 / fw + 2 / fw * torch.arange(fw).float()
    centres = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), 0)[None].expand(b, 2, fh, fw)
    preds, areas = [], []
    for vx in (-1, 1):
        for vy in (-1, 1):
            c = coord.clone()
            c[:, :, 0] += vx / fh + 1e-6
            c[:, :, 1] += vy / fw + 1e-6
            c.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = c.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
            q_coord = F.grid_sample(centres, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
            rel = coord - q_coord
            rel[:, :, 0] *= fh
            rel[:, :, 1] *= fw
            rel_cell = cell.clone()
            rel_cell[:, :, 0] *= fh
            rel_cell[:, :, 1] *= fw
            preds.append(net.imnet.layers(torch.cat([q_feat, rel, coord, rel_cell], -1)))
            areas.append((rel[:, :, 0] * rel[:, :, 1]).abs() + 1e-9)
    total = sum(areas)
    areas = [areas[3], areas[2], areas[1], areas[0]]
    return sum(p * (a / total)[..., None] for p, a in zip(preds, areas))


@pytest.mark.parametrize("fh, fw, h, w", [(6, 9, 13, 17), (5, 5, 5, 5), (4, 7, 40, 21)])
def test_decoder_equals_the_release_form(fh, fw, h, w):
    """Our split first layer and index gather equal the concatenated grid_sample form (catches a
    swapped row/col, a wrong shift, an unswapped area, the cell left unscaled)."""
    net = _tiny_net()
    feat = torch.randn(2, TINY["feature_channels"], fh, fw)
    coord = grid_coords(h, w)[None].expand(2, -1, -1).clone()
    cell = grid_cells(h, w)[None].expand(2, -1, -1).clone()
    with torch.no_grad():
        ours = net.decode(feat, coord, cell)
        ref = _release_decode(net, feat, coord, cell)
    assert ours.shape == (2, h * w, 1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("h, w, H, W", [(37, 50, 23, 31), (64, 64, 100, 130)])
def test_any_input_and_query_size_gives_one_logit_per_query(h, w, H, W):
    net = _tiny_net()
    with torch.no_grad():
        out = net(torch.randn(2, 3, h, w), torch.randn(2, 1, h, w), grid_coords(H, W), grid_cells(H, W))
    assert out["out_224"].shape == (2, H * W, 1)
    torch.testing.assert_close(out["pred_224"], torch.sigmoid(out["out_224"]))


def test_chunking_changes_no_logit():
    net = _tiny_net()
    feat = torch.randn(1, TINY["feature_channels"], 7, 11)
    with torch.no_grad():
        whole = decode_grid(net, feat, 19, 23, 10**6)
        chunked = decode_grid(net, feat, 19, 23, 37)
    torch.testing.assert_close(whole, chunked, atol=1e-6, rtol=0)


def test_coordinates_are_pixel_centres_and_cells_pixel_sizes():
    c = grid_coords(4, 5)
    assert torch.allclose(c[0], torch.tensor([-1 + 1 / 4, -1 + 1 / 5]))
    assert torch.allclose(c[-1], torch.tensor([1 - 1 / 4, 1 - 1 / 5]))
    assert torch.allclose(c[1], torch.tensor([-1 + 1 / 4, -1 + 3 / 5]))  # row-major: the column moves first
    assert torch.allclose(grid_cells(4, 5)[3], torch.tensor([0.5, 0.4]))


def test_blend_weights_are_positive_sum_to_one_and_take_the_opposite_area():
    rel = [torch.tensor([[-0.2, -0.7]]), torch.tensor([[-0.2, 0.3]]), torch.tensor([[0.8, -0.7]]),
           torch.tensor([[0.8, 0.3]])]
    w = blend_weights(rel)
    assert all(float(x) > 0 for x in w) and abs(float(sum(w)) - 1) < 1e-6
    # neighbour 0 (the query lies 0.2 rows and 0.7 columns past it) weighs the opposite area 0.8 * 0.3
    assert abs(float(w[0]) - 0.24) < 1e-6 and abs(float(w[3]) - 0.14) < 1e-6


# --- the four loss terms -----------------------------------------------------------------------

def _np_sobel(x: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W): 3x3 mean with zero padding (divided by 9), then the /4 Sobel kernels with
    zero padding, sqrt(gx^2 + gy^2 + 1e-4); loops, no torch."""
    h, w = x.shape
    p = np.pad(x, 1)
    box = np.array([[p[i:i + 3, j:j + 3].sum() / 9 for j in range(w)] for i in range(h)])
    kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]) / 4
    ky = kx.T
    q = np.pad(box, 1)
    gx = np.array([[(q[i:i + 3, j:j + 3] * kx).sum() for j in range(w)] for i in range(h)])
    gy = np.array([[(q[i:i + 3, j:j + 3] * ky).sum() for j in range(w)] for i in range(h)])
    return np.sqrt(gx ** 2 + gy ** 2 + 1e-4)


def test_each_loss_term_on_a_hand_made_case():
    """Logit ln 3 (p = 0.75) everywhere on a 2x2 map; target 0.6 at one pixel, 0 elsewhere."""
    logits = torch.full((1, 1, 2, 2), math.log(3.0))
    gt = torch.tensor([[[[0.6, 0.0], [0.0, 0.0]]]])
    # BCE against gt > 0.5: one pixel with target 1 (-ln 0.75), three with target 0 (-ln 0.25)
    ce = (-math.log(0.75) - 3 * math.log(0.25)) / 4
    l1 = (0.15 + 3 * 0.75) / 4
    l2 = (0.15 ** 2 + 3 * 0.75 ** 2) / 4
    grad = float(np.abs(_np_sobel(gt[0, 0].numpy().astype(np.float64)) - _np_sobel(np.full((2, 2), 0.75))).mean())
    for weights, expected in (((1, 0, 0, 0), ce), ((0, 1, 0, 0), l1), ((0, 0, 1, 0), l2), ((0, 0, 0, 1), grad)):
        total, _ = crm_loss(logits, gt, *weights)
        assert abs(float(total) - expected) < 1e-5, (weights, float(total), expected)
    total, parts = crm_loss(logits, gt)  # the README weights 1, 0.5, 0.5, 2
    assert abs(float(total) - (ce + 0.5 * l1 + 0.5 * l2 + 2 * grad)) < 1e-5
    assert parts == pytest.approx({"ce": ce, "l1": l1, "l2": l2, "grad": grad}, abs=1e-5)


def test_sobel_matches_loops_on_an_edge():
    x = np.zeros((5, 6))
    x[:, 3:] = 1.0
    x[4, 0] = 0.5
    ours = sobel(torch.tensor(x, dtype=torch.float32)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, _np_sobel(x), atol=1e-6)


# --- multi-resolution inference ----------------------------------------------------------------

class RecordingNet:
    """A stand-in network: records each turn's mask input; its logit at a query is ``3 * row``
    (row in [-1, 1]), whatever the features, so every turn's probability is known."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor] = []

    def features(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        self.masks.append(seg.clone())
        return seg

    def project(self, feat: torch.Tensor) -> torch.Tensor:
        return feat

    def decode(self, feat, coord, cell, projected=None):
        return (3 * coord[..., :1])[None].expand(feat.shape[0], -1, -1)


def test_soft_hand_over_passes_2p_minus_1_to_the_next_turn():
    """Turn 2 reads 2p - 1 of turn 1 (not a thresholded mask: a hard hand-over gives +-1)."""
    net = RecordingNet()
    seg = torch.ones(1, 1, 8, 6)
    out = refine_masks(net, torch.zeros(1, 3, 8, 6), seg, (1.0, 1.0), pad=0)  # type: ignore[arg-type]
    p = torch.sigmoid(3 * grid_coords(8, 6)[:, 0]).reshape(1, 1, 8, 6)
    torch.testing.assert_close(net.masks[0], seg)
    torch.testing.assert_close(net.masks[1], 2 * p - 1)
    assert net.masks[1].abs().min() < 0.5  # soft values are there at all
    torch.testing.assert_close(out, p)
    torch.testing.assert_close(handover(torch.tensor([0.0, 0.25, 1.0])), torch.tensor([-1.0, -0.5, 1.0]))


def test_turns_resize_image_and_mask_to_the_scaled_padded_size():
    net = RecordingNet()
    refine_masks(net, torch.zeros(1, 3, 50, 30), torch.ones(2, 1, 50, 30), (0.125, 0.5, 1.0), pad=32)  # type: ignore[arg-type]
    # reflect padding is capped at side - 1: (50 + 64) x (30 + 58); Python's round per turn
    assert [tuple(m.shape) for m in net.masks] == [(2, 1, 14, 11), (2, 1, 57, 44), (2, 1, 114, 88)]


def test_one_scale_equals_a_single_forward():
    net = _tiny_net()
    im, seg = torch.randn(1, 3, 24, 40), (torch.rand(2, 1, 24, 40) > 0.5).float() * 2 - 1
    with torch.no_grad():
        ours = refine_masks(net, im, seg, (1.0,), pad=0, chunk=100)
        direct = net(im.expand(2, -1, -1, -1), seg, grid_coords(24, 40), grid_cells(24, 40))["pred_224"]
    torch.testing.assert_close(ours, direct.reshape(2, 1, 24, 40), atol=1e-6, rtol=0)


def test_an_empty_mask_is_suppressed_and_kept_when_asked():
    net = _tiny_net()
    seg = -torch.ones(1, 1, 16, 16)
    with torch.no_grad():
        assert float(refine_masks(net, torch.randn(1, 3, 16, 16), seg, (0.5, 1.0), pad=4).abs().max()) == 0.0
        kept = refine_masks(net, torch.randn(1, 3, 16, 16), seg, (0.5, 1.0), pad=4, suppress_empty=False)
    assert float(kept.max()) > 0


def test_scales_must_be_given_and_positive():
    with pytest.raises(ValueError, match="crm.scales"):
        refine_masks(_tiny_net(), torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8), ())
    with pytest.raises(ValueError, match="crm.scales"):
        refine_masks(_tiny_net(), torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8), (0.0, 1.0))


# --- the method --------------------------------------------------------------------------------

def test_combine_ties_go_to_the_lowest_class_and_min_confidence_keeps_coarse():
    probs = torch.tensor([[[0.4, 0.3]], [[0.4, 0.2]]])
    classes = torch.tensor([2, 5])
    coarse = torch.tensor([[5, 5]])
    assert combine(probs, classes, coarse).tolist() == [[2, 2]]
    assert combine(probs, classes, coarse, min_confidence=0.35).tolist() == [[2, 5]]


def _method(ctx, cfg: CRMConfig | None = None) -> CRM:
    cfg = cfg or CRMConfig(**TINY, scales=(1.0,), pad=0)
    torch.save(_tiny_net().state_dict(), Path(ctx.checkpoint_dir) / CHECKPOINT)
    return CRM(cfg, ctx)


def test_one_class_coarse_map_needs_no_forward(tiny_ctx, monkeypatch):
    method = _method(tiny_ctx)
    monkeypatch.setattr(crm_method, "refine_masks", lambda *a, **k: pytest.fail("refined a one-class map"))
    probs = torch.zeros(4, 4, 8)
    probs[2] = 1
    out = method.refine(np.zeros((16, 32, 3), np.uint8), Coarse(probs))
    assert out.dtype == torch.int64 and out.shape == (16, 32) and bool((out == 2).all())


def test_refine_takes_the_class_of_highest_refined_probability(tiny_ctx):
    """Coarse: class 1 left, class 3 right; the refined probability of each class mask comes from
    refine_binary, and a pixel takes the larger."""
    method = _method(tiny_ctx)
    probs = torch.zeros(4, 4, 8)
    probs[1, :, :4] = 1
    probs[3, :, 4:] = 1
    image = np.random.default_rng(0).integers(0, 255, (16, 32, 3), dtype=np.uint8)
    out = method.refine(image, Coarse(probs))
    labels = upsampled_labels(probs, (16, 32))
    p = method.refine_binary(image, torch.stack([labels == 1, labels == 3]))
    assert torch.equal(out, torch.where(p[0] >= p[1], 1, 3))
    assert bool((out == 1).any()) and bool((out == 3).any())


def test_object_only_refines_class_1_alone_and_thresholds_at_one_half(tiny_ctx, monkeypatch):
    method = _method(tiny_ctx, CRMConfig(**TINY, scales=(1.0,), pad=0, object_only=True))
    probs = torch.zeros(2, 4, 8)
    probs[1, :, :3], probs[0, :, 3:] = 1, 1
    seen = []
    fake = torch.linspace(0, 1, 32).expand(16, 32)[None]

    def refine_binary(image, masks):
        seen.append(masks.clone())
        return fake

    monkeypatch.setattr(method, "refine_binary", refine_binary)
    out = method.refine(np.zeros((16, 32, 3), np.uint8), Coarse(probs))
    assert len(seen) == 1 and torch.equal(seen[0][0], upsampled_labels(probs, (16, 32)) == 1)
    assert torch.equal(out, (fake[0] > 0.5).long())
    many = Coarse(torch.softmax(torch.randn(3, 4, 8), 0))  # not two classes: per class as before
    method.refine(np.zeros((16, 32, 3), np.uint8), many)
    assert seen[-1].shape[0] == len(torch.unique(upsampled_labels(many.probs, (16, 32))))


def test_mask_batches_equal_masks_alone(tiny_ctx):
    image = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    masks = torch.rand(3, 16, 24) > 0.5
    one = _method(tiny_ctx).refine_binary(image, masks)
    three = _method(tiny_ctx, CRMConfig(**TINY, scales=(0.5, 1.0), pad=0, mask_batch_size=3))
    alone = _method(tiny_ctx, CRMConfig(**TINY, scales=(0.5, 1.0), pad=0, mask_batch_size=1))
    torch.testing.assert_close(three.refine_binary(image, masks), alone.refine_binary(image, masks), atol=1e-5, rtol=0)
    assert one.shape == (3, 16, 24)


def test_the_method_keeps_the_contract(tiny_ctx, tiny_dataset):
    cls = CRM
    method = contract.build("crm", cls, tiny_ctx, tiny_dataset)
    contract.check_class("crm", cls)
    contract.check_refine("crm", cls, method, tiny_ctx, tiny_dataset)


def test_the_light_config_file_equals_the_dataclass_defaults():
    import yaml

    values = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/methods/crm.yaml").read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(CRMConfig)}
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()} == defaults


# --- training ----------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def _train(cfg, ctx, data, folder: Path) -> dict:
    ctx = resume.with_runtime(dataclasses.replace(ctx, checkpoint_dir=folder), resume.TrainRuntime(checkpoint_every_s=0))
    paths = CRM.checkpoints(cfg, ctx)
    CRM.train(cfg, ctx, data, paths)
    assert not list(folder.glob("*.resume"))
    return torch.load(paths["crm"], weights_only=True)


def test_training_interrupted_resumes_to_the_weights_of_an_uninterrupted_run(monkeypatch, capsys, tiny_ctx,
                                                                             tiny_dataset, tmp_path):
    """Stopped after step 2 of 4 and run again: the rerun says it resumes and ends with the same
    weights and BN buffers (catches the sample generator or the optimiser left out of the state)."""
    cfg = CRMConfig(**TINY, iterations=4, batch_size=2, crop_size=(32, 24), milestones=(3,))
    whole = _train(cfg, tiny_ctx, tiny_dataset, tmp_path / "whole")
    original, count = resume.Checkpointer.after_step, [0]

    def after(self, step, losses, extra=None, **kw):
        original(self, step, losses, extra, **kw)
        count[0] += 1
        if count[0] == 2:
            raise Interrupted

    with monkeypatch.context() as m:
        m.setattr(resume.Checkpointer, "after_step", after)
        with pytest.raises(Interrupted):
            _train(cfg, tiny_ctx, tiny_dataset, tmp_path / "cut")
    capsys.readouterr()
    again = _train(cfg, tiny_ctx, tiny_dataset, tmp_path / "cut")
    assert "resuming crm from step 2/4" in capsys.readouterr().err
    assert whole.keys() == again.keys() and all(torch.equal(whole[k], again[k]) for k in whole)


@pytest.mark.slow
def test_training_lowers_the_loss(tiny_dataset):
    from baselines.crm.train import train_net

    cfg = CRMConfig(**TINY, iterations=60, batch_size=4, crop_size=(48, 32), lr=3e-3, milestones=())
    torch.manual_seed(0)
    net = build_net(cfg)
    samples = [(tiny_dataset[i].image, tiny_dataset[i].label) for i in range(len(tiny_dataset))]
    losses = train_net(net, samples, cfg, 255, torch.device("cpu"))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
