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


# --- the pages' blocks: rendered from published (committed) records, checked on every page ---------------

import json  # noqa: E402
import re  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402

from bench.cli import readme_blocks  # noqa: E402


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny run of downsample and patching (2 images), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("swept")
    cfg = build(_flat(tmp, tmp / "runs", ["downsample", "patching"]))
    train_missing(cfg)
    assert set(run_sweep(cfg).values()) == {"ok"}
    return tmp, cfg


def test_publish_copies_only_the_units_and_images_run_json_names(swept, tmp_path):
    """Catches publishing the whole append-only records file: a record of another unit key or of an
    image outside the run would be committed with it."""
    from bench.evaluation import records

    _, cfg = swept
    stray = [{"type": "image", "status": "ok", "unit_key": "not-this-run", "method": "downsample", "size": "32x16",
              "image_id": "val_0000"}]
    image = next(r for r in records.load(cfg.out_path) if r.get("type") == "image")
    stray.append({**image, "image_id": "val_9999"})  # this run's unit, an image it does not cover
    stray.append({**image, "time_ms": -1.0})  # a repeated ok record: it supersedes the first
    stray.append({**image, "status": "error", "message": "a later failure"})  # the tables keep the last ok one
    with open(cfg.out_path / "records.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in stray)
    try:
        written = readme_blocks.publish(cfg, tmp_path / "published")
    finally:
        lines = (cfg.out_path / "records.jsonl").read_text().splitlines()
        (cfg.out_path / "records.jsonl").write_text("\n".join(lines[:-len(stray)]) + "\n")
    assert written == [tmp_path / "published" / "synthetic"]
    kept = records.load(tmp_path / "published" / "synthetic")
    run = json.loads((cfg.out_path / "run.json").read_text())
    assert {r["unit_key"] for r in kept} == set(run["units"].values())
    assert {r["image_id"] for r in kept if r["type"] == "image"} == set(run["image_ids"])
    assert len([r for r in kept if r["type"] == "image"]) == 2 * 2  # 2 units x 2 images, nothing else
    same = [r for r in kept if r.get("unit_key") == image["unit_key"] and r.get("image_id") == image["image_id"]]
    assert [(r["status"], r["time_ms"]) for r in same] == [("ok", -1.0)]


def test_publish_refuses_a_run_whose_records_miss_a_unit(swept, tmp_path):
    """Catches publishing a run whose run.json names a unit key its records do not carry (the code
    changed during the run): the published tables would show the unit as not run."""
    from bench.core.errors import UserError

    tmp, cfg = swept
    broken = tmp_path / "run"
    broken.mkdir()
    run = json.loads((cfg.out_path / "run.json").read_text())
    run["units"]["patching@32x16"] = "changed-key"
    (broken / "run.json").write_text(json.dumps(run))
    (broken / "records.jsonl").write_text((cfg.out_path / "records.jsonl").read_text())
    with pytest.raises(UserError, match="patching@32x16"):
        readme_blocks.publish(build({**_flat(tmp, broken, ["downsample", "patching"])}), tmp_path / "published")


def test_the_rendered_tables_come_from_the_published_copy(swept, tmp_path):
    """Catches the pages rendering from the uncommitted run folder (results/runs/...) instead of the
    published copy: the copy alone, in another folder, renders the same Table 3."""
    tmp, cfg = swept
    readme_blocks.publish(cfg, tmp_path / "published")
    import dataclasses

    copy = dataclasses.replace(cfg, out_dir=str(tmp_path / "published" / "synthetic"))
    a, b = readme_blocks.blocks(cfg), readme_blocks.blocks(copy)
    assert a["table3"] == b["table3"] and "| Patching | " in b["table3"]


def test_a_method_block_holds_that_method_s_rows_only(swept):
    """Catches a method page picking rows by prefix: Downsample's page must not get another method's
    row, and every method of the sweep gets its block."""
    _, cfg = swept
    out = readme_blocks.blocks(cfg)
    assert {"method_downsample", "method_patching"} <= set(out)
    rows = [line.split(" | ")[0] for line in out["method_downsample"].splitlines() if line.startswith("| ")]
    assert rows == ["| Method", "| Downsample"], rows
    t3 = {line.split(" | ")[0]: line for line in out["table3"].splitlines() if line.startswith("| Downsample ")}
    assert t3["| Downsample"] in out["method_downsample"]  # the very row of Table 3, not a recomputation


def test_check_fails_on_a_changed_number_and_on_a_block_nothing_renders(swept, tmp_path, capsys):
    """Catches `--check` passing a page whose rendered table was edited by hand, or one holding a
    block name that nothing renders (a typo keeps old text forever)."""
    tmp, cfg = swept
    rendered = readme_blocks.blocks(cfg)["table3"]
    page = tmp_path / "page.md"
    page.write_text(f"# p\n\n<!-- bench:table3 -->\n{rendered}<!-- /bench:table3 -->\n")
    config = tmp_path / "run.yaml"  # the run's own config, so that the check sees the same unit keys
    config.write_text(json.dumps(_flat(tmp, cfg.out_path, ["downsample", "patching"])))
    args = types.SimpleNamespace(dataset="synthetic", overrides=[f"out_dir={cfg.out_path}"], config=str(config),
                                 check=True, publish=False, readme=str(page))
    assert readme_blocks.main(args) == 0, capsys.readouterr().err
    page.write_text(page.read_text().replace("| Downsample | ", "| Downsample | 9", 1))
    assert readme_blocks.main(args) == 1
    assert "page.md differs" in capsys.readouterr().err
    page.write_text("<!-- bench:tabel3 -->\nold\n<!-- /bench:tabel3 -->\n")
    assert readme_blocks.main(args) == 1
    assert "'tabel3' has nothing to render" in capsys.readouterr().err


def test_check_fails_when_the_published_run_is_stale(swept, tmp_path, capsys):
    """Catches `--check` passing after a change that moves a unit's key (an option default) without a
    new `make bench`: the pages would show numbers the code no longer gives."""
    import dataclasses

    _, cfg = swept
    assert readme_blocks.stale_units(cfg) == []
    changed = dataclasses.replace(cfg, input_size=(64, 32))  # a unit the run does not have
    assert any(u.startswith("downsample@64x32") for u in readme_blocks.stale_units(changed))
    moved = dataclasses.replace(cfg, coarse_scale=(64, 32))  # the same units, each with another key
    assert [u.split(" ")[0] for u in readme_blocks.stale_units(moved)] == ["downsample@32x16", "patching@32x16"]


def test_pages_are_the_readme_and_every_docs_page():
    """Catches `bench readme` rendering only README.md: the blocks on the docs pages would go stale."""
    pages = readme_blocks.pages()
    assert pages[0].name == "README.md"
    assert readme_blocks.REPO_DIR / "docs" / "methods" / "magnet.md" in pages
    assert readme_blocks.REPO_DIR / "docs" / "results.md" in pages


def test_a_method_block_does_not_take_rows_whose_name_only_starts_with_its_own():
    """Catches picking Table 3's rows by prefix: MagNet's block would take MagNet-Fast's and
    MagNet-Fast (paper)'s rows; a partial row (``MagNet (5 of 6 images)``) is still its own."""
    from bench.core.config import load
    from bench.report.table_model import Table

    cfg = load("synthetic", {"methods": ["magnet_fast", "magnet"], "table1_sizes": []})
    header = ["Method", "mIoU (%)", "mBA (%)", "Time (ms)", "Memory (MiB)"]
    rows = [["MagNet-Fast", "50.20", "55.58", "1", "2"], ["MagNet-Fast (paper)", "53.51", "59.92", "1", "2"],
            ["MagNet (5 of 6 images)", "57.10", "70.91", "3", "4"]]
    table3 = Table("table3", "c", header, rows=rows, bold={(2, 1)})
    results = {("magnet", "128x64"): types.SimpleNamespace(display="MagNet"),
               ("magnet_fast", "128x64"): types.SimpleNamespace(display="MagNet-Fast")}
    text = readme_blocks.method_text(cfg, table3, results, "magnet", None, None)
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")][1:] == ["| MagNet (5 of 6 images)"]
    assert "| **57.10** |" in text  # the bold cell follows its row
    fast = readme_blocks.method_text(cfg, table3, results, "magnet_fast", None, None)
    assert [line.split(" | ")[0] for line in fast.splitlines() if line.startswith("| ")][1:] == ["| MagNet-Fast"]


def test_a_dataset_without_a_published_run_is_a_user_error_and_writes_nothing(capsys):
    """Catches `make readme DATASET=cityscapes` overwriting every page's tables with "not run" rows
    (there is no published Cityscapes run): one line naming the folder, exit 2, no page touched."""
    from bench.cli.main import main

    before = {p: p.stat().st_mtime_ns for p in readme_blocks.pages()}
    assert main(["readme", "cityscapes"]) == 2
    err = capsys.readouterr().err
    assert "results/published/cityscapes: no published run" in err and len(err.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in readme_blocks.pages()} == before


def test_the_cli_reference_lists_every_subcommand_and_no_path_of_this_clone():
    """Catches the CLI block rendering a default as this checkout's absolute path (`--data`'s
    /work/.../shared/data): `--check` would fail on every other clone; and a subcommand left out."""
    import argparse

    from bench.cli.main import parser

    text = readme_blocks.cli_text(parser)
    assert str(readme_blocks.REPO_DIR) not in text and str(readme_blocks.REPO_DIR.parent) not in text
    assert "%(default)s" not in text
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert re.findall(r"^### `([a-z-]+)`$", text, re.M) == list(sub.choices)  # every one, in --help's order
    assert "| `--check` |  | exit 1 if a page differs" in text  # an option row of `readme`, with its help
