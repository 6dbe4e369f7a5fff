"""``bench compare``: two copies of a committed run folder, one edited, report that edit and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.cli.main import main
from bench.report import compare as cmp

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "published" / "synthetic"
EDITED = "guided_filter"

pytestmark = pytest.mark.skipif(not (PUBLISHED / "run.json").is_file(), reason="no published synthetic run")


def _copy(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(PUBLISHED, out)
    return out


def _edit_records(folder: Path, method: str, edit) -> int:
    """Apply ``edit(record)`` to every ok image record of ``method``; returns how many were edited."""
    path = folder / "records.jsonl"
    lines, n = [], 0
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "image" and rec.get("method") == method and rec.get("status") == "ok":
            edit(rec)
            n += 1
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return n


def _worse_cm(rec: dict) -> None:
    """Move a third of the most frequent class's correct pixels to another class: a lower IoU on every image."""
    cm = rec["cm"]
    c = max(range(len(cm)), key=lambda i: cm[i][i])
    moved = cm[c][c] // 3
    cm[c][c] -= moved
    cm[c][(c + 1) % len(cm)] += moved


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(a: Path, b: Path, capsys, *extra: str) -> tuple[int, dict]:
    code, out, _ = _run(["compare", str(a), str(b), "--json", "--resamples", "200", *extra], capsys)
    return code, json.loads(out)


def _changed(doc: dict) -> dict[str, list[str]]:
    """``{method@size: [metric names whose verdict is not 'same']}`` of the units that changed."""
    return {f"{u['method']}@{u['size']}": [m["name"] for m in u["metrics"] if m["verdict"] != "same"]
            for u in doc["units"] if u["changed"]}


