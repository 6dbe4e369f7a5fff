"""Registry: lazy import, did-you-mean, unavailable dependency, entry points."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

import bench
from bench import registry


def test_import_bench_imports_no_optional_dependency():
    code = ("import sys, bench; bench.list_methods(); "
            "bad = [m for m in ('pydensecrf', 'mmseg', 'mmcv', 'baselines.densecrf', 'magnet.method') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_list_methods_patterns():
    assert bench.list_methods("magnet*") == ["magnet", "magnet_fast"]
    assert {"downsample", "patching", "densecrf", "dgf", "pointrend", "segfix"} <= set(bench.list_methods())


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean 'magnet'"):
        registry.resolve("magnett")


def test_missing_dependency_is_unavailable(monkeypatch, tmp_path):
    mod = tmp_path / "fake_method_mod.py"
    mod.write_text("import not_installed_pkg_xyz\nclass M: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins", lambda: {"fake": "fake_method_mod:M"})
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
