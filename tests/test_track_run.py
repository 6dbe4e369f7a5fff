"""Issue 22 items 1, 2 and 4: a BIG folder in each layout is read, swept (`bench run big`) and tabled.

The expected cells come from the BIG scorer (``bench.evaluation.big_score``, which reads the files
itself and is tested against the spec's rules in tests/test_big.py), never from the sweep's own code.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from bench.cli import main as cli
from bench.core.config import build
from bench.data.big import BigFolder
from bench.evaluation.big_score import BigAccumulator, prepare_truth, score_methods
from bench.report.big_tables import parse_label, track_tables, track_units
from tests.big_folders import SOURCES, STEMS, write_big

METHODS = "[downsample,guided_filter,densecrf]"


def _run(tmp_path: Path, root: Path, *extra: str) -> Path:
    out = tmp_path / "run"
    code = cli.main(["run", "big", f"data_root={root}", f"methods={METHODS}", "input_size=64x48", "isolate=false",
                     f"out_dir={out}", "warmup=0", *extra])
    assert code == 0
    return out


def _rows(markdown: str) -> dict[str, list[str]]:
    """The first table of a Markdown file: row name -> cells."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Coarse source") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
        if line.startswith("**Track cost"):
            break
    return rows


def _expected_coarse(root: Path, threshold: str = "gt128") -> dict[str, str]:
    """source -> "IoU/mBA/BIoU" of its coarse masks, scored from the files by the BIG scorer."""
    folder = BigFolder(root)
    out = {}
    for source in folder.sources:
        acc = BigAccumulator(threshold)
        for index, stem in enumerate(folder.ids()):
            truth = prepare_truth(folder.gt(index), threshold)
            acc.add(score_methods(stem, truth, folder.coarse(index, source), {"": None})[""])
        s = acc.compute()
        out[source] = "/".join(f"{100 * v:.2f}" for v in (s.iou, s.mba, s.biou))
    return out


