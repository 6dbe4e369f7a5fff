"""MagNet's refinement module: the released state-dict layout, strict loading and the input order."""

from __future__ import annotations

import pytest
import torch

import magnet
from magnet.refinement import RefinementModule, load_refiner


def released_layout(c: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released refiner, written out from the spec's table (magnet.md §1.6)."""
    layout: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, n: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{prefix}.{name}"] = (n,)
        layout[f"{prefix}.num_batches_tracked"] = ()

    bn("bn0", 2 * c)
    layout["conv1.weight"] = (64, 2 * c, 3, 3)
    bn("bn1", 64)
    layout["conv2.weight"] = (64, 64, 3, 3)
    bn("bn2", 64)
    for block, cin in ((0, 64), (1, 128)):
        p = f"residual.{block}"
        layout[f"{p}.conv1.weight"] = (32, cin, 1, 1)
        bn(f"{p}.bn1", 32)
        layout[f"{p}.conv2.weight"] = (32, 32, 3, 3)
        bn(f"{p}.bn2", 32)
        layout[f"{p}.conv3.weight"] = (128, 32, 1, 1)
        bn(f"{p}.bn3", 128)
    layout["residual.0.downsample.0.weight"] = (128, 64, 1, 1)
    bn("residual.0.downsample.1", 128)
    layout["seg_conv.weight"] = (c, 128, 1, 1)
    return layout


@pytest.mark.parametrize("c, params", [(19, 103_500), (7, 88_092)])
def test_state_dict_layout_and_parameter_count(c, params):
    module = RefinementModule(c)
    state = module.state_dict()
    assert len(state) == 60
    assert {k: tuple(v.shape) for k, v in state.items()} == released_layout(c)
    assert sum(p.numel() for p in module.parameters()) == params
    assert all(m.momentum == 0.01 for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.bias is None for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_lazy_export():
    assert magnet.RefinementModule is RefinementModule


def test_strict_loading_of_released_key_names(tmp_path):
    """A flat dict written with the released names (not from our module) loads strictly and is used."""
    gen = torch.Generator().manual_seed(1)
    state = {k: (torch.tensor(3) if not shape else torch.rand(shape, generator=gen))
             for k, shape in released_layout(19).items()}
    path = tmp_path / "cityscapes_refinement_512.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel prefix is stripped
    module = load_refiner(path, 19)
    assert not module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, state[k]), k
    torch.save({k: v for k, v in state.items() if k != "seg_conv.weight"} | {"extra.weight": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): \['seg_conv.weight'\].*unexpected keys \(1\)"):
        load_refiner(path, 19)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_refiner(tmp_path / "nope.pt", 19)


def test_input_order_fine_first_then_coarse():
    """conv1 sees [fine, coarse]: zeroing the weights of the second half makes the output ignore coarse."""
    torch.manual_seed(0)
    module = RefinementModule(3).eval()
    with torch.no_grad():
        module.conv1.weight[:, 3:] = 0
    fine, coarse = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    out = module(fine, coarse)
    assert out.shape == (2, 3, 8, 8)
    assert torch.equal(out, module(fine, torch.rand(2, 3, 8, 8)))
    assert not torch.allclose(out, module(torch.rand(2, 3, 8, 8), coarse))


def test_bad_input_shapes():
    module = RefinementModule(3)
    with pytest.raises(ValueError, match="expected two"):
        module(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4, 4))
    with pytest.raises(ValueError, match="num_classes >= 2"):
        RefinementModule(1)


def test_fused_refiner_matches_the_plain_module():
    from magnet.refinement import FusedRefiner

    torch.manual_seed(0)
    module = RefinementModule(5)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    module.eval()
    fused = FusedRefiner(module)
    fine, coarse = torch.softmax(torch.randn(3, 5, 16, 24), 1), torch.softmax(torch.randn(3, 5, 16, 24), 1)
    with torch.no_grad():
        plain, fast = module(fine, coarse), fused(fine, coarse)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.net.residual.modules())
    assert module.bn1.running_var.abs().sum() > 0 and isinstance(module.bn1, torch.nn.BatchNorm2d)  # original intact
