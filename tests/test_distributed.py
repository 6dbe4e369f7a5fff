"""torchrun scale-out: two CPU ranks (gloo) give the tables of one process, and resume per rank.

The two-rank run is real: ``python -m torch.distributed.run --nproc_per_node=2 -m bench run``
on a tiny synthetic config. It trains the backbone and MagNet's refiners data-parallel, trains a
plugin method on rank 0 alone, and sweeps each unit in a child process per rank.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.runtime import distributed
from bench.pipeline import train
from bench.evaluation import records
from bench.core.config import build
from bench.pipeline.runner import _pending, run_sweep
from bench.report.tables import render

REPO = Path(__file__).resolve().parents[1]
PLUGINS = str(Path(__file__).parent / "plugins")
ENV_METHODS = "rank_trained=rank_method:RankTrained"
METHODS = ["downsample", "patching", "magnet", "rank_trained"]
N_IMAGES = 4


def _flat(tmp: Path, out: str, **extra):
    flat = {"dataset": "synthetic", "data.size": "128x64", "data.n_images": N_IMAGES, "train_data.n_images": 2,
            "input_size": "32x16", "methods": METHODS, "table1_sizes": [],
            "backbone_options": {"width": 8}, "backbone_train": {"iterations": 3, "batch_size": 2},
            "magnet.epochs": 1, "magnet.n_points": 64, "magnet.mask_inset": 2,
            "checkpoint_dir": str(tmp / "ck"), "out_dir": str(tmp / out), "tables_dir": str(tmp / f"{out}-tables"),
            "warmup": 0, "threads": 1, "save_predictions": 0}
    flat.update(extra)
    return flat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MAGNET_BENCH_METHODS=ENV_METHODS)
    env["PYTHONPATH"] = PLUGINS + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def torchrun(config: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=nproc -m bench run --config config`` on this machine."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "bench", "run", "--config", str(config)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def metric_cells(tables: Path) -> dict[str, list[list[str]]]:
    """Rows of every Markdown table without the Time and Memory columns (they differ run to run)."""
    out = {}
    for name in ("table1", "table2", "table3"):
        lines = [ln for ln in (tables / f"{name}.md").read_text().splitlines() if ln.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        keep = [i for i, h in enumerate(header) if not h.startswith(("Time", "Memory"))]
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        out[name] = [[header[i] for i in keep]] + [[r[i] for i in keep] for r in rows]
    return out


def _images(path: Path) -> list[dict]:
    return [r for r in records.read(path) if r["type"] == "image"]


def per_image(recs: list[dict]) -> dict[tuple[str, str, str], tuple]:
    """(method, size, image) -> (cm, mBA, mBA radii) as recorded (floats compared exactly); each key once."""
    out = {}
    for r in recs:
        key = (r["method"], r["size"], r["image_id"])
        assert key not in out, key
        out[key] = (r["cm"], r["mba"], r["mba_radii"])
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One two-rank run (training included); returns its folder and config."""
    tmp = tmp_path_factory.mktemp("dist")
    flat = _flat(tmp, "runs2")
    config = tmp / "two.yaml"
    config.write_text(json.dumps(flat))
    proc = torchrun(config)
    return tmp, flat, proc


