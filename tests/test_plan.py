"""Issue 21 item 2: every run prints its plan first; missing weights stop it up front; a plugin trains alone.

A tiny reference set (a 3-step backbone of width 8 with a manifest, as ``weights/<dataset>``) stands
for the committed one, and the example plugin ``class_bias`` for a user's method.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.core.config import build, file_digest
from bench.evaluation import records

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "class_bias_plugin"


def _flat(tmp: Path, **extra):  # noqa: ANN003, ANN202
    flat = {"dataset": "synthetic", "data.size": "128x64", "data.n_images": 2, "train_data.n_images": 2,
            "input_size": "32x16", "methods": ["downsample", "class_bias"], "table1_methods": [], "table1_sizes": [],
            "backbone_options": {"width": 8}, "backbone_train": {"iterations": 3, "batch_size": 2},
            "class_bias.iterations": 3, "class_bias.pixels_per_step": 64, "warmup": 0, "threads": 1,
            "isolate": False, "save_predictions": 0, "bootstrap": 0, "train": False,
            "out_dir": str(tmp / "runs"), "tables_dir": str(tmp / "tables")}
    flat.update(extra)
    return flat


@pytest.fixture
def plugin(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("MAGNET_BENCH_METHODS", "class_bias=class_bias_refiner.method:ClassBias")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGIN), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(PLUGIN))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_set(folder: Path, tmp: Path) -> Path:
    """Train the tiny backbone into ``folder`` and list it in a manifest, as ``weights/<dataset>`` is."""
    from bench.pipeline.runner import train_missing

    cfg = build(_flat(tmp, methods=["downsample"], train=True, checkpoint_dir=str(folder)))
    assert train_missing(cfg)["backbone"] == "trained"
    files = {name: {"sha256": _sha(folder / name), "bytes": (folder / name).stat().st_size,
                    "what": "sidecar" if name.endswith(".json") else "backbone", "units": []}
             for name in ("backbone.pt", "backbone.pt.train.json")}
    (folder / "manifest.json").write_text(json.dumps({"schema": 1, "files": files}))
    return folder


def _write_config(tmp: Path, flat: dict) -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(json.dumps(flat))
    return path


def test_missing_plugin_weights_stop_the_run_up_front_and_the_hint_trains_the_plugin_alone(
        tmp_path, plugin, monkeypatch, capsys):  # noqa: ANN001
    """Today: the run goes on, writes tables of "no weights" rows, exits 1, and hints `make train`, which
    writes elsewhere than the lookup; with train=true it trains a backbone nobody asked for."""
    monkeypatch.chdir(tmp_path)  # results/checkpoints/<dataset> (where train=true writes) lands in tmp
    ref = reference_set(tmp_path / "ref", tmp_path)
    config = _write_config(tmp_path, _flat(tmp_path, reference_dir=str(ref)))
    capsys.readouterr()

    start = time.monotonic()
    assert main(["run", "--config", str(config)]) == 2
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    assert "plan: 2 unit(s)" in out and "backbone light: ref/backbone.pt (reference " in out  # cwd-relative
    lines = [line for line in err.splitlines() if "class_bias @ 32x16: no weights" in line]
    assert len(lines) == 1, err  # one line per blocked unit, and downsample is not blocked
    assert "downsample @" not in err
    assert not (tmp_path / "tables").exists() and not (tmp_path / "runs").exists()  # no table, no record
    assert seconds < 30, seconds  # issue: within 5 s on an idle machine; here only: nothing was trained or swept

    # the hint: the command that trains class_bias, and the folder it writes
    command = lines[0].split("`")[1]
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "bench", "train"] and "methods=[class_bias]" in words
    written = lines[0].split("it writes ")[1].split(",")[0]
    assert main(words[3:]) == 0  # train class_bias alone, as the hint says
    trained = list((tmp_path / "results" / "checkpoints" / "synthetic").glob("methods-*/class_bias.pt"))
    assert [str(p.parent.relative_to(tmp_path)) for p in trained] == [written]
    # the backbone came from the reference set: none was trained, and the folder is named after its digest
    assert not (tmp_path / "results" / "checkpoints" / "synthetic" / "backbone.pt").exists()
    assert trained[0].parent.name.endswith(file_digest(ref / "backbone.pt", length=8))
    assert _sha(ref / "backbone.pt") == json.loads((ref / "manifest.json").read_text())["files"]["backbone.pt"]["sha256"]

    # "which this command reads with train=true added": it does, training nothing more
    capsys.readouterr()
    assert main(["run", "--config", str(config), "train=true"]) == 0
    out, _ = capsys.readouterr()
    assert f"bias {written}/class_bias.pt (trained " in out
    ok = {r["method"] for r in records.load(tmp_path / "runs") if r["type"] == "image" and r["status"] == "ok"}
    assert ok == {"downsample", "class_bias"}
    assert not (tmp_path / "results" / "checkpoints" / "synthetic" / "backbone.pt").exists()


def test_train_true_with_a_reference_set_plans_the_plugin_alone(tmp_path, plugin, monkeypatch, capsys):  # noqa: ANN001
    """Today `methods=[downsample,class_bias] train=true` trains a backbone first (6000 steps on synthetic)."""
    monkeypatch.chdir(tmp_path)
    ref = reference_set(tmp_path / "ref", tmp_path)
    config = _write_config(tmp_path, _flat(tmp_path, reference_dir=str(ref)))
    capsys.readouterr()
    assert main(["run", "--config", str(config), "train=true", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert f"backbone light: ref/backbone.pt (reference {file_digest(ref / 'backbone.pt', length=8)})" in out
    assert "class_bias.pt (train)" in out and "backbone.pt (train)" not in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()  # a dry run writes nothing
    # asking for more: a weights folder of one's own gets a backbone of its own
    assert main(["run", "synthetic", "train=true", f"checkpoint_dir={tmp_path / 'own'}", "--dry-run",
                 "--config", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "backbone light: own/backbone.pt (train)" in out


def test_a_missing_backbone_names_the_training_command_and_the_folder_it_writes(tmp_path, capsys):  # noqa: ANN001
    flat = _flat(tmp_path, methods=["downsample"], checkpoint_dir=str(tmp_path / "ck"))
    del flat["class_bias.iterations"], flat["class_bias.pixels_per_step"]  # no plugin here
    config = _write_config(tmp_path, flat)
    assert main(["run", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    line = next(line for line in err.splitlines() if "downsample @ 32x16: no weights" in line)
    assert f"({tmp_path / 'ck' / 'backbone.pt'})" in line
    assert f"it writes {tmp_path / 'ck'}, the folder this command reads" in line
    assert "`python -m bench train " in line and f"--config {config}`" in line


def test_the_plan_shows_sources_digests_and_an_estimate_from_an_earlier_run(tmp_path):  # noqa: ANN001
    from bench.pipeline.plan import build_plan, plan_lines
    from bench.pipeline.runner import train_missing

    flat = _flat(tmp_path, methods=["downsample", "dgf"], checkpoint_dir=str(tmp_path / "ck"), train=True)
    train_missing(build({**flat, "methods": ["downsample"]}))  # the backbone alone
    # an earlier run folder beside this run's: downsample@32x16 took 12 s for 4 images (3 s an image)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "run.json").write_text(json.dumps({
        "schema": 2, "config": {"dataset": "synthetic"}, "image_ids": ["a", "b", "c", "d"],
        "timing": {"started": 1.0, "units": {"downsample@32x16": {"seconds": 12.0, "status": "ok"},
                                              "dgf@32x16": {"seconds": 99.0, "status": "error"}}}}))
    plan = build_plan(build({**flat, "out_dir": str(tmp_path / "now")}))
    by_method = {u.method: u for u in plan.units}
    assert plan.n_images == 2
    assert by_method["downsample"].estimate_s == pytest.approx(3.0 * 2)  # 12 s / 4 images x 2 images
    assert by_method["dgf"].estimate_s is None  # the earlier dgf unit failed: no estimate from it
    backbone = by_method["dgf"].weights[0]
    assert (backbone.key, backbone.source, backbone.digest) == ("backbone", "trained",
                                                                file_digest(tmp_path / "ck" / "backbone.pt", 8))
    assert [w.source for w in by_method["dgf"].weights[1:]] == ["train"]
    text = "\n".join(plan_lines(plan))
    assert f"downsample @ 32x16: no weights of its own + backbone; about 6 s (from {earlier})" in text
    # the same files, train off: "missing"; given without a sidecar: "given"
    given = tmp_path / "given.pt"
    given.write_bytes((tmp_path / "ck" / "backbone.pt").read_bytes())
    off = build_plan(build({**flat, "out_dir": str(tmp_path / "now"), "train": False, "backbone_checkpoint": str(given)}))
    dgf = next(u for u in off.units if u.method == "dgf")
    assert [w.source for w in dgf.weights] == ["given", "missing"]


def test_a_units_own_missing_weights_message_names_where_training_writes():
    """The unit's fallback message (bench smoke, create_method) said `make train DATASET=synthetic`, which
    writes results/checkpoints/synthetic while the lookup is weights/synthetic."""
    from bench.weights.reference import train_hint

    off = build({"dataset": "synthetic", "reference_dir": "weights/synthetic", "train": False})
    hint = train_hint(off, "class_bias")
    assert "make train" not in hint and "methods=[class_bias]" in hint
    assert "results/checkpoints/synthetic, which a run reads with train=true" in hint
    plain = train_hint(build({"dataset": "cityscapes", "train": False}))
    assert plain.endswith("trains them into results/checkpoints/cityscapes, the folder this run reads")


def test_the_plan_says_which_weights_are_stale_before_the_run():
    """A changed training option (dgf.iterations) was first seen in the unit's record, after the sweep."""
    from bench.pipeline.configure import load
    from bench.pipeline.plan import build_plan

    cfg = load("synthetic", {"methods": ["dgf"], "table1_sizes": [], "dgf.iterations": 7, "limit": 1})
    (dgf,) = build_plan(cfg, estimates=False).units
    assert [w.source for w in dgf.weights] == ["reference", "reference"]
    assert dgf.note == "stale weights (iterations: trained with 450, config has 7): recorded as stale"
    (same,) = build_plan(load("synthetic", {"methods": ["dgf"], "table1_sizes": [], "limit": 1}), estimates=False).units
    assert same.note == ""


def test_weights_from_names_no_training_command_it_would_refuse(tmp_path, plugin, capsys):  # noqa: ANN001
    """weights_from refuses train=true: its hint must not name a training that writes into the reference set."""
    assert main(["run", "synthetic", "weights_from=synthetic", "methods=[downsample,class_bias]", "limit=1",
                 f"out_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "class_bias @ 128x64: no weights" in line)
    assert "weights_from=synthetic evaluates given weights and trains nothing" in line
    assert "bench train" not in line and not (tmp_path / "o").exists()
