"""The README's ``full`` block: the extended sweep (``make bench-full``) rendered from its own run folder."""

from __future__ import annotations

from bench.core.config import build
from bench.cli.readme_blocks import full_sweep_text
from bench.pipeline.runner import run_sweep, train_missing


def _flat(tmp, out, methods):
    return {"dataset": "synthetic", "data.size": "128x64", "data.n_images": 2, "train_data.n_images": 2,
            "input_size": "32x16", "methods": methods, "table1_sizes": [], "backbone_options": {"width": 8},
            "backbone_train": {"iterations": 2, "batch_size": 2}, "checkpoint_dir": str(tmp / "ck"),
            "out_dir": str(out), "tables_dir": str(tmp / "tables"), "warmup": 0, "threads": 1, "isolate": False,
            "bootstrap": 0}


def test_full_block_renders_the_extended_run_and_names_what_it_adds(tmp_path):
    default = build(_flat(tmp_path, tmp_path / "runs", ["downsample"]))
    assert full_sweep_text(default) is None  # no extended run yet: the block is left as it is
    full = build(_flat(tmp_path, tmp_path / "runs-full", ["downsample", "patching"]))
    train_missing(full)
    assert set(run_sweep(full).values()) == {"ok"}
    text = full_sweep_text(default)
    assert "Methods added to the default sweep: patching." in text
    assert "records of `make bench-full`" in text and str(full.out_path) in text
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| Downsample", "| Patching"], rows  # Table 3 of the extended run, header first


def test_the_sweep_time_is_rendered_from_run_json(tmp_path):
    from bench.evaluation import run_folder
    from bench.cli.readme_blocks import timing_text

    cfg = build(_flat(tmp_path, tmp_path / "runs", ["downsample", "patching"]))
    assert timing_text(cfg) == ""  # no run yet: nothing typed in its place
    train_missing(cfg)
    run_sweep(cfg)
    timing = run_folder.read(cfg.out_path)["timing"]
    assert set(timing["units"]) == {"downsample@32x16", "patching@32x16"}
    assert 0 < sum(u["seconds"] for u in timing["units"].values()) <= timing["seconds"]
    assert " took 0 min " in timing_text(cfg) and "for 2 unit(s), each" in timing_text(cfg)
    assert "load average " in timing_text(cfg) and timing["load_after"] >= 0
    run_sweep(cfg)  # resumed: nothing left to run, and the text says so
    assert "2 of them already recorded (a resumed run" in timing_text(cfg)
