"""Seed spread, headline comparisons across seeds, the training-drift check, and README rendering."""

from __future__ import annotations

import json

import pytest

from bench.checks import seeds
from bench.cli.readme_blocks import render_into, select_columns
from bench.report.table_model import Table


def _metrics(magnet: float, patching: float, down: float, fast: float, paper: float, pole: float = 0.1):
    def unit(display, miou, mba):
        return {"status": "ok", "n_images": 6, "display": display, "miou": miou, "mba": mba,
                "iou": {"pole": pole if display == "MagNet" else 0.2, "person": 0.3}}
    return {"magnet@128x64": unit("MagNet", magnet, magnet + 0.1), "patching@128x64": unit("Patching", patching, patching + 0.1),
            "downsample@128x64": unit("Downsample", down, down), "magnet_fast@128x64": unit("MagNet-Fast", fast, fast),
            "magnet_fast_paper@128x64": unit("MagNet-Fast (paper)", paper, paper)}


def _manifest(seed, metrics, fingerprint="fp0", files=None):
    return {"dataset": "synthetic", "seed": seed, "fingerprint": fingerprint, "training_digest": f"d{seed}",
            "train_seconds": 100.0, "torch": "2.13.0", "git_sha": "abc", "metrics": metrics,
            "files": files or {"backbone.pt": {"sha256": f"s{seed}"}}}


@pytest.fixture
def summary():
    return seeds.summarise({0: _manifest(0, _metrics(0.47, 0.42, 0.37, 0.43, 0.46)),
                            1: _manifest(1, _metrics(0.46, 0.43, 0.38, 0.45, 0.44)),
                            2: _manifest(2, _metrics(0.48, 0.41, 0.36, 0.42, 0.46))})


def test_spread_is_mean_sd_min_max_over_seeds(summary):
    s = seeds.spread(seeds._values(summary, "magnet@128x64", "miou"))
    assert s["mean"] == pytest.approx(0.47) and s["sd"] == pytest.approx(0.01) and (s["min"], s["max"]) == (0.46, 0.48)
    table = seeds.spread_table(summary, _manifest(0, _metrics(0.47, 0.42, 0.37, 0.43, 0.46)))
    assert "| MagNet | 128x64 | 47.00 | 47.00 ± 1.00 | 46.00–48.00 |" in table


def test_comparisons_say_when_a_sign_does_not_hold(summary):
    rows = {(r["what"], r["metric"]): r for r in seeds.comparisons(summary, "128x64")}
    assert rows[("MagNet vs Patching", "miou")]["holds"]
    assert rows[("MagNet vs Patching", "miou")]["diffs"] == pytest.approx([0.05, 0.03, 0.07])
    paper = rows[("MagNet-Fast: paper vs released behaviour", "miou")]
    assert not paper["holds"] and paper["diffs"] == pytest.approx([0.03, -0.01, 0.04])
    text = seeds.comparisons_table(summary, "128x64")
    assert "| MagNet-Fast: paper vs released behaviour | mIoU | +3.00 | -1.00 | +4.00 | **no** |" in text
    assert "| MagNet vs Downsample | mIoU | +10.00 | +8.00 | +12.00 | yes (better) |" in text


def test_class_table_shows_reference_and_range(summary):
    text = seeds.class_table(summary, _manifest(0, _metrics(0.47, 0.42, 0.37, 0.43, 0.46)), ["magnet@128x64"], ["pole"])
    assert "| MagNet | 10.00 (10.00–10.00) |" in text


def test_train_check_exact_on_same_fingerprint():
    ref = _manifest(0, {}, files={"backbone.pt": {"sha256": "aaa"}, "m/dgf.pt": {"sha256": "bbb"}})
    same = _manifest(0, {}, files={"backbone.pt": {"sha256": "aaa"}})
    assert seeds.compare_to_reference(same, ref, None) == []
    moved = _manifest(0, {}, files={"backbone.pt": {"sha256": "aab"}})
    assert "differs" in seeds.compare_to_reference(moved, ref, None)[0]


def test_train_check_within_spread_elsewhere(summary):
    ref = _manifest(0, {}, fingerprint="fp0")
    inside = _manifest(0, _metrics(0.47, 0.42, 0.37, 0.43, 0.46), fingerprint="other")
    assert seeds.compare_to_reference(inside, ref, summary) == []
    outside = _manifest(0, _metrics(0.30, 0.42, 0.37, 0.43, 0.46), fingerprint="other")
    failures = seeds.compare_to_reference(outside, ref, summary)
    assert len(failures) == 2 and all(f.startswith("magnet@128x64") for f in failures)
    assert seeds.compare_to_reference(outside, ref, None)[0].startswith("another training fingerprint")


def test_training_differences_name_the_field():
    ref = {"seed": 0, "backbone_train": {"iterations": 6000}, "methods": {"dgf": {"lr": 0.01, "backbone_digest": "a"}}}
    now = {"seed": 0, "backbone_train": {"iterations": 100}, "methods": {"dgf": {"lr": 0.01, "backbone_digest": "b"}}}
    diffs = seeds.training_differences(now, ref)
    assert len(diffs) == 1 and diffs[0].startswith("backbone_train")


def test_readme_blocks_are_replaced_and_others_kept():
    text = "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nb\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n"
    new, unknown = render_into(text, {"x": "| new |\n"})
    assert new == "a\n<!-- bench:x -->\n| new |\n<!-- /bench:x -->\nb\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n"
    assert unknown == ["y"]
    assert render_into(new, {"x": "| new |\n"})[0] == new  # idempotent


def test_select_columns_keeps_bold_with_its_column():
    t = Table("t", "c", ["Method", "a", "b", "c"], rows=[["m", "1", "2", "3"]], bold={(0, 3), (0, 1)})
    out = select_columns(t, ("Method", "c"))
    assert out.header == ["Method", "c"] and out.rows == [["m", "3"]] and out.bold == {(0, 1)}


def test_class_diffs_say_when_a_class_flips(summary):
    summary["seeds"]["1"]["metrics"]["magnet@128x64"]["iou"]["pole"] = 0.05  # below Patching's 0.2 in seed 1 only
    text = seeds.class_diffs_table(summary, "magnet@128x64", "patching@128x64", ["pole", "person"])
    assert "| pole | -10.00 | -15.00 | -10.00 | yes (worse) |" in text
    summary["seeds"]["0"]["metrics"]["magnet@128x64"]["iou"]["pole"] = 0.5
    text = seeds.class_diffs_table(summary, "magnet@128x64", "patching@128x64", ["pole"])
    assert "| pole | +30.00 | -15.00 | -10.00 | **no** |" in text


def test_readme_without_reference_dir_leaves_the_seed_blocks_out(summary, tmp_path, monkeypatch):
    """A seed summary with a config that has no reference weights: the blocks that compare with the
    reference manifest have nothing to render, the others still do; was ``Path / None`` (TypeError)."""
    from bench.core.config import load
    from bench.cli.readme_blocks import blocks

    summary_file = tmp_path / "summary.json"
    summary_file.write_text(json.dumps(summary))
    monkeypatch.setattr(seeds, "summary_path", lambda dataset: summary_file)
    cfg = load("synthetic", {"reference_dir": None, "out_dir": str(tmp_path / "run")})
    rendered = blocks(cfg)
    assert "table1" in rendered and "comparisons" in rendered and "thin_seeds" in rendered
    assert not {"seeds", "thin"} & set(rendered)
