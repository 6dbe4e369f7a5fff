"""A run folder describes itself: keys without limit or data path, re-scoring from the folder alone."""

from __future__ import annotations

import json
import shutil

from bench.cli import main as cli
from bench.evaluation import records, run_folder
from bench.core.config import build
from bench.report.results import load_results
from bench.pipeline.runner import run_sweep
from bench.pipeline.unit import unit_keys
from tests.cityscapes_tiny import cityscapes_flat, frame_id, make_cityscapes


def _images(out):
    return [r for r in records.load(out) if r["type"] == "image" and r["status"] == "ok"]


def _cfg(tmp_path, root, **extra):
    return build(cityscapes_flat(tmp_path, root, isolate=False, methods=["downsample"], **extra))


def test_the_unit_key_leaves_out_limit_and_data_root(tmp_path):
    root = make_cityscapes(tmp_path / "data", n=3)
    moved = shutil.copytree(root, tmp_path / "elsewhere")
    base = unit_keys(_cfg(tmp_path, root, limit=1))
    assert unit_keys(_cfg(tmp_path, root, limit=3)) == base
    assert unit_keys(_cfg(tmp_path, moved)) == base
    # but another file list is another dataset
    fewer = make_cityscapes(tmp_path / "fewer", n=2)
    assert unit_keys(_cfg(tmp_path, fewer)) != base


def test_a_larger_limit_resumes_and_a_smaller_one_shows_its_own_images(tmp_path):
    root = make_cityscapes(tmp_path / "data", n=4)
    cfg2 = _cfg(tmp_path, root, limit=2)
    run_sweep(cfg2)
    assert [r["image_id"] for r in _images(cfg2.out_path)] == [frame_id(0), frame_id(1)]
    cfg4 = _cfg(tmp_path, root, limit=4)
    run_sweep(cfg4)  # runs images 2 and 3 only
    assert [r["image_id"] for r in _images(cfg4.out_path)] == [frame_id(i) for i in range(4)]
    ((_, res4),) = load_results(cfg4).items()
    assert res4.n_images == 4 and not res4.partial
    run_sweep(cfg2)  # nothing to run, and the tables show the first 2 images, complete
    assert len(_images(cfg2.out_path)) == 4
    ((_, res2),) = load_results(cfg2).items()
    assert res2.n_images == 2 and not res2.partial


def test_a_moved_dataset_is_recognised(tmp_path):
    root = make_cityscapes(tmp_path / "data", n=3)
    run_sweep(_cfg(tmp_path, root))
    moved = tmp_path / "moved"
    root.rename(moved)
    run_sweep(_cfg(tmp_path, moved))
    assert len(_images(tmp_path / "runs")) == 3  # nothing ran twice


def test_run_json_holds_the_keys_and_ids_of_the_sweep(tmp_path):
    root = make_cityscapes(tmp_path / "data", n=3)
    cfg = _cfg(tmp_path, root, limit=2)
    run_sweep(cfg)
    data = json.loads((cfg.out_path / run_folder.RUN_FILE).read_text())
    assert data["schema"] == run_folder.SCHEMA and data["image_ids"] == [frame_id(0), frame_id(1)]
    assert data["units"] == {f"{m}@{'x'.join(map(str, s))}": k for (m, s), k in unit_keys(cfg).items()}


def test_score_and_table_need_only_the_run_folder(tmp_path, capsys):
    """The folder copied elsewhere, without the data or the weights: same numbers, no override repeated."""
    root = make_cityscapes(tmp_path / "data", n=3)
    flat = cityscapes_flat(tmp_path, root, isolate=False, methods=["downsample", "patching"], limit=2,
                           **{"patching.batch_size": 2})
    (tmp_path / "cfg.yaml").write_text(json.dumps(flat))
    assert cli.main(["run", "--config", str(tmp_path / "cfg.yaml")]) == 0
    capsys.readouterr()
    copy = shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    shutil.rmtree(root)
    shutil.rmtree(tmp_path / "bb")
    assert cli.main(["score", "cityscapes", f"out_dir={copy}", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [u["n_images"] for u in data["units"]] == [2, 2]
    assert cli.main(["table", "cityscapes", f"out_dir={copy}", f"tables_dir={tmp_path / 't'}"]) == 0
    assert "Patching" in (tmp_path / "t" / "tables.md").read_text()


def test_a_folder_without_stored_keys_falls_back_to_the_latest_key(tmp_path):
    root = make_cityscapes(tmp_path / "data", n=2)
    cfg = _cfg(tmp_path, root)
    run_sweep(cfg)
    (cfg.out_path / run_folder.RUN_FILE).unlink()  # a folder from before schema 2
    ((_, res),) = load_results(cfg).items()
    assert res.n_images == 2 and res.status == "ok"