@pytest.mark.parametrize("layout", ["cascadepsp", "segrefiner"])
def test_a_big_folder_is_swept_and_tabled_in_the_papers_layout(tmp_path, layout, capsys):
    root = write_big(tmp_path / "big", layout)
    out = _run(tmp_path, root)
    table = (out / "tables" / "track.md").read_text()
    rows = _rows(table)
    assert list(rows) == [*sorted(SOURCES), "Avg Improve"]  # one row per source, then Avg Improve
    expected = _expected_coarse(root)
    for source in SOURCES:  # the coarse column is each source's own mask, pooled IoU, per-image mBA, pooled BIoU
        assert rows[source][0] == expected[source], source
    assert expected["fcn"] != expected["psp"]
    # Avg Improve: mean over the sources of (refined - coarse), from the printed cells, half-up
    for j in range(3):
        for k in range(3):
            diffs = [Decimal(rows[s][j].split("/")[k]) - Decimal(rows[s][0].split("/")[k]) for s in SOURCES]
            mean = (sum(diffs, Decimal(0)) / len(diffs)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            assert rows["Avg Improve"][j].split("/")[k] == f"{mean:.2f}"
    assert "GF (gray guide)" in table and "DenseCRF" in table and "dilation ratio 0.02" in table
    assert "> 128" in table  # the binarisation rule is named
    assert (out / "tables" / "track.tex").is_file() and (out / "tables" / "track_cost.md").is_file()
    cost = (out / "tables" / "track_cost.md").read_text()
    assert all(name in cost for name in ("Downsample", "GF (gray guide)", "DenseCRF")) and "refine() alone" in cost
    # bench table renders the same tables from the records alone
    capsys.readouterr()
    before = table
    assert cli.main(["table", "big", f"data_root={root}", f"methods={METHODS}", "input_size=64x48",
                     f"out_dir={out}"]) == 0
    assert (out / "tables" / "track.md").read_text() == before


def test_threshold_rule_changes_the_coarse_cells(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    out = _run(tmp_path, root, "data.threshold=ge128", "methods=[downsample]")
    rows = _rows((out / "tables" / "track.md").read_text())
    expected = _expected_coarse(root, "ge128")
    assert all(rows[s][0] == expected[s] for s in SOURCES)
    assert ">= 128" in (out / "tables" / "track.md").read_text()


def test_status_and_plan_name_the_source(tmp_path, capsys):
    root = write_big(tmp_path / "big", "cascadepsp")
    assert cli.main(["run", "big", f"data_root={root}", "methods=[downsample]", f"out_dir={tmp_path / 'dry'}",
                     "--dry-run"]) == 0
    captured = capsys.readouterr()
    plan = captured.out + captured.err
    assert "downsample @ 256x192 on fcn" in plan and "downsample @ 256x192 on psp" in plan
    assert "coarse sources fcn, psp" in plan and "backbone" not in plan.split("coarse sources")[1].splitlines()[0]
    out = _run(tmp_path, root, "methods=[downsample]")
    capsys.readouterr()
    assert cli.main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert re.search(r"downsample@64x48/fcn\s+3/3", status) and re.search(r"downsample@64x48/psp\s+3/3", status)


def test_a_unit_that_did_not_run_is_a_dash_and_a_note(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    out = _run(tmp_path, root, "methods=[downsample,guided_filter]")
    # drop guided_filter's records on psp: its cell is unknown, not a number
    run = json.loads((out / "run.json").read_text())
    key = run["units"]["guided_filter@64x48/psp"]
    lines = [ln for ln in (out / "records.jsonl").read_text().splitlines() if key not in ln]
    (out / "records.jsonl").write_text("\n".join(lines) + "\n")
    cfg = build({"dataset": "big", "data_root": str(root), "track": "refinement", "input_size": "64x48",
                 "methods": ["downsample", "guided_filter"], "out_dir": str(out)})
    table = track_tables(cfg, track_units(out))[0]
    psp = next(r for r in table.rows if r[0] == "psp")
    assert psp[2] == "–/–/–" and "guided_filter on psp (not run)" in " ".join(table.notes)
    assert table.rows[-1][2] == "–/–/–"  # no Avg Improve from one source


def test_labels_parse_back():
    assert parse_label("densecrf@256x192/fcn") == ("densecrf", "256x192", "fcn")
    assert parse_label("downsample@128x64") == ("downsample", "128x64", "backbone")


@pytest.mark.slow
def test_an_isolated_unit_gets_its_source_in_the_worker(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    out = tmp_path / "iso"
    assert cli.main(["run", "big", f"data_root={root}", "methods=[downsample]", "coarse_sources=[psp]",
                     "input_size=64x48", f"out_dir={out}", "warmup=0"]) == 0
    recs = [json.loads(ln) for ln in (out / "records.jsonl").read_text().splitlines()]
    assert {r["coarse_source"] for r in recs if r["type"] == "image"} == {"psp"}
    assert len([r for r in recs if r["type"] == "image"]) == len(STEMS)


def test_empty_coarse_masks_are_counted_and_listed(tmp_path):
    import cv2
    import numpy as np

    root = write_big(tmp_path / "big", "cascadepsp")
    seg = root / "psp" / "obj_b_seg.png"
    cv2.imwrite(str(seg), np.zeros_like(cv2.imread(str(seg), cv2.IMREAD_GRAYSCALE)))
    out = _run(tmp_path, root, "methods=[downsample]")
    notes = (out / "tables" / "track.md").read_text()
    assert "Objects with an empty coarse mask (scored like the others): psp: 1 (obj_b)." in notes
    assert "fcn: " not in notes.split("empty coarse mask")[1].split("\n")[0]  # a source without one is not listed


def test_a_big_run_prints_the_published_table_as_cited(tmp_path):
    root = write_big(tmp_path / "big", "segrefiner")
    out = _run(tmp_path, root, "methods=[downsample]")
    cited = (out / "tables" / "big_published.md").read_text()
    assert "Cited, not measured here" in cited and "| Avg Improve | 0.00/0.00 | 0.47/3.30 |" in cited


def test_rows_follow_the_sweep_s_source_order_not_run_json_s_sorted_keys(tmp_path):
    root = write_big(tmp_path / "big", "cascadepsp")
    out = _run(tmp_path, root, "methods=[downsample]", "coarse_sources=[psp, fcn]")
    assert [u.source for u in track_units(out)] == ["psp", "fcn"]  # from the records' order
    assert list(_rows((out / "tables" / "track.md").read_text())) == ["psp", "fcn", "Avg Improve"]