def test_two_ranks_give_the_tables_of_one_process(two_ranks, monkeypatch):
    tmp, flat, proc = two_ranks
    out = Path(flat["out_dir"])
    rank_files = [out / "records-rank0.jsonl", out / "records-rank1.jsonl"]
    assert all(p.is_file() for p in rank_files) and not (out / "records.jsonl").exists()
    # every image of every unit exactly once, split across the two ranks
    for path, expected in zip(rank_files, (["val_0000", "val_0002"],
                                           ["val_0001", "val_0003"])):
        per_method = {m: sorted(r["image_id"] for r in _images(path) if r["method"] == m) for m in METHODS}
        assert all(ids == expected for ids in per_method.values()), per_method
    # rank 0 trained the plugin alone; the others waited for it (else: missing_checkpoint records)
    ck = next((tmp / "ck").glob("methods-*"))
    assert (ck / "trained_by.txt").read_text() == "0\n"
    assert len(list(ck.glob("magnet_refiner_*.pt"))) == 2 and (tmp / "ck" / "backbone.pt").is_file()
    assert not [r for p in rank_files for r in records.read(p) if r["type"] == "unit"]
    # one process, same weights, another folder: the same metrics
    monkeypatch.setenv("MAGNET_BENCH_METHODS", ENV_METHODS)
    monkeypatch.syspath_prepend(PLUGINS)
    one = build(_flat(tmp, "runs1", isolate=False))
    assert set(run_sweep(one).values()) == {"ok"}
    render(one)
    assert (one.out_path / "records.jsonl").is_file()
    # bit for bit per image: the confusion matrix, mBA and its radii of every (method, size, image)
    two = per_image(_images(rank_files[0]) + _images(rank_files[1]))
    assert len(two) == len(METHODS) * N_IMAGES
    one_records = per_image(_images(one.out_path / "records.jsonl"))
    assert one_records.keys() == two.keys()
    assert [k for k in two if one_records[k] != two[k]] == []
    assert metric_cells(Path(flat["tables_dir"])) == metric_cells(one.tables_path)


def test_resume_recomputes_only_the_deleted_records_of_rank_1(two_ranks):
    tmp, flat, _ = two_ranks
    out = tmp / "resume"
    shutil.copytree(flat["out_dir"], out)
    rank0, rank1 = out / "records-rank0.jsonl", out / "records-rank1.jsonl"
    before0 = rank0.read_bytes()
    lines = rank1.read_text().splitlines(keepends=True)
    deleted = {("patching", "val_0003"), ("magnet", "val_0001"), ("magnet", "val_0003")}
    kept = [ln for ln in lines if (json.loads(ln)["method"], json.loads(ln)["image_id"]) not in deleted]
    assert len(kept) == len(lines) - len(deleted)
    rank1.write_text("".join(kept))
    config = tmp / "resume.yaml"
    config.write_text(json.dumps({**flat, "out_dir": str(out), "tables_dir": str(tmp / "resume-tables"),
                                  "isolate": False}))
    torchrun(config)
    assert rank0.read_bytes() == before0
    new = _images(rank1)[len(kept):]
    assert sorted((r["method"], r["image_id"]) for r in new) == sorted(deleted)
    counts = Counter((r["method"], r["image_id"]) for p in (rank0, rank1) for r in _images(p))
    assert len(counts) == len(METHODS) * N_IMAGES and set(counts.values()) == {1}


def test_the_shard_is_taken_before_recorded_images_are_removed(tmp_path, monkeypatch):
    class Four:
        def ids(self):
            return ["a", "b", "c", "d"]

    cfg = build(_flat(tmp_path, "runs"))
    records.append(cfg.out_path / "records-rank0.jsonl",
                   {"type": "image", "unit_key": "k", "image_id": "a", "status": "ok", "method": "m", "size": "8x8",
                    "cm": [[1]], "mba": 1.0})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert _pending(cfg, Four(), "k") == [1, 3]  # rank 1 owns b and d, whatever rank 0 has done
    monkeypatch.setenv("RANK", "0")
    assert _pending(cfg, Four(), "k") == [2]


def test_outside_torchrun_everything_is_one_process(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.init("cpu") and distributed.is_main()
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.gather_results({("m", (1, 1)): "ok"}) == {("m", (1, 1)): "ok"}
    assert distributed.data_parallel() == (0, 1)
    assert distributed.backend_for("cpu") == "gloo"
    assert train.trains_data_parallel("magnet") and not train.trains_data_parallel("dgf")


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout().total_seconds() == distributed.DEFAULT_TIMEOUT_S
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "7200")
    assert distributed.timeout().total_seconds() == 7200
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="seconds"):
        distributed.timeout()


def test_rank_share_weights_make_the_global_mean():
    from magnet.train import _rank_share

    assert _rank_share([4, 5, 6], 0, 1) == ([4, 5, 6], 1.0)
    assert _rank_share([4, 5, 6], 0, 2) == ([4, 6], 2 * 2 / 3)
    assert _rank_share([4, 5, 6], 1, 2) == ([5], 2 * 1 / 3)
    assert _rank_share([4], 1, 2) == ([4], 0.0)  # nothing left: a pair with weight 0, to join the all-reduce
