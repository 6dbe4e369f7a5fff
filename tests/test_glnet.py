"""GLNet (baselines/glnet/method.py): release key layout and strict loading, the patch grid and crop
coordinates, the feature exchange's shapes, hand-made cases with known answers, training."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.glnet import infer
from baselines.glnet.loss import focal_loss
from baselines.glnet.net import Aggregator, Branch, GLNet, crop
from baselines.glnet.patches import axis_starts, feature_box, patch_grid, release_box
from baselines.glnet.method import (
    RELEASE_ARCH,
    GLNetConfig,
    GLNetMethod,
    clean_release_state,
    load_release_state,
)

GOLDEN = Path(__file__).parent / "golden" / "glnet_release_keys.json"
LIGHT = {"depth": 18, "base_width": 8, "fpn_width": 32, "head_width": 16}


def _release_keys() -> list[tuple[str, list[int]]]:
    return [(k, v) for k, v in json.loads(GOLDEN.read_text())["keys"]]


def test_release_layout_equals_reference_keys_and_shapes(monkeypatch):
    """Our modules at the release's size (C = 7, DeepGlobe) have the reference's 718 state-dict entries:
    same names (after ``module.``), same shapes, same order."""
    for name in ("kaiming_normal_", "normal_", "constant_"):  # shapes only: skip the (slow on meta) init
        monkeypatch.setattr(torch.nn.init, name, lambda t, *a, **k: t)
    with torch.device("meta"):
        model = GLNet(7, **RELEASE_ARCH)
    ours = [("module." + k, list(v.shape)) for k, v in model.state_dict().items()]
    ref = _release_keys()
    assert len(ref) == 718
    assert ours == ref
    n = sum(math.prod(s) for k, s in ref if not k.endswith("num_batches_tracked"))
    assert n == sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for k, b in model.state_dict().items() if k.endswith(("running_mean", "running_var")))


def _light(num_classes: int = 5, seed: int = 0) -> GLNet:
    torch.manual_seed(seed)
    return GLNet(num_classes, **LIGHT).eval()


def test_strict_load_of_release_layout_file(tmp_path):
    """A file in the release's layout (DataParallel's ``module.`` prefix, as its checkpoints) loads
    strictly; the loaded module equals the source."""
    src = _light(seed=1)
    path = tmp_path / "fpn_deepglobe_global.pth"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)
    dst = _light(seed=2)
    load_release_state(dst, path)
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_strict_load_lists_missing_and_unexpected_keys(tmp_path):
    state = {"module." + k: v for k, v in _light().state_dict().items()}
    state.pop("module.fpn_local.smooth.weight")
    state["module.fpn_local.extra.weight"] = torch.zeros(1)
    state["module.ensemble_conv.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(RuntimeError) as err:
        load_release_state(_light(), path)
    text = str(err.value)
    assert "missing keys (1): ['fpn_local.smooth.weight']" in text
    assert "unexpected keys (1): ['fpn_local.extra.weight']" in text
    assert "ensemble_conv.bias (3,) vs (5,)" in text and str(path) in text


def test_old_files_without_num_batches_tracked_load(tmp_path):
    state = {k: v for k, v in _light().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    load_release_state(_light(seed=3), path)
    assert clean_release_state({"module.a": 1, "b": 2}) == {"a": 1, "b": 2}


@pytest.mark.slow
def test_strict_load_release_size_file(tmp_path):
    """The release-size module (ResNet-50, 79.3 M parameters) saved with ``module.`` loads strictly."""
    torch.manual_seed(0)
    src = GLNet(7, **RELEASE_ARCH)
    path = tmp_path / "fpn_deepglobe_local2global.pth"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)
    dst = GLNet(7, **RELEASE_ARCH)
    load_release_state(dst, path)
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())


def test_patch_grid_deepglobe_hand_computed():
    """2448 px, 508-px patches, 50 px overlap: 5 patches overlap by 23 < 50, so 6, step 388."""
    assert axis_starts(2448, 508, 50) == [0, 388, 776, 1164, 1552, 1940]
    grid = patch_grid((2448, 2448), (508, 508), 50)
    assert len(grid.boxes) == 36 and grid.boxes[:7] == ((0, 0), (0, 388), (0, 776), (0, 1164), (0, 1552), (0, 1940),
                                                        (388, 0))
    assert grid.template().min() >= 1 and int(grid.template().max()) == 4


def test_patch_grid_synthetic_and_edge_cases():
    assert axis_starts(1024, 128, 12) == [0, 112, 224, 336, 448, 560, 672, 784, 896]
    # 448 / 9 = 49.78 per step, half-to-even rounding as numpy
    assert axis_starts(512, 64, 12) == [0, 50, 100, 149, 199, 249, 299, 348, 398, 448]
    assert axis_starts(64, 64, 50) == [0]  # the release divides by zero here
    with pytest.raises(ValueError, match="patch side"):
        axis_starts(60, 64, 10)


def test_crop_boxes_match_release_at_deepglobe_sizes():
    """At 2448 -> 508 with 508 patches our guards never act: every crop of every global map
    (c2..c5 and P2..P5: 127, 64, 32, 16) equals the release's box and lies inside the map."""
    grid = patch_grid((2448, 2448), (508, 508), 50)
    for side in (127, 64, 32, 16):
        for tl in grid.top_lefts:
            box = feature_box((side, side), tl, grid.ratio)
            assert box == release_box((side, side), tl, grid.ratio)
            assert box[0] + box[2] <= side and box[1] + box[3] <= side
    assert feature_box((127, 127), grid.top_lefts[-1], grid.ratio) == (101, 101, 26, 26)


