"""MagNet's released files against key lists taken from the release, not from our modules.

``tests/golden/magnet_release_keys.json`` holds, per model, the ``state_dict()`` names and shapes
of the release's own classes (VinAIResearch/MagNet @ 7f5b876, built in a scratch copy on the meta
device, ImageNet downloads left out; each entry's ``source`` names the class and call). The
released files themselves could not be inspected (their host is gone: magnet.md 2.3), so the
files written here follow the release's trainer: ``best.pth`` = the ``FullModel`` wrapper's
``model.module.state_dict()``, i.e. every key with ``model.`` plus ``loss.criterion.weight``
(magnet.md 2.2); refiners are flat dicts (``test.py`` loads them as they are).

Each file is written from the manifest alone (every tensor filled with its own index, so a key
loaded into the wrong parameter shows), loaded through the harness's loader, and compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.models.backbones import create_backbone
from magnet.refinement import RefinementModule, load_refiner

MANIFEST = json.loads((Path(__file__).parent / "golden" / "magnet_release_keys.json").read_text())
BACKBONES = [("hrnet18_small_v2_ocr", 19), ("resnet50_fpn", 7),
             pytest.param("pspnet_resnet101", 5, marks=pytest.mark.slow)]  # 260 MB file: slow


def _no_init(monkeypatch):
    for name in ("kaiming_normal_", "normal_", "constant_", "uniform_", "kaiming_uniform_", "zeros_", "ones_"):
        monkeypatch.setattr(torch.nn.init, name, lambda t, *a, **k: t)


def _released_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict with the manifest's names and shapes; tensor i filled with i."""
    state = {}
    for i, (key, shape) in enumerate(MANIFEST[name]["keys"]):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i, dtype=torch.int64)
        else:
            state[key] = torch.full(shape, float(i))
    return state


@pytest.mark.parametrize(("name", "classes"), [("hrnet18_small_v2_ocr", 19), ("resnet50_fpn", 7),
                                               ("pspnet_resnet101", 5)])
def test_our_backbones_have_the_release_keys_in_order(monkeypatch, name, classes):
    _no_init(monkeypatch)
    with torch.device("meta"):
        model = create_backbone(name, classes)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == MANIFEST[name]["keys"]


@pytest.mark.parametrize(("name", "classes"), BACKBONES)
def test_a_file_in_the_release_layout_loads_strictly_into_the_right_parameters(tmp_path, name, classes):
    state = _released_state(name)
    path = tmp_path / f"{name}.pth"
    wrapped = {f"model.{k}": v for k, v in state.items()}
    wrapped["loss.criterion.weight"] = torch.ones(classes)  # the trainer's class-weighted loss
    torch.save(wrapped, path)
    loaded = create_backbone(name, classes, checkpoint=path).state_dict()
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_a_release_file_missing_one_key_is_refused(tmp_path):
    state = _released_state("hrnet18_small_v2_ocr")
    del state["cls_head.weight"]
    path = tmp_path / "cityscapes_hrnet.pth"
    torch.save({f"model.{k}": v for k, v in state.items()}, path)
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): \['cls_head.weight'\]"):
        create_backbone("hrnet18_small_v2_ocr", 19, checkpoint=path)


def test_refiner_keys_follow_the_release_in_order():
    ours = [[k, list(v.shape)] for k, v in RefinementModule(19).state_dict().items()]
    assert ours == MANIFEST["refiner"]["keys"]


def test_the_hand_written_refiner_layout_equals_the_release(tmp_path):
    """``test_magnet_refinement.released_layout`` (written by hand from the release's code) agrees
    with the key list taken from the release, so its strict-load test checks the release's names.
    Our module also keeps the release's order (``test_refiner_keys_follow_the_release_in_order``)."""
    from test_magnet_refinement import released_layout

    # same names and shapes (the hand-written one lists them in another order; loading is by name)
    assert {k: list(s) for k, s in released_layout(19).items()} == dict(MANIFEST["refiner"]["keys"])
    state = _released_state("refiner")
    path = tmp_path / "cityscapes_refinement_512.pth"
    torch.save(state, path)
    loaded = load_refiner(path, 19).state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
