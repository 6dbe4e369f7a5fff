"""``make gpu-check`` (perf/gpu_check.py) runs on the CPU in its quick mode, so it is known to work before a GPU is lent."""

from __future__ import annotations

import json

import pytest

from perf import gpu_check


def test_quick_magnet_section_measures_autocast_label_changes(tmp_path):
    code = gpu_check.main(["--device", "cpu", "--quick", "--sections", "env,magnet", "--batches", "1",
                           "--repeats", "1", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    magnet = report["sections"]["magnet"]["methods"]
    assert set(magnet) == {"magnet", "magnet_fast"}
    for rows in magnet.values():
        assert set(rows) == {"batch1", "batch1_amp"}
        assert rows["batch1"]["time_ms"]["n"] == 1 and rows["batch1"]["time_ms"]["median"] > 0
        # random weights under bfloat16 autocast move labels: 0 would mean autocast was not applied
        assert rows["batch1_amp"]["labels_changed_vs_fp32"] > 0
    assert report["sections"]["env"]["torch"]


def test_a_failing_section_is_reported_and_the_others_run(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "train_section", lambda device, quick: 1 / 0)
    assert gpu_check.main(["--device", "cpu", "--quick", "--sections", "train,env", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["sections"]["train"]["status"] == "error" and "ZeroDivisionError" in report["sections"]["train"]["error"]
    assert report["sections"]["env"]["status"] == "ok"


@pytest.mark.slow
def test_quick_drift_and_sweep_on_the_cpu_match_the_cpu_baseline(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--quick", "--sections", "drift,sweep", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    drift = report["sections"]["drift"]
    assert drift["compared"] == drift["within_cpu_tolerance"] > 0
    assert report["sections"]["sweep"]["units"]
