"""Registry: lazy import, did-you-mean, unavailable dependency, entry points."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

import bench
from bench.core import registry


def test_import_bench_imports_no_optional_dependency():
    code = ("import sys, bench; bench.list_methods(); "
            "bad = [m for m in ('pydensecrf', 'mmseg', 'mmcv', 'baselines.densecrf', 'magnet.method') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_list_methods_patterns():
    assert bench.list_methods("magnet*") == ["magnet", "magnet_fast", "magnet_fast_paper"]
    assert {"downsample", "patching", "densecrf", "dgf", "pointrend", "segfix"} <= set(bench.list_methods())


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean 'magnet'"):
        registry.resolve("magnett")


def test_missing_dependency_is_unavailable(monkeypatch, tmp_path):
    mod = tmp_path / "fake_method_mod.py"
    mod.write_text("import not_installed_pkg_xyz\nclass M: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.ENV_VAR, "fake=fake_method_mod:M")
    with pytest.raises(registry.MethodUnavailable, match="method 'fake' unavailable: install not_installed_pkg_xyz"):
        registry.resolve("fake")


def test_entry_point_plugin(monkeypatch, tmp_path):
    mod = tmp_path / "plugin_mod.py"
    mod.write_text("class Mine:\n    display_name = 'Mine'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [SimpleNamespace(name="mine", value="plugin_mod:Mine")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == registry.ENTRY_POINT_GROUP else [])
    assert "mine" in bench.list_methods()
    assert registry.resolve("mine").display_name == "Mine"


def test_plugin_cannot_shadow_builtin(monkeypatch):
    eps = [SimpleNamespace(name="magnet", value="elsewhere:Other")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.raises(ValueError, match="clashes"):
        registry.method_paths()


def test_create_method_rejects_unknown_option():
    with pytest.raises(KeyError, match="unknown option"):
        bench.create_method("patching", ctx=object(), not_an_option=1)


def test_create_method_from_dataset_config(tmp_path):
    """Notebook use: create_method builds the context from a dataset config and its trained backbone."""
    import numpy as np

    from bench.models.backbones import create_backbone
    from bench.models.coarse import compute_coarse

    ckpt = tmp_path / "bb.pt"
    import torch

    torch.save(create_backbone("light", 19, width=8).state_dict(), ckpt)
    over = {"backbone_checkpoint": str(ckpt), "backbone_options": {"width": 8}, "input_size": "32x16"}
    method = bench.create_method("patching", overrides=over, batch_size=2)
    assert method.cfg.batch_size == 2 and method.ctx.input_size == (32, 16)
    image = np.zeros((64, 128, 3), np.uint8)
    assert method.refine(image, None).shape == (64, 128)
    down = bench.create_method("downsample", overrides=over)
    coarse = compute_coarse(down.ctx.backbone, image, (32, 16), down.device)
    assert down.refine(image, coarse).shape == (64, 128)


def test_one_registry_class_serves_methods_datasets_and_backbones():
    from bench.data import DATASETS
    from bench.models.backbones import BACKBONES

    for reg, name in ((registry.METHODS, "downsample"), (DATASETS, "synthetic"), (BACKBONES, "light")):
        assert isinstance(reg, registry.Registry) and name in reg
    with pytest.raises(KeyError, match="unknown dataset 'synthetik'; did you mean 'synthetic'"):
        DATASETS.resolve("synthetik")
