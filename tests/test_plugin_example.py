"""The example plugin (examples/class_bias_plugin) installed as a package and swept by `make bench`.

The package is installed by pip into a temporary folder (``--target``, no dependencies, no build
isolation where the venv has setuptools: seconds, and the project's venv is left as it is) and found through its entry point in
``magnet_bench.methods`` with that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "class_bias_plugin"
TINY_SYNTHETIC = ["data.size=128x64", "data.n_images=2", "train_data.n_images=2", "input_size=32x16",
                  "backbone_options={width: 8}", "backbone_train={iterations: 3, batch_size: 2}", "table1_sizes=[]",
                  "warmup=0", "threads=1", "bootstrap=0", "isolate=false", "save_predictions=1"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The plugin pip-installed into a temporary folder (a copy of its source is built, so the tree stays clean)."""
    base = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, base / "src")
    target = base / "site"
    # without build isolation when the venv has setuptools (no index needed); Python >= 3.12 venvs lack it
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", *isolation, "--no-compile",
                    "--quiet", "--target", str(target), str(source)], check=True, timeout=300)
    return target


def test_entry_point_contract_and_make_bench(installed, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(installed))
    from bench.checks.contract import run_checks
    from bench.core.registry import list_methods, method_paths

    assert method_paths()["class_bias"] == "class_bias_refiner.method:ClassBias"  # from the entry point
    assert "class_bias" in list_methods()
    assert run_checks("class_bias", {"iterations": 5}) == []

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    args = [*TINY_SYNTHETIC, "methods=[downsample,class_bias]", "train=true", "class_bias.iterations=5",
            f"checkpoint_dir={tmp_path / 'ck'}", f"out_dir={tmp_path / 'runs'}"]
    run = subprocess.run(["make", "bench", "DATASET=synthetic", "ARGS=" + " ".join(f"'{a}'" for a in args)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = (tmp_path / "runs" / "tables" / "table3.md").read_text()  # synthetic's Table 2 lists the paper's rows
    assert "Class-bias (example plugin)" in table and "Downsample" in table
    assert "2 units: 2 ok" in run.stdout
    weights = list((tmp_path / "ck").glob("methods-*/class_bias.pt"))
    assert len(weights) == 1 and torch.load(weights[0], weights_only=True)["bias"].shape == (19,)
    sidecar = json.loads(Path(f"{weights[0]}.train.json").read_text())
    assert sidecar["iterations"] == 5  # the weights record the options that trained them


def test_a_broken_plugin_fails_the_contract_by_name(tmp_path, monkeypatch):
    """The suite can fail: a plugin whose refine returns float labels of the wrong size is caught."""
    (tmp_path / "broken_plugin.py").write_text(
        "import torch\n"
        "from baselines.downsample import Downsample\n"
        "class Broken(Downsample):\n"
        "    name = 'broken_plugin'\n"
        "    display_name = 'Broken'\n"
        "    def refine(self, image, coarse):\n"
        "        return torch.zeros(image.shape[0], image.shape[1] - 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MAGNET_BENCH_METHODS", "broken_plugin=broken_plugin:Broken")
    from bench.checks.contract import run_checks

    failures = run_checks("broken_plugin")
    assert len(failures) == 1 and "refine returned shape (64, 127), expected the image's (64, 128)" in failures[0]