def test_crop_guards_where_release_would_fail():
    # c5 of a 64x128 global map is 2x4; an 1/8 patch would give an empty crop in the release
    assert release_box((2, 4), (0.875, 0.875), (0.125, 0.125))[2:] == (0, 0)
    assert feature_box((2, 4), (0.875, 0.875), (0.125, 0.125)) == (1, 3, 1, 1)


def test_feature_exchange_shapes():
    """Global -> local crops, local maps, local -> global aggregation and the ensemble, light variant."""
    model = _light(num_classes=5)
    grid = patch_grid((128, 256), (32, 64), 8)
    image = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    with torch.no_grad():
        glob = model.global_branch(infer.resize_global(image, (32, 64), torch.device("cpu")))
        assert [tuple(f.shape) for f in glob.c] == [(1, 8, 8, 16), (1, 16, 4, 8), (1, 32, 2, 4), (1, 64, 1, 2)]
        assert [tuple(f.shape[1:]) for f in glob.ps0] == [(32, 1, 2), (32, 2, 4), (32, 4, 8), (32, 8, 16)]
        assert tuple(glob.ps3.shape) == (1, 64, 8, 16) and tuple(glob.out.shape) == (1, 5, 8, 16)
        idx = [0, 1, 2]
        assert tuple(crop(glob.c[0], grid, idx).shape) == (3, 8, 2, 4)  # 1/4 of the map per side
        x = infer.to_unit(np.stack([grid.crop(image, i) for i in idx]), torch.device("cpu"))
        local = model.local_branch(x, glob, grid, idx)
        assert [tuple(f.shape) for f in local.c] == [(3, 8, 8, 16), (3, 16, 4, 8), (3, 32, 2, 4), (3, 64, 1, 2)]
        assert tuple(local.ps3.shape) == (3, 64, 8, 16) and tuple(local.out.shape) == (3, 5, 8, 16)
        ens, g = model.ensemble(local.ps3, glob.ps3, grid, idx)
        assert tuple(ens.shape) == (3, 5, 8, 16) and g.shape == local.ps3.shape
        agg = Aggregator(glob, grid)
        for j in range(0, len(grid.boxes), 4):
            b = list(range(j, min(len(grid.boxes), j + 4)))
            xb = infer.to_unit(np.stack([grid.crop(image, i) for i in b]), torch.device("cpu"))
            agg.add(model.local_branch(xb, glob, grid, b), b)
        ext = agg.result()
        for k in ("c", "ps0", "ps1", "ps2"):
            assert [f.shape for f in ext[k]] == [f.shape for f in getattr(glob, k)]
        glob3 = model.global_branch(infer.resize_global(image, (32, 64), torch.device("cpu")), ext)
        assert tuple(glob3.ps3.shape) == (1, 64, 8, 16)


def _const_branch(values: list[float], hw: tuple[int, int]) -> Branch:
    maps = [torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 1, *hw).clone()]
    return Branch(tuple(maps * 4), maps[0], maps * 4, maps * 4, maps * 4, maps[0])


def test_aggregate_hand_made():
    """2x2 non-overlapping patches of a 64x64 image on an 8x8 global map: each patch's constant map
    lands in its 4x4 quadrant (template 1 everywhere)."""
    grid = patch_grid((64, 64), (32, 32), 0)
    assert grid.boxes == ((0, 0), (0, 32), (32, 0), (32, 32))
    glob = _const_branch([0.0], (8, 8))
    agg = Aggregator(glob, grid)
    agg.add(_const_branch([1.0, 2.0, 3.0, 4.0], (2, 2)), [0, 1, 2, 3])
    out = agg.result()["c"][0][0, 0]
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(4, 0).repeat_interleave(4, 1)
    assert torch.equal(out, expected)


def test_aggregate_divides_by_coverage():
    """Overlapping patches with the same constant value give that value back where the template
    is exact (the global map at full resolution)."""
    grid = patch_grid((40, 40), (24, 24), 8)  # starts 0, 16 -> overlap 8 px
    agg = Aggregator(_const_branch([0.0], (40, 40)), grid)
    agg.add(_const_branch([5.0] * 4, (24, 24)), [0, 1, 2, 3])
    assert torch.allclose(agg.result()["ps1"][0], torch.full((1, 1, 40, 40), 5.0))


