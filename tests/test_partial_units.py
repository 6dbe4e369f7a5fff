"""Issue 11 obs. 1: a bad image fails alone, and a unit that misses images is shown as partial."""

from __future__ import annotations

import json

import pytest

from bench.cli import main as cli
from bench.evaluation import records
from bench.core.config import build
from bench.report.tables import build_tables, collect
from bench.report.table_format import to_latex, to_markdown
from tests.cityscapes_tiny import cityscapes_flat, frame_id, make_cityscapes
from tests.test_tables import INFO, _cfg, _records

BAD = frame_id(2)
REASONS = {"value": "unexpected label value(s) 200", "truncated": "cannot read", "size": "size mismatch"}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_bad_image_fails_alone_and_the_unit_is_partial(tmp_path, capsys, kind):
    root = make_cityscapes(tmp_path / "data", n=4, bad={2: kind})
    flat = cityscapes_flat(tmp_path, root, isolate=False)
    (tmp_path / "cfg.yaml").write_text(json.dumps(flat))
    assert cli.main(["run", "--config", str(tmp_path / "cfg.yaml")]) == 1  # partial units are not success
    recs = [r for r in records.load(tmp_path / "runs") if r["type"] == "image"]
    for method in ("downsample", "patching"):
        ok = sorted(r["image_id"] for r in recs if r["method"] == method and r["status"] == "ok")
        failed = [r for r in recs if r["method"] == method and r["status"] != "ok"]
        assert ok == [frame_id(i) for i in (0, 1, 3)]  # the unit went on after the bad image
        assert [r["image_id"] for r in failed] == [BAD] and REASONS[kind] in failed[0]["message"]
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "[bench] 2 units: 0 ok, 2 partial, 0 failed, 0 missing weights, 0 stale"
    tables = tmp_path / "runs" / "tables"
    for name in ("table1", "table3"):
        md, tex = (tables / f"{name}.md").read_text(), (tables / f"{name}.tex").read_text()
        # LaTeX stacks the coverage under the name (a one-column table keeps its width)
        assert "Downsample (3 of 4 images)" in md and r"\shortstack[l]{Downsample\\(3 of 4 images)}" in tex
        assert f"3 of 4 images; failed: {BAD} (" in md and REASONS[kind] in md
        assert "PARTIAL rows" in tex  # the failed images are named in the run's notes file
        assert f"{BAD.replace('_', chr(92) + '_')} (" in (tables / "notes.tex").read_text()  # LaTeX escapes "_"


def _partial_magnet():
    """The toy records of test_tables with MagNet (the significant winner) missing a third image."""
    recs, keys = _records()
    for r in recs:
        if r.get("unit_key") == "k4":
            r["n_expected"] = 3
    recs.append({"type": "image", "unit_key": "k4", "image_id": "img2", "status": "error", "n_expected": 3,
                 "message": "DataFormatError: /data/img2_label.png: unexpected label value(s) 200 (4 px)"})
    return build_tables(_cfg(), INFO, collect(_cfg(), INFO, keys, recs))


def test_partial_unit_gets_no_mark_no_bold_and_no_difference():
    t1, t2, t3 = _partial_magnet()
    # complete, MagNet is best with a † against Patching and in Improvement (test_tables); partial, none
    magnet = next(i for i, r in enumerate(t3.rows) if r[0].startswith("MagNet"))
    assert t3.rows[magnet][0] == "MagNet (2 of 3 images)" and "†" not in "".join(t3.rows[magnet])
    assert t3.rows[magnet][3] == "–"  # no Δ against the paper from a partial unit
    row2 = next(i for i, r in enumerate(t2.rows) if r[0].startswith("MagNet"))
    assert not any(i == row2 for i, _ in t2.bold) and "†" not in "".join(t2.rows[row2])
    assert all(r[0] != "Improvement" for r in t2.rows) and "Improvement not shown: MagNet" in t2.text
    for t in (t1, t2, t3):
        assert "MagNet at 64x32: 2 of 3 images; failed: img2 (DataFormatError: /data/img2_label.png" in t.text
        # neither test involves MagNet: best vs runner-up is among the complete rows, no Improvement
        assert "MagNet - Patching at" not in t.text and "MagNet - Downsample at" not in t.text
    assert "Patching - Downsample at 64x32" in t3.text
    assert "MagNet (2 of 3 images)" in to_markdown(t3) and r"\shortstack[l]{MagNet\\(2 of 3 images)}" in to_latex(t3)


