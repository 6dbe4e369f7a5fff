"""Issue 11 obs. 2, 4, 5, 6, 8: honest exit codes, user errors up front, what a run opens and writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from bench.cli import main as cli
from bench.evaluation import records
from bench.models.state_dict import load_weights
from bench.core.errors import UnsafeCheckpoint, UserError
from bench.report.outcome import exit_code, summary_line
from bench.report.table_model import UnitResult
from tests.cityscapes_tiny import cityscapes_flat, make_cityscapes
from tests.test_runner import _flat


def _config(tmp_path, flat) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(flat))
    return str(path)


def _run(tmp_path, flat, *overrides):
    return cli.main(["run", "--config", _config(tmp_path, flat), *overrides])


def test_missing_weights_stop_the_run_before_it_starts(tmp_path, capsys):
    # issue 21: no longer exit 1 after tables of "no weights" rows; the plan stops it (tests/test_plan.py)
    flat = _flat(tmp_path, methods=["downsample"], table1_sizes=[], train=False, save_predictions=0)
    assert _run(tmp_path, flat) == 2
    out = capsys.readouterr()
    assert "downsample @ 32x16: no weights" in out.err and not (tmp_path / "tables").exists()


def test_summary_counts_every_outcome_and_only_all_ok_exits_0():
    def unit(status, **kw):
        return UnitResult("m", "M", "32x16", kw.pop("n", 0), status, **kw)

    results = {("a", "1"): unit("ok", n=4, expected=4), ("b", "1"): unit("ok", n=3, expected=4),
               ("c", "1"): unit("error"), ("d", "1"): unit("missing_checkpoint"), ("e", "1"): unit("stale_checkpoint"),
               ("f", "1"): unit("oom"), ("g", "1"): unit("reference_mismatch")}
    assert summary_line(results) == "7 units: 1 ok, 1 partial, 3 failed, 1 missing weights, 1 stale"
    assert exit_code(results) == 1 and exit_code({("a", "1"): results[("a", "1")]}) == 0


USER_ERRORS = [
    (["methods=[magnett]"], "unknown method 'magnett'; did you mean 'magnet'"),
    (["magnt.n_points=0.5"], "magnt.n_points: unknown method 'magnt'; did you mean 'magnet'"),
    (["magnet.n_pointz=0.5"], "magnet.n_pointz: unknown option of magnet; did you mean 'n_points'"),
    (["limit=0"], "limit must be an integer >= 1"),
    (["limit=-1"], "limit must be an integer >= 1"),
    (["limit=abc"], "limit must be an integer >= 1"),
    (["threads=-3"], "threads must be an integer >= 1"),
    (["absent=maybe"], "absent must be one of ['nan', 'zero']"),
    (["input_size=abc"], "input_size: a size must be 'WxH'"),
    (["foo=1"], "unknown config key 'foo'"),
    (["device=cuda:7"], "device: 'cuda:7'"),
    (["device=tpu"], "device: 'tpu'"),
    (["data.nope=1"], "data (val split)"),
]


@pytest.mark.parametrize(("overrides", "message"), USER_ERRORS, ids=[o[0] for o, _ in USER_ERRORS])
def test_user_error_is_one_line_exit_2_before_anything_runs(tmp_path, capsys, overrides, message):
    flat = _flat(tmp_path, methods=["downsample", "magnet_fast"])
    start = time.perf_counter()
    assert _run(tmp_path, flat, *overrides) == 2
    assert time.perf_counter() - start < 2.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("[bench] error: ") and message in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ck").exists()  # nothing trained or written


def test_missing_data_root_is_a_user_error_naming_the_layout(tmp_path, capsys):
    flat = cityscapes_flat(tmp_path, tmp_path / "nowhere")
    assert _run(tmp_path, flat) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere does not exist" in err and "leftImg8bit/<split>" in err
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(UserError, match="limit must be"):
        cli.main(["--debug", "run", "--config", _config(tmp_path, _flat(tmp_path)), "limit=0"])


class _NotWeights:
    pass


def test_refused_pickle_names_the_file(tmp_path, capsys):
    bad = tmp_path / "full_model.pt"
    torch.save({"model": _NotWeights()}, bad)
    with pytest.raises(UnsafeCheckpoint, match="full_model.pt: refused by torch.load"):
        load_weights(bad)
    root = make_cityscapes(tmp_path / "data", n=2)
    assert _run(tmp_path, cityscapes_flat(tmp_path, root, backbone_checkpoint=str(bad))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: refused by torch.load(weights_only=True)" in err


def test_train_split_is_opened_only_when_something_trains(tmp_path, capsys):
    # a Cityscapes folder with val/ only, methods that need no training, train=true
    root = make_cityscapes(tmp_path / "data", n=2, splits=("val",))
    flat = cityscapes_flat(tmp_path, root, train=True, isolate=False)
    assert _run(tmp_path, flat) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(": 2 ok, 0 partial, 0 failed, 0 missing weights, 0 stale")
    # and a method that must train names the missing training folder as a user error
    flat = cityscapes_flat(tmp_path, root, train=True, isolate=False, methods=["dgf"],
                           checkpoint_dir=str(tmp_path / "ck2"))
    assert _run(tmp_path, flat) == 2
    assert "leftImg8bit/train does not exist" in capsys.readouterr().err


def test_out_dir_moves_the_tables(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "data", n=2)
    flat = cityscapes_flat(tmp_path, root, isolate=False, methods=["downsample"])
    for run in ("first", "second"):
        assert _run(tmp_path, {**flat, "out_dir": str(tmp_path / run)}, "limit=1" if run == "first" else "limit=2") == 0
    assert "Downsample" in (tmp_path / "first" / "tables" / "table3.md").read_text()
    assert "cityscapes val, 1 images" in (tmp_path / "first" / "tables" / "table3.md").read_text()
    assert "cityscapes val, 2 images" in (tmp_path / "second" / "tables" / "table3.md").read_text()
    assert (tmp_path / "second" / "tables" / "plots").is_dir()
    assert f"tables: {tmp_path / 'second' / 'tables' / 'tables.md'}" in capsys.readouterr().out
    assert len([r for r in records.load(tmp_path / "second") if r["type"] == "image"]) == 2


def test_score_show_and_table_find_a_run_from_its_out_dir_alone(tmp_path, capsys):
    # the run's data_root, limit and method option enter its unit keys; out_dir= alone must find them
    root = make_cityscapes(tmp_path / "data", n=4)
    flat = cityscapes_flat(tmp_path, root, isolate=False, out_dir=None)
    run = tmp_path / "elsewhere"
    assert _run(tmp_path, flat, f"out_dir={run}", "limit=3", "patching.stitch=assign") == 0
    assert json.loads((run / "run.json").read_text())["config"]["limit"] == 3
    capsys.readouterr()
    assert cli.main(["score", "cityscapes", f"out_dir={run}", "--format", "json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert {u["method"]: u["n_images"] for u in scored["units"]} == {"downsample": 3, "patching": 3}
    assert cli.main(["table", f"out_dir={run}", "bootstrap=0"]) == 0  # the dataset comes from the run too
    table3 = (run / "tables" / "table3.md").read_text()
    assert "cityscapes val, 3 images" in table3 and "not run" not in table3 and "| Patching | " in table3
    capsys.readouterr()
    assert cli.main(["score", "synthetic", f"out_dir={run}"]) == 2  # another dataset's run is named
    assert "holds a 'cityscapes' run" in capsys.readouterr().err
    (run / "run.json").unlink()  # without the stored config the overrides would have to be repeated
    assert cli.main(["score", "cityscapes", f"out_dir={run}", f"data_root={root}"]) == 1


TORCH_FREE_ERRORS = [
    (["foo=1"], "unknown config key 'foo'"),
    (["limit=abc"], "limit must be an integer >= 1"),
    (["threads=-3"], "threads must be an integer >= 1"),
    (["absent=maybe"], "absent must be one of"),
    (["input_size=abc"], "input_size: a size must be 'WxH'"),
    (["methods=[magnett]"], "unknown method 'magnett'"),
    (["magnt.n_points=0.5"], "unknown method 'magnt'"),
    (["device=cuda"], "CPU-only build"),
    (["data_root=/nowhere"], "'synthetic' is generated and reads no files"),
]


def _run_without_torch(tmp_path, *args):
    """``python -m bench run ARGS`` with a stand-in ``torch`` first on the path that raises on import.

    Its ``version.py`` reads like a CPU build's, so the CUDA check can read it; any error path that
    imported torch would end in the stand-in's ImportError, not the one-line user error.
    """
    import os
    import subprocess
    import sys

    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported on an error path')\n")
    (fake / "version.py").write_text("cuda = None\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}:{Path(__file__).parents[1]}"}
    return subprocess.run([sys.executable, "-m", "bench", "run", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize(("overrides", "message"), TORCH_FREE_ERRORS, ids=[o[0] for o, _ in TORCH_FREE_ERRORS])
def test_common_user_errors_never_import_torch(tmp_path, overrides, message):
    """A fresh ``bench run`` with these mistakes stops before torch is imported (its import costs seconds)."""
    proc = _run_without_torch(tmp_path, "synthetic", f"out_dir={tmp_path / 'r'}", *overrides)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


def test_missing_data_folder_never_imports_torch(tmp_path):
    proc = _run_without_torch(tmp_path, "cityscapes", f"data_root={tmp_path / 'nowhere'}")
    assert proc.returncode == 2 and "nowhere does not exist" in proc.stderr, proc.stderr


def test_a_pickled_model_is_refused_without_importing_torch(tmp_path):
    bad = tmp_path / "full_model.pt"
    torch.save({"model": _NotWeights()}, bad)
    proc = _run_without_torch(tmp_path, "synthetic", f"backbone_checkpoint={bad}", f"out_dir={tmp_path / 'r'}")
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}: refused by torch.load(weights_only=True)" in proc.stderr and "_NotWeights" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_the_pickle_scan_passes_plain_state_dicts(tmp_path):
    from bench.models.pickle_scan import foreign_globals

    torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), tmp_path / "sd.pt")
    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    assert foreign_globals(tmp_path / "sd.pt") == [] and foreign_globals(tmp_path / "wrapped.pt") == []
    torch.save({"model": _NotWeights()}, tmp_path / "bad.pt")
    assert [g.rsplit(".", 1)[-1] for g in foreign_globals(tmp_path / "bad.pt")] == ["_NotWeights"]


def test_a_misspelt_option_is_caught_from_the_cache_without_torch(tmp_path, monkeypatch):
    """After one run has imported magnet, its option names are cached: a typo then needs no torch."""
    from bench.pipeline import validate
    from bench.core.config import load

    monkeypatch.setenv("MAGNET_BENCH_CACHE", str(tmp_path / "cache"))  # never the repository's cache

    validate.check_method_options(load("synthetic", {"magnet.n_points": 0.5}))  # fills the cache
    proc = _run_without_torch(tmp_path, "synthetic", "magnet.n_pointz=3", f"out_dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "did you mean 'n_points'" in proc.stderr, proc.stderr


def test_the_option_cache_is_ignored_once_the_sources_change(tmp_path, monkeypatch):
    from bench.pipeline import validate
    from bench.core.config import load
    from bench.core.registry import method_paths

    monkeypatch.setenv("MAGNET_BENCH_CACHE", str(tmp_path / "cache"))  # never the repository's cache
    real_stamp = validate._source_stamp
    target = method_paths()["magnet"]
    monkeypatch.setattr(validate, "_source_stamp", lambda t: "sources-v1")
    validate.store_fields(target, {"only_this"})
    assert validate.cached_fields(target) == {"only_this"}
    monkeypatch.setattr(validate, "_source_stamp", lambda t: "sources-v2")  # a file of magnet/ was edited
    assert validate.cached_fields(target) is None
    monkeypatch.setattr(validate, "_source_stamp", real_stamp)
    validate.check_method_options(load("synthetic", {"magnet.n_points": 0.5}))  # a miss: imports, stores the truth
    assert "n_points" in validate.cached_fields(target)
    assert (tmp_path / "cache" / "method_options.json").is_file()
