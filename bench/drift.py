"""Metric drift gate: rerun a small deterministic benchmark and compare with stored values.

``results/baselines/<dataset>.json`` holds ``overrides`` (the small benchmark, applied on top of
``configs/datasets/<dataset>.yaml``), a machine ``fingerprint``, and ``entries``:
``{method, size, metric, expected, tol_abs | tol_rel, source}``. Accuracy metrics (``miou``,
``mba``, ``iou/<class>``) are always compared; ``time_ms`` and ``memory_mib`` only when the
machine fingerprint matches the stored one (otherwise they are reported as skipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import CONFIG_DIR, load
from bench.tables import UnitResult

BASELINE_DIR = CONFIG_DIR.parent / "results" / "baselines"
PERF_METRICS = ("time_ms", "memory_mib")


@dataclass(frozen=True)
class Check:
    """One compared value."""

    method: str
    size: str
    metric: str
    expected: float
    actual: float | None
    tolerance: float
    status: str  # "ok", "drift", "missing", "skipped"

    def line(self) -> str:
        got = "missing" if self.actual is None else f"{self.actual:.6g}"
        return f"{self.status.upper():8s} {self.method}@{self.size} {self.metric}: expected {self.expected:.6g} ± {self.tolerance:.3g}, got {got}"


def metric_value(res: UnitResult, metric: str, class_names: tuple[str, ...]) -> float | None:
    """A named metric of a unit result (None if the unit did not run)."""
    if res.status != "ok":
        return None
    if metric == "miou":
        return res.miou
    if metric == "mba":
        return res.mba
    if metric == "time_ms":
        return res.time.get("median")
    if metric == "memory_mib":
        return res.memory
    if metric.startswith("iou/"):
        return res.iou[class_names.index(metric[4:])]
    raise KeyError(f"unknown drift metric {metric!r}")


def compare(entries: list[dict[str, Any]], results: dict[tuple[str, str], UnitResult], class_names: tuple[str, ...],
            same_machine: bool) -> list[Check]:
    """Check every entry; perf metrics are skipped unless ``same_machine``."""
    checks = []
    for e in entries:
        res = results.get((e["method"], e["size"]))
        actual = metric_value(res, e["metric"], class_names) if res else None
        tol = e["tol_abs"] if "tol_abs" in e else abs(e["expected"]) * e["tol_rel"]
        if e["metric"] in PERF_METRICS and not same_machine:
            status = "skipped"
        elif actual is None or (isinstance(actual, float) and math.isnan(actual)):
            status = "missing"
        else:
            status = "ok" if abs(actual - e["expected"]) <= tol + 1e-12 else "drift"
        checks.append(Check(e["method"], e["size"], e["metric"], float(e["expected"]), actual, float(tol), status))
    return checks


def baseline_path(dataset: str) -> Path:
    return BASELINE_DIR / f"{dataset}.json"


def run_drift(dataset: str, update: bool = False) -> int:
    """Run the stored small benchmark; print the checks; return the exit code (1 on drift)."""
    from bench.datasets import dataset_info
    from bench.measure import machine_fingerprint
    from bench.runner import run_sweep, setup_torch, train_missing
    from bench.tables import load_results

    path = baseline_path(dataset)
    if not path.is_file():
        print(f"no drift baseline at {path}")
        return 2
    spec = json.loads(path.read_text())
    cfg = load(dataset, spec["overrides"])
    device = setup_torch(cfg)
    train_missing(cfg)
    run_sweep(cfg)
    info = dataset_info(cfg.dataset)
    results = load_results(cfg)
    fingerprint = machine_fingerprint(device)
    if update:
        for e in spec["entries"]:
            res = results[(e["method"], e["size"])]
            e["expected"] = metric_value(res, e["metric"], info.class_names)
        spec["fingerprint"] = fingerprint
        path.write_text(json.dumps(spec, indent=2) + "\n")
        print(f"updated {path}")
        return 0
    checks = compare(spec["entries"], results, info.class_names, fingerprint == spec.get("fingerprint"))
    for c in checks:
        print(c.line())
    bad = [c for c in checks if c.status in ("drift", "missing")]
    print(f"drift gate: {len(checks) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0
