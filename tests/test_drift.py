"""Drift gate: passes on matching values, fails on a perturbed result, skips perf off-machine."""

from bench.drift import compare
from bench.tables import UnitResult


def _res(miou=0.6, mba=0.5, t=100.0):
    return UnitResult("downsample", "Downsample", "64x32", 2, "ok", miou=miou, iou=[miou, miou], mba=mba,
                      time={"median": t, "iqr": 1.0, "mean": t, "n": 2}, memory=10.0)


ENTRIES = [
    {"method": "downsample", "size": "64x32", "metric": "miou", "expected": 0.6, "tol_abs": 0.005},
    {"method": "downsample", "size": "64x32", "metric": "iou/b", "expected": 0.6, "tol_abs": 0.005},
    {"method": "downsample", "size": "64x32", "metric": "time_ms", "expected": 100.0, "tol_rel": 0.5},
]


def test_gate_passes_on_same_values():
    checks = compare(ENTRIES, {("downsample", "64x32"): _res()}, ("a", "b"), same_machine=True)
    assert [c.status for c in checks] == ["ok", "ok", "ok"]


def test_gate_fails_on_perturbed_result():
    checks = compare(ENTRIES, {("downsample", "64x32"): _res(miou=0.59)}, ("a", "b"), same_machine=True)
    assert [c.status for c in checks][:2] == ["drift", "drift"]


def test_perf_only_on_same_machine():
    checks = compare(ENTRIES, {("downsample", "64x32"): _res(t=1000.0)}, ("a", "b"), same_machine=False)
    assert checks[2].status == "skipped"
    checks = compare(ENTRIES, {("downsample", "64x32"): _res(t=1000.0)}, ("a", "b"), same_machine=True)
    assert checks[2].status == "drift"


def test_missing_unit_fails():
    checks = compare(ENTRIES[:1], {}, ("a", "b"), same_machine=True)
    assert checks[0].status == "missing"