def test_identical_runs_change_nothing_and_pass_every_gate(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    code, doc = _json(a, b, capsys, "--fail-on", "accuracy,time,memory")
    assert code == 0
    assert _changed(doc) == {}
    assert len(doc["units"]) == len(json.loads((PUBLISHED / "run.json").read_text())["units"])
    assert all(u["n_shared"] == 6 for u in doc["units"])
    assert not any(f.startswith(("config", "weights", "data", "code")) for f in doc["flags"])


def test_a_worse_method_is_the_only_change_and_fails_the_accuracy_gate(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    assert _edit_records(b, EDITED, _worse_cm) == 6
    code, doc = _json(a, b, capsys, "--fail-on", "accuracy")
    assert code == 1
    assert _changed(doc) == {f"{EDITED}@128x64": ["miou"]}  # mBA and the cost columns are untouched
    unit = next(u for u in doc["units"] if u["method"] == EDITED)
    miou = next(m for m in unit["metrics"] if m["name"] == "miou")
    assert miou["verdict"] == "worse" and miou["high"] < 0 and miou["b"] < miou["a"]
    assert miou["diff"] == pytest.approx(miou["b"] - miou["a"])
    assert len(doc["regressions"]) == 1 and "mIoU" in doc["regressions"][0]
    # the same edit does not trip a time or memory gate
    assert _json(a, b, capsys, "--fail-on", "time,memory")[0] == 0


def test_a_better_method_is_no_regression(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    _edit_records(a, EDITED, _worse_cm)  # A worse is B better
    code, doc = _json(a, b, capsys, "--fail-on", "accuracy")
    assert code == 0
    unit = next(u for u in doc["units"] if u["method"] == EDITED)
    assert next(m for m in unit["metrics"] if m["name"] == "miou")["verdict"] == "better"


def test_a_planted_slowdown_fails_the_time_gate_only(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")

    def slower(rec: dict) -> None:
        rec["time_ms"] *= 2

    _edit_records(b, EDITED, slower)
    code, doc = _json(a, b, capsys, "--fail-on", "time")
    assert code == 1
    assert _changed(doc) == {f"{EDITED}@128x64": ["time_ms"]}
    unit = next(u for u in doc["units"] if u["method"] == EDITED)
    time = next(m for m in unit["metrics"] if m["name"] == "time_ms")
    assert time["ratio"] == pytest.approx(2.0)
    assert _json(a, b, capsys, "--fail-on", "accuracy,memory")[0] == 0


def test_time_within_the_factor_is_noise(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")

    def a_bit_slower(rec: dict) -> None:
        rec["time_ms"] *= 1.05  # below the 1.10 factor

    _edit_records(b, EDITED, a_bit_slower)
    code, doc = _json(a, b, capsys, "--fail-on", "time")
    assert code == 0 and _changed(doc) == {}


def test_noise_rule_needs_both_the_factor_and_disjoint_spreads():
    assert cmp.ratio_verdict(100, 130, (90, 110), (120, 140), 1.1) == (1.3, "worse")
    # the same ratio inside the two runs' spread (the IQRs overlap) is not a change
    assert cmp.ratio_verdict(100, 130, (60, 150), (120, 140), 1.1)[1] == "same"
    # disjoint spreads but a ratio inside [1/f, f] is not a change either
    assert cmp.ratio_verdict(100, 105, (99, 101), (104, 106), 1.1)[1] == "same"
    assert cmp.ratio_verdict(100, 70, (90, 110), (60, 80), 1.1)[1] == "better"
    assert cmp.ratio_verdict(0, 70, (0, 0), (60, 80), 1.1)[1] == "no verdict"


def test_a_failed_unit_in_b_is_a_regression(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    key = json.loads((b / "run.json").read_text())["units"][f"{EDITED}@128x64"]
    recs = [json.loads(line) for line in (b / "records.jsonl").read_text().splitlines()]
    kept = [r for r in recs if r.get("unit_key") != key]
    kept.append({"type": "unit", "unit_key": key, "method": EDITED, "size": "128x64", "status": "oom",
                 "message": "out of memory", "schema": 2})
    (b / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    code, doc = _json(a, b, capsys, "--fail-on", "memory")
    assert code == 1
    assert _changed(doc) == {f"{EDITED}@128x64": []}
    assert any("ok in A, oom in B" in line for line in doc["regressions"])


def test_differing_weights_and_config_are_flagged(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")

    def weights(digest: str):
        def edit(rec: dict) -> None:
            rec["provenance"]["weights"] = {"backbone": digest}
        return edit

    _edit_records(a, EDITED, weights("aaaaaaaaaaaa"))
    _edit_records(b, EDITED, weights("bbbbbbbbbbbb"))
    run = json.loads((b / "run.json").read_text())
    run["config"]["method_options"][EDITED] = {"radius": 4}
    (b / "run.json").write_text(json.dumps(run))
    code, out, _ = _run(["compare", str(a), str(b), "--resamples", "50"], capsys)
    assert code == 0
    header = out.split("| Unit |")[0]
    assert "**Flag**: weights differ:" in header and "128x64" in header.split("weights differ:")[1].splitlines()[0]
    assert f"method_options.{EDITED}.radius: null → 4" in header
    _, doc = _json(a, b, capsys)
    flagged = [u["method"] for u in doc["units"] if any(f.startswith("weights differ") for f in u["flags"])]
    assert flagged == [EDITED]
    # unchanged weights: no weights flag
    _edit_records(b, EDITED, weights("aaaaaaaaaaaa"))
    assert not any(f.startswith("weights") for f in _json(a, b, capsys)[1]["flags"])


def test_other_code_is_flagged_in_the_header(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")

    def other_sha(rec: dict) -> None:
        rec["provenance"]["git_sha"] = "0123456789abcdef"

    # every method of the published run (its records may come from several commits: set A to one)
    methods = {json.loads(line).get("method") for line in (a / "records.jsonl").read_text().splitlines()}
    for method in sorted(m for m in methods if m):
        _edit_records(a, method, lambda rec: rec["provenance"].update(git_sha="aaaaaaaaaaaaaaaa"))
        _edit_records(b, method, other_sha)
    _edit_records(b, "downsample", lambda rec: rec["provenance"].update(git_sha="fedcba9876543210"))
    _, doc = _json(a, b, capsys)
    # downsample resumed under another commit: both shas of B are named
    assert [f for f in doc["flags"] if f.startswith("code differs")] == [
        "code differs: git aaaaaaaaaa → 0123456789+fedcba9876"]
    assert _changed(doc) == {}


def test_other_data_matches_no_unit_and_is_flagged(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    run = json.loads((b / "run.json").read_text())
    run["config"]["data"] = {"size": [512, 256]}
    (b / "run.json").write_text(json.dumps(run))
    code, doc = _json(a, b, capsys, "--fail-on", "accuracy")
    assert any(f.startswith("data differ") for f in doc["flags"])
    assert all(not u["metrics"] for u in doc["units"])
    assert code == 1  # every unit ok in A has no counterpart: the gate cannot pass on nothing compared


@pytest.mark.slow
def test_two_real_runs_that_differ_by_one_option(tmp_path, capsys):
    """Two tiny sweeps, guided_filter's radius 8 then 4: its accuracy moves, downsample's does not move at all."""
    common = ["synthetic", "methods=[guided_filter,downsample]", "table1_methods=[]", "limit=5", "threads=1",
              "isolate=false"]
    assert main(["run", *common, f"out_dir={tmp_path / 'a'}"]) == 0
    assert main(["run", *common, "guided_filter.radius=4", f"out_dir={tmp_path / 'b'}"]) == 0
    capsys.readouterr()
    _, doc = _json(tmp_path / "a", tmp_path / "b", capsys)
    assert any(f"method_options.{EDITED}.radius: null → 4" in f for f in doc["flags"])
    units = {u["method"]: u for u in doc["units"]}
    assert set(units) == {EDITED, "downsample"} and all(u["n_shared"] == 5 for u in units.values())
    accuracy = {m: {x["name"]: x for x in u["metrics"] if x["kind"] == "accuracy"} for m, u in units.items()}
    for metric in ("miou", "mba"):  # the same inference on the same images: exactly no change
        same = accuracy["downsample"][metric]
        assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0 and same["verdict"] == "same"
    assert accuracy[EDITED]["miou"]["a"] != accuracy[EDITED]["miou"]["b"]
    # the records name the weights they were made with: the same backbone on both sides, no weights flag
    first = json.loads((tmp_path / "a" / "records.jsonl").read_text().splitlines()[0])
    assert set(first["provenance"]["weights"]) == {"backbone"}
    assert not any(f.startswith("weights") for f in doc["flags"])
    assert accuracy[EDITED]["miou"]["diff"] == pytest.approx(accuracy[EDITED]["miou"]["b"]
                                                              - accuracy[EDITED]["miou"]["a"])


def _add_source_unit(folder: Path, source: str, edit=None) -> None:
    """A copy of guided_filter's unit on a coarse source given with the data (``guided_filter@128x64/<source>``)."""
    run = json.loads((folder / "run.json").read_text())
    key = run["units"][f"{EDITED}@128x64"]
    recs = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    extra = [{**json.loads(json.dumps(r)), "unit_key": f"{source}-key", "coarse_source": source}
             for r in recs if r.get("unit_key") == key]
    for r in extra:
        if edit and r.get("type") == "image":
            edit(r)
    with open(folder / "records.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in extra)
    run["units"][f"{EDITED}@128x64/{source}"] = f"{source}-key"
    (folder / "run.json").write_text(json.dumps(run))


def test_units_on_coarse_sources_are_matched_by_source(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    _add_source_unit(a, "psp")
    _add_source_unit(b, "psp", _worse_cm)
    _add_source_unit(b, "ocr")
    _, doc = _json(a, b, capsys)
    # the worse copy on source psp is the only change; the backbone-sourced unit is unchanged
    assert {(u["method"], u["coarse"]): u["changed"] for u in doc["units"] if u["method"] == EDITED} == {
        (EDITED, None): False, (EDITED, "psp"): True, (EDITED, "ocr"): True}
    ocr = next(u for u in doc["units"] if u["coarse"] == "ocr")
    assert (ocr["status_a"], ocr["status_b"], ocr["metrics"]) == ("absent", "ok", [])
    psp = next(u for u in doc["units"] if u["coarse"] == "psp")
    assert [m["name"] for m in psp["metrics"] if m["verdict"] != "same"] == ["miou"]


def _band_counts(worse: bool = False):
    """Boundary IoU counts planted in a record (half the confusion counts, a third of the intersections off if worse)."""
    def edit(rec: dict) -> None:
        cm = np.asarray(rec["cm"])
        inter, union = np.diag(cm) // 2, (cm.sum(0) + cm.sum(1) - np.diag(cm)) // 2
        rec["biou_inter"] = (inter - inter // 3 if worse else inter).tolist()
        rec["biou_union"] = union.tolist()
        rec["biou_ratio"] = 0.02
    return edit


def test_boundary_iou_is_compared_where_both_sides_have_its_counts(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    _edit_records(a, EDITED, _band_counts())
    _edit_records(b, EDITED, _band_counts(worse=True))
    _edit_records(a, "downsample", _band_counts())  # only A has them for downsample: no BIoU row there
    _edit_records(b, "downsample", lambda rec: [rec.pop(k, None) for k in ("biou_inter", "biou_union", "biou_ratio")])
    code, doc = _json(a, b, capsys, "--fail-on", "accuracy")
    assert code == 1 and _changed(doc) == {f"{EDITED}@128x64": ["biou"]}
    units = {u["method"]: u for u in doc["units"] if u["size"] == "128x64"}
    assert "biou" not in [m["name"] for m in units["downsample"]["metrics"]]
    biou = next(m for m in units[EDITED]["metrics"] if m["name"] == "biou")
    # the pooled value, by hand: class counts summed over the six images, NaN classes left out
    recs = [json.loads(line) for line in (b / "records.jsonl").read_text().splitlines()]
    mine = [r for r in recs if r.get("method") == EDITED and r.get("type") == "image"]
    inter = np.sum([r["biou_inter"] for r in mine], 0).astype(float)
    union = np.sum([r["biou_union"] for r in mine], 0).astype(float)
    assert biou["b"] == pytest.approx(float(np.mean(inter[union > 0] / union[union > 0])))
    assert biou["verdict"] == "worse" and biou["low"] <= biou["diff"] <= biou["high"] < 0
    _edit_records(b, EDITED, _band_counts())
    assert _changed(_json(a, b, capsys)[1]) == {}