def test_focal_loss_hand_computed():
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1).repeat(1, 1, 1, 2)
    target = torch.tensor([[[1, 255]]])
    # p_t = 0.75: (1 - 0.75)^3 * -ln 0.75
    assert focal_loss(logits, target, 3.0, ignore_index=255).item() == pytest.approx(0.25 ** 3 * -math.log(0.75), rel=1e-6)
    assert focal_loss(logits, torch.tensor([[[0, 1]]]), 0.0).item() == pytest.approx(
        (-math.log(0.25) - math.log(0.75)) / 2, rel=1e-6)  # gamma 0 = cross-entropy
    with pytest.raises(ValueError, match="must match"):
        focal_loss(logits, torch.zeros(1, 2, 2, dtype=torch.int64))


def test_paste_sums_overlaps_nearest():
    """Patch logits at 1/4 size go ``nearest`` to the patch and add up where patches overlap."""
    grid = patch_grid((8, 12), (8, 8), 4)  # starts 0 and 4 along the width
    canvas = torch.zeros(1, 8, 12)
    logits = torch.tensor([1.0, 10.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    infer._paste(canvas, logits, grid, [0, 1])
    assert torch.equal(canvas[0, 0], torch.tensor([1, 1, 1, 1, 11, 11, 11, 11, 10, 10, 10, 10.0]))


def test_eight_views_undo_their_transform(monkeypatch):
    """With a pipeline that is exactly equivariant (logits = the image's RGB), every view rotated
    and flipped back equals the identity view: 8 views give the 1-view labels."""
    def fake_view(image, model, fixed, stage, g, p, *rest):
        assert (g[0] < g[1]) == (image.shape[0] < image.shape[1])  # sizes follow the rotation
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()

    monkeypatch.setattr(infer, "predict_view", fake_view)
    image = np.random.default_rng(1).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    one = infer.predict(image, None, None, GLNetConfig(views=1), (2, 4), (3, 5), torch.device("cpu"))
    eight = infer.predict(image, None, None, GLNetConfig(views=8), (2, 4), (3, 5), torch.device("cpu"))
    assert torch.equal(one, eight) and torch.equal(one, torch.from_numpy(image).long().argmax(-1))
    assert infer.views(8) == [(f, k) for f in (False, True) for k in range(4)]


def test_resize_label_is_pil_nearest():
    label = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert infer.resize_label(label, (2, 2)).tolist() == [[5, 7], [13, 15]]  # centres (1.5 -> 1), (3.5 -> 3)


def test_train_refine_all_stages(tiny_ctx, tiny_dataset):
    """Two steps per stage write the three files (whole module, release layout); every stage
    predicts full-resolution labels, and the labels name the stage and the views."""
    cfg = GLNetConfig(iterations_global=2, iterations_local=2, iterations_l2g=2, batch_size=2, min_overlap=0)
    paths = GLNetMethod.checkpoints(cfg, tiny_ctx)
    GLNetMethod.train(cfg, tiny_ctx, tiny_dataset, paths)
    assert sorted(p.name for p in paths.values()) == ["glnet_global.pt", "glnet_global2local.pt", "glnet_local2global.pt"]
    s1, s2, s3 = (torch.load(paths[k], weights_only=True) for k in ("global", "global2local", "local2global"))
    assert set(s1) == set(s3) == set(_light(4).state_dict())
    # stage 2 trains only the local branch and the ensemble; stage 3 only the global one and the ensemble
    assert all(torch.equal(s1[k], s2[k]) for k in s1 if k.startswith(("resnet_global.", "fpn_global.")))
    assert not torch.equal(s1["fpn_local.smooth.weight"], s2["fpn_local.smooth.weight"])
    assert all(torch.equal(s2[k], s3[k]) for k in s2 if k.startswith(("resnet_local.", "fpn_local.")))
    assert not torch.equal(s2["fpn_global.smooth.weight"], s3["fpn_global.smooth.weight"])
    image = tiny_dataset[0].image
    labels = {}
    for stage, views in ((1, 1), (2, 1), (3, 1), (3, 8)):
        method = GLNetMethod(dataclasses.replace(cfg, stage=stage, views=views), tiny_ctx)
        out = method.refine(image, None)
        assert out.shape == (64, 128) and out.dtype == torch.int64
        labels[(stage, views)] = method.label
    assert labels == {(1, 1): "GLNet (global only)", (2, 1): "GLNet (global2local)", (3, 1): "GLNet",
                      (3, 8): "GLNet (8 views)"}
    with pytest.raises(ValueError, match="stage"):
        GLNetMethod(dataclasses.replace(cfg, stage=4), tiny_ctx)