def test_unit_stopped_early_is_partial(tmp_path):
    recs, keys = _records()
    recs = [r for r in recs if not (r.get("unit_key") == "k3" and r.get("image_id") == "img1")]
    for r in recs:
        r.setdefault("n_expected", 2)
    recs.append({"type": "unit", "unit_key": "k3", "status": "error", "message": "Traceback ...\nRuntimeError: boom"})
    cfg = build({"dataset": "synthetic", "input_size": "64x32", "methods": ["downsample", "patching"], "bootstrap": 0})
    res = collect(cfg, INFO, keys, recs)[("patching", "64x32")]
    assert res.partial and res.coverage() == "1 of 2 images; stopped: RuntimeError: boom"


def test_check_data_names_every_bad_file(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "data", n=5, bad={1: "truncated", 3: "value"})
    config = tmp_path / "cfg.yaml"
    config.write_text(json.dumps(cityscapes_flat(tmp_path, root)))
    assert cli.main(["check-data", "--config", str(config)]) == 0  # the layout is fine
    assert "cityscapes val: 5 image(s), layout ok" in capsys.readouterr().out
    assert cli.main(["check-data", "--config", str(config), "--full"]) == 1
    out = capsys.readouterr().out
    assert f"val {frame_id(1)}: DataFormatError: cannot read" in out
    assert f"val {frame_id(3)}: DataFormatError: " in out and "unexpected label value(s) 200" in out
    assert "cityscapes val: 5 image(s) decoded, 2 bad" in out
    assert cli.main(["check-data", "--config", str(config), "--splits", "val,train"]) == 2  # no train/ folder
    assert "leftImg8bit/train does not exist" in capsys.readouterr().err


def test_full_data_check_stops_the_run_before_it_starts(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "data", n=4, bad={2: "size"})
    config = tmp_path / "cfg.yaml"
    config.write_text(json.dumps(cityscapes_flat(tmp_path, root, data_check="full")))
    assert cli.main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"1 of 4 image(s) cannot be evaluated: {frame_id(2)}: DataFormatError" in err
    assert not (tmp_path / "runs").exists()


def test_plots_name_a_partial_unit(tmp_path):
    from bench.report.plots import render_plots

    recs, keys = _records()
    recs.append({"type": "image", "unit_key": "k4", "image_id": "img2", "status": "error", "message": "bad file"})
    cfg = build({"dataset": "synthetic", "input_size": "64x32", "table1_sizes": ["128x64"],
                 "methods": ["downsample", "patching", "densecrf", "magnet"], "tables_dir": str(tmp_path)})
    _, notes = render_plots(cfg, collect(cfg, INFO, keys, recs))
    assert "plots: magnet@64x32 is PARTIAL (2 of 3 images; failed: img2 (bad file))" in notes


def test_score_shows_a_partial_unit(tmp_path):
    from bench.report.score import render, score_units

    recs, keys = _records()
    recs.append({"type": "image", "unit_key": "k4", "image_id": "img2", "status": "error", "message": "bad file"})
    cfg = _cfg()
    results = score_units(cfg, INFO, keys, recs, ["magnet", "patching"], None)
    md = render(cfg, INFO, results, "md")
    assert "| MagNet | 64x32 | 2 of 3 |" in md and "MagNet at 64x32: 2 of 3 images; failed: img2 (bad file)" in md
    data = json.loads(render(cfg, INFO, results, "json"))
    magnet = next(u for u in data["units"] if u["method"] == "magnet")
    assert magnet["partial"] and magnet["n_expected"] == 3 and magnet["failed"] == "img2"
    subset = score_units(cfg, INFO, keys, recs, ["magnet"], ["img0"])
    assert "| MagNet | 64x32 | 1 |" in render(cfg, INFO, subset, "md", ["img0"])  # a chosen subset is not partial
