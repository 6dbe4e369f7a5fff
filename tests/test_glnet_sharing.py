"""GLNet's feature sharing, checked by outputs that change when a branch is cut.

The shape tests of ``test_glnet.py`` pass when the global maps handed to the local branch are
zeroed (or the aggregated local maps handed back to the global branch are), because a zero map
has the right shape. Here:

- global -> local: every shared global map (c2..c5, and the P5..P2 of ps0, ps1, ps2) moves the
  local branch's output when it is perturbed, through ``GLNet.local_branch`` (the crop included);
- the crop reads the patch's own region: a change outside patch 0's box of the global map leaves
  patch 0's local output bit-identical, a change inside moves it (box computed by hand);
- local -> global: every aggregated map moves the stage-3 global output;
- end to end: ``predict_view`` at stages 2 and 3 gives other logits when the sharing is cut
  (global crops or the aggregate replaced by zeros), so the inference path uses both directions.

The model is the light variant with its release initialisation (random, seeded); "moves" means a
difference above float32 noise, "identical" means ``torch.equal``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.glnet import infer, net
from baselines.glnet.net import SHARED, Aggregator, Branch, GLNet, global_crops
from baselines.glnet.patches import patch_grid

LIGHT = {"depth": 18, "base_width": 8, "fpn_width": 32, "head_width": 16}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = GLNet(5, **LIGHT).eval()
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    grid = patch_grid((64, 64), (32, 32), 0)  # 2x2 patches, no overlap: patch 0 is the top-left quadrant
    assert grid.boxes == ((0, 0), (0, 32), (32, 0), (32, 32))
    with torch.no_grad():
        glob = model.global_branch(infer.resize_global(image, (64, 64), CPU))
    patches = infer.to_unit(np.stack([grid.crop(image, i) for i in range(4)]), CPU)
    return model, image, grid, glob, patches


def _moved(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() > 1e-5 * a.abs().max())


def _replace(branch: Branch, key: str, level: int, new: torch.Tensor) -> Branch:
    maps = list(getattr(branch, key))
    maps[level] = new
    fields = {k: getattr(branch, k) for k in ("c", "out", "ps0", "ps1", "ps2", "ps3")}
    fields[key] = tuple(maps) if key == "c" else maps
    return Branch(**fields)


def _noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(like.shape, generator=g) * (like.std() + 1.0)


@pytest.mark.parametrize("key", SHARED)
def test_every_global_map_reaches_the_local_branch(setup, key):
    model, _, grid, glob, patches = setup
    with torch.no_grad():
        base = model.local_branch(patches, glob, grid, [0, 1, 2, 3])
        for level, f in enumerate(getattr(glob, key)):
            cut = model.local_branch(patches, _replace(glob, key, level, f + _noise(f, level)), grid, [0, 1, 2, 3])
            assert _moved(base.out, cut.out), f"global {key}[{level}] does not reach the local output"
            assert _moved(base.ps3, cut.ps3), f"global {key}[{level}] does not reach the local ps3"


def test_the_local_branch_reads_its_own_patch_of_the_global_map(setup):
    model, _, grid, glob, patches = setup
    c2 = glob.c[0]  # (1, 8, 16, 16): 1/4 of the 64x64 global image
    assert tuple(c2.shape[-2:]) == (16, 16)
    # patch 0 covers rows 0..31 and columns 0..31 of 64: rows 0..7 and columns 0..7 of this map
    inside = torch.zeros_like(c2)
    inside[..., :8, :8] = 1.0
    with torch.no_grad():
        base = model.local_branch(patches[:1], glob, grid, [0])
        out = model.local_branch(patches[:1], _replace(glob, "c", 0, c2 + 5.0 * (1 - inside)), grid, [0])
        assert torch.equal(base.out, out.out), "a change outside patch 0's box moved its output"
        moved = model.local_branch(patches[:1], _replace(glob, "c", 0, c2 + 5.0 * inside), grid, [0])
        assert _moved(base.out, moved.out), "a change inside patch 0's box left its output unchanged"


@pytest.mark.parametrize("key", SHARED)
def test_every_aggregated_local_map_reaches_the_global_branch(setup, key):
    model, image, grid, glob, patches = setup
    xg = infer.resize_global(image, (64, 64), CPU)
    with torch.no_grad():
        agg = Aggregator(glob, grid)
        agg.add(model.local_branch(patches, glob, grid, [0, 1, 2, 3]), [0, 1, 2, 3])
        ext = agg.result()
        base = model.global_branch(xg, ext)
        for level, f in enumerate(ext[key]):
            changed = {k: list(v) for k, v in ext.items()}
            changed[key][level] = f + _noise(f, 10 + level)
            cut = model.global_branch(xg, changed)
            assert _moved(base.out, cut.out), f"aggregated {key}[{level}] does not reach the global output"


def _view(model: GLNet, image: np.ndarray, stage: int) -> torch.Tensor:
    return infer.predict_view(image, model, model, stage, (64, 64), (32, 32), 0, 4, CPU)


def test_stage2_logits_change_when_the_global_crops_are_cut(setup, monkeypatch):
    model, image, *_ = setup
    shared = _view(model, image, 2)

    def zero_crops(glob, grid, index, b=0):
        return {k: [torch.zeros_like(f) for f in v] for k, v in global_crops(glob, grid, index, b).items()}

    monkeypatch.setattr(net, "global_crops", zero_crops)
    assert _moved(shared, _view(model, image, 2)), "stage 2 does not use the global crops"


def test_stage3_logits_change_when_the_aggregate_is_cut(setup, monkeypatch):
    model, image, *_ = setup
    shared = _view(model, image, 3)
    result = Aggregator.result
    monkeypatch.setattr(Aggregator, "result",
                        lambda self: {k: [torch.zeros_like(f) for f in v] for k, v in result(self).items()})
    assert _moved(shared, _view(model, image, 3)), "stage 3 does not use the aggregated local maps"
