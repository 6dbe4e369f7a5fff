"""``bench export``: rows checked against the records, csv/parquet/json agree, the JSON round-trips through its
schema, old files (a committed v1 file, ``bench score``'s JSON) stay readable; ``bench score`` has time and memory."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.cli.main import main
from bench.report import export

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "published" / "synthetic"
GOLDEN = ROOT / "tests" / "golden"

needs_run = pytest.mark.skipif(not (PUBLISHED / "run.json").is_file(), reason="no published synthetic run")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(PUBLISHED, out)
    return out


@pytest.fixture(scope="module")
def rows(run_dir) -> list[dict]:
    return export.run_rows(run_dir)


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines() if line.strip()]


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


@needs_run
def test_one_row_per_unit_and_variant_with_values_from_the_records(run_dir, rows):
    run = json.loads((run_dir / "run.json").read_text())
    assert len(rows) == len(run["units"])  # the synthetic config shows one variant (miou)
    assert {r["variant"] for r in rows} == {"miou"}
    recs = _records(run_dir)
    for row in rows:
        key = run["units"][f"{row['method']}@{row['input_size']}"]
        mine = [r for r in recs if r.get("unit_key") == key and r.get("type") == "image"]
        assert row["unit_key"] == key and row["n_images"] == len(mine) == 6
        times = [r["time_ms"] for r in mine]
        assert row["time_median_ms"] == pytest.approx(float(np.median(times)))
        q25, q75 = np.percentile(times, [25, 50 + 25])
        assert row["time_iqr_ms"] == pytest.approx(q75 - q25)
        assert row["memory_mib"] == pytest.approx(max(r["mem_peak_delta_mib"] for r in mine))
        # mIoU from the summed confusion matrix, computed here by hand (absent classes left out)
        cm = np.sum([np.asarray(r["cm"], dtype=float) for r in mine], axis=0)
        tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
        iou = tp[union > 0] / union[union > 0]
        assert row["miou"] == pytest.approx(float(iou.mean()))
        assert row["iou_road"] == pytest.approx(tp[0] / union[0])
        assert row["mba"] == pytest.approx(float(np.mean([r["mba"] for r in mine])))
        prov = mine[0]["provenance"]
        assert (row["git_sha"], row["torch"], row["threads"]) == (prov["git_sha"], prov["versions"]["torch"],
                                                                  prov["threads"])
        assert row["dataset"] == "synthetic" and row["split"] == "val" and row["status"] == "ok"
        assert row["config_digest"]
        # the weight digests the records name (provenance.weights, written since the compare work), hashed
        from bench.core.config import stable_hash

        named = prov.get("weights")
        assert row["weights_digest"] == (stable_hash({"weights": named}) if named else None)


@needs_run
def test_a_second_variant_is_a_second_row(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = json.loads((copy / "run.json").read_text())
    run["config"]["metric_columns"] = ["miou", "miou_mmseg"]
    (copy / "run.json").write_text(json.dumps(run))
    out = export.run_rows(copy)
    assert [r["variant"] for r in out[:2]] == ["miou", "miou_mmseg"]
    assert out[0]["mba"] == out[1]["mba"] and out[0]["unit_key"] == out[1]["unit_key"]


@needs_run
def test_csv_parquet_and_json_agree_and_json_round_trips_through_the_schema(run_dir, rows, tmp_path):
    files = {}
    for fmt in export.FORMATS:
        if fmt == "parquet":
            pytest.importorskip("pyarrow")
        assert main(["export", str(run_dir), "--format", fmt, "--output", str(tmp_path)]) == 0
        files[fmt] = next(tmp_path.glob(f"*.{fmt}"))
    assert files["csv"].name == f"results-synthetic-val-pt{rows[0]['torch']}-{rows[0]['device']}.csv"  # timm's naming
    doc = json.loads(files["json"].read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, export.schema())
    back = {fmt: export.read(path) for fmt, path in files.items()}
    for fmt, got in back.items():
        assert len(got) == len(rows), fmt
        for want, row in zip(rows, got):
            assert set(row) == set(want), fmt
            bad = {k: (want[k], row[k]) for k in want if not _same(want[k], row[k])}
            assert not bad, (fmt, bad)


def test_the_schema_rejects_what_it_should():
    doc = json.loads((GOLDEN / "results-v1.json").read_text())
    export.validate(doc)
    for edit, where in ((lambda d: d["rows"][0].update(miou="0.5"), "rows/0/miou"),
                        (lambda d: d["rows"][0].pop("git_sha"), "rows/0"),
                        (lambda d: d["rows"][0].update(colour=1), "rows/0"),
                        (lambda d: d.update(version=2), "version")):
        bad = json.loads(json.dumps(doc))
        edit(bad)
        with pytest.raises(ValueError, match=where):
            export.validate(bad)


def test_the_light_validator_rejects_a_wrong_type_without_jsonschema():
    doc = json.loads((GOLDEN / "results-v1.json").read_text())
    export._validate_light(doc)
    doc["rows"][0]["n_images"] = 6.5
    with pytest.raises(ValueError, match="rows/0/n_images"):
        export._validate_light(doc)


def test_a_committed_v1_file_stays_readable():
    got = export.read(GOLDEN / "results-v1.json")
    doc = json.loads((GOLDEN / "results-v1.json").read_text())
    assert doc["version"] == 1 and got == doc["rows"]
    assert [r["method"] for r in got] == ["downsample", "patching"]


def test_bench_score_json_is_upgraded_to_rows(tmp_path):
    old = json.loads((GOLDEN / "score-json-v0.json").read_text())
    got = export.read(GOLDEN / "score-json-v0.json")
    assert len(got) == len(old["units"])
    for row, unit in zip(got, old["units"]):
        assert (row["dataset"], row["split"], row["method"], row["input_size"], row["variant"]) == \
               ("synthetic", "val", unit["method"], unit["size"], "miou")
        assert row["miou"] == unit["miou"] and row["iou_car"] == unit["iou_car"] and row["git_sha"] is None
    newer = tmp_path / "new.json"
    newer.write_text(json.dumps({**json.loads((GOLDEN / "results-v1.json").read_text()), "version": 9}))
    with pytest.raises(ValueError, match="newer"):
        export.read(newer)


@needs_run
def test_bench_score_gains_time_and_memory(run_dir, capsys):
    assert main(["score", f"out_dir={run_dir}", "--format", "json", "--methods", "downsample"]) == 0
    units = json.loads(capsys.readouterr().out)["units"]
    recs = [r for r in _records(run_dir) if r.get("method") == "downsample" and r.get("size") == "128x64"
            and r.get("type") == "image"]
    first = units[0]
    assert first["time_median_ms"] == pytest.approx(float(np.median([r["time_ms"] for r in recs])))
    assert first["memory_mib"] == pytest.approx(max(r["mem_peak_delta_mib"] for r in recs))
    assert first["mem_method"] == recs[0]["mem_method"]
    assert main(["score", f"out_dir={run_dir}", "--format", "csv", "--methods", "downsample"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert {"time_median_ms", "time_iqr_ms", "memory_mib"} <= set(header)


def test_export_of_a_folder_that_is_no_run_is_a_user_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--format", "csv"]) == 2
    assert "expected the out_dir of a bench run" in capsys.readouterr().err


def test_the_schema_describes_exactly_the_columns_the_code_writes():
    row = export.schema()["properties"]["rows"]["items"]
    assert list(row["properties"]) == list(export.COLUMNS)
    assert row["required"] == list(export.COLUMNS)
    types = {k: [t for t in v["type"] if t != "null"] for k, v in row["properties"].items()}
    assert types == {k: [t] for k, t in export.COLUMNS.items()}


@needs_run
def test_a_unit_on_a_coarse_source_given_with_the_data_is_a_row_of_its_own(run_dir, rows, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = json.loads((copy / "run.json").read_text())
    key = run["units"]["guided_filter@128x64"]
    extra = [{**r, "unit_key": "psp-key", "coarse_source": "psp"} for r in _records(copy) if r.get("unit_key") == key]
    with open(copy / "records.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in extra)
    run["units"]["guided_filter@128x64/psp"] = "psp-key"
    (copy / "run.json").write_text(json.dumps(run))
    out = export.run_rows(copy)
    assert len(out) == len(rows) + 1
    by = {(r["method"], r["coarse"]): r for r in out}
    psp, own = by[("guided_filter", "psp")], by[("guided_filter", None)]
    assert psp["unit_key"] == "psp-key" and own["unit_key"] == key
    assert psp["miou"] == own["miou"] and psp["n_images"] == own["n_images"] == 6
