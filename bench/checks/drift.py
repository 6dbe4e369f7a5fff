"""Metric drift gate: evaluate the committed reference weights on a small subset, compare with stored values.

``results/baselines/<dataset>.json`` holds ``overrides`` (the small benchmark, applied on top of
``configs/datasets/<dataset>.yaml``: every method of the default sweep, a few val images, no
training, so the reference weights of ``weights/<dataset>/`` are what is evaluated), a machine
``fingerprint`` and ``entries``: ``{method, size, metric, expected, tol_abs | tol_rel}``. Metrics:

- ``miou``, ``mba``, ``iou/<class>``: fractions, compared within ``tol_abs``;
- ``pixels``: the unit's confusion matrix summed over the images against the stored ``cm``: half
  the L1 distance, i.e. how many pixels moved between cells (0 when every label is the same);
- ``time_ms``, ``memory_mib``: only when the machine fingerprint matches the stored one.

The tolerances come from a measurement (``--measure``): the gate runs under several CPU kernel
sets (``KERNEL_SETS``: ATen capability x oneDNN ISA, as this CPU allows), the largest difference
from the native run is stored per unit and metric under ``measured``, and each tolerance is
``TOLERANCE_FACTOR`` times that, at least ``FLOORS``. So the gate fires on a change of code, not
on a change of CPU; the floors stay below what the smallest real change moves (tested).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import CONFIG_DIR
from bench.pipeline.configure import load
from bench.runtime.measure import KERNEL_ENV
from bench.report.table_model import UnitResult

BASELINE_DIR = CONFIG_DIR.parent / "results" / "baselines"
PERF_METRICS = ("time_ms", "memory_mib")
ACCURACY_METRICS = ("miou", "mba", "pixels")
TOLERANCE_FACTOR = 4.0
FLOORS = {"miou": 2e-5, "mba": 5e-5, "pixels": 8}  # fractions; confusion-matrix pixels. Above 4x the measured
# spread: they allow for kernels this CPU cannot imitate (AVX-512), and stay below the smallest
# label-moving changes the tests make (47, 91 and ~1e5 pixels)
# Kernel sets the tolerances are measured under: env of a gate run (the native run has none).
KERNEL_SETS = {
    "aten=default onednn=SSE41": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "aten=default onednn=AVX2": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "aten=avx2 onednn=SSE41": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "aten=avx2 onednn=AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "aten=avx512 onednn=AVX512_CORE": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    # numpy and OpenCV dispatch on their own: their x86-64-v2 baseline (SSE4.2) only
    "numpy, opencv SSE4.2": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4", "OPENCV_CPU_DISABLE": "AVX2,FMA3,AVX,FP16"},
}


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


def summed_cm(res: UnitResult) -> np.ndarray:
    """(C, C) int64 confusion matrix of a unit, summed over its image records."""
    return np.sum([np.asarray(r["cm"], dtype=np.int64) for r in res.images.values()], axis=0)


def moved_pixels(cm: np.ndarray, expected: Any) -> float:
    """Half the L1 distance of two confusion matrices: pixels that moved between cells."""
    return float(np.abs(cm - np.asarray(expected, dtype=np.int64)).sum() / 2)


def metric_value(res: UnitResult, metric: str, class_names: tuple[str, ...], entry: dict[str, Any] | None = None) -> float | None:
    """A named metric of a unit result (None if the unit did not run)."""
    if res.status != "ok":
        return None
    if metric == "miou":
        return res.miou
    if metric == "mba":
        return res.mba
    if metric == "pixels":
        return moved_pixels(summed_cm(res), (entry or {})["cm"])
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
        actual = metric_value(res, e["metric"], class_names, e) if res else None
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


def evaluate(dataset: str, overrides: dict[str, Any]) -> tuple[dict[tuple[str, str], UnitResult], tuple[str, ...]]:
    """Run the gate's sweep into a fresh temporary folder (never resumed); its results and class names."""
    from bench.data import dataset_info
    from bench.pipeline.runner import run_sweep
    from bench.pipeline.unit import setup_torch
    from bench.report.results import load_results

    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        cfg = load(dataset, {**overrides, "out_dir": f"{tmp}/runs", "tables_dir": f"{tmp}/tables"})
        setup_torch(cfg)
        run_sweep(cfg)
        return load_results(cfg), dataset_info(cfg).class_names


def unit_values(results: dict[tuple[str, str], UnitResult]) -> dict[str, dict[str, Any]]:
    """JSON-ready ``{"method@size": {miou, mba, cm}}`` of the units that ran."""
    return {f"{m}@{s}": {"miou": r.miou, "mba": r.mba, "cm": summed_cm(r).tolist()}
            for (m, s), r in results.items() if r.status == "ok"}


def _values_under(dataset: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The gate's unit values from a fresh process with ``env`` added (another kernel set)."""
    with tempfile.TemporaryDirectory(prefix="drift-values-") as tmp:
        out = Path(tmp) / "values.json"
        cmd = [sys.executable, "-m", "bench", "drift", dataset, "--values", str(out)]
        subprocess.run(cmd, env={**os.environ, **env}, check=True)
        return json.loads(out.read_text())


def largest_differences(native: dict[str, dict[str, Any]], others: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per unit and metric, the largest absolute difference of any other run from the native one."""
    out: dict[str, dict[str, float]] = {}
    for unit, ref in native.items():
        d = {"miou": 0.0, "mba": 0.0, "pixels": 0.0}
        for run in others:
            got = run.get(unit)
            if got is None:
                raise RuntimeError(f"unit {unit} did not run under every kernel set")
            d["miou"] = max(d["miou"], abs(got["miou"] - ref["miou"]))
            d["mba"] = max(d["mba"], abs(got["mba"] - ref["mba"]))
            d["pixels"] = max(d["pixels"], moved_pixels(np.asarray(got["cm"]), ref["cm"]))
        out[unit] = d
    return out


def tolerance(metric: str, measured: float) -> float:
    return max(TOLERANCE_FACTOR * measured, FLOORS[metric])


def available_kernel_sets() -> dict[str, dict[str, str]]:
    """``KERNEL_SETS`` this CPU can run (the avx512 set needs avx512f)."""
    from bench.runtime.measure import cpu_flags

    has512 = "avx512f" in cpu_flags()
    return {k: v for k, v in KERNEL_SETS.items() if has512 or "avx512" not in k}


def measure_tolerances(dataset: str) -> int:
    """Rewrite the baseline: expected values from the native run, tolerances from every kernel set."""
    from bench.runtime.measure import kernel_set, machine_fingerprint
    import torch

    path = baseline_path(dataset)
    spec = json.loads(path.read_text())
    native = _values_under(dataset, {})
    sets = available_kernel_sets()
    runs = {}
    for name, env in sets.items():
        print(f"[drift] measuring under {name}", file=sys.stderr, flush=True)
        runs[name] = _values_under(dataset, env)
    measured = largest_differences(native, list(runs.values()))
    per_set = {name: largest_differences(native, [run]) for name, run in runs.items()}
    entries = []
    for unit, values in native.items():
        method, size = unit.split("@")
        for metric in ACCURACY_METRICS:
            entry = {"method": method, "size": size, "metric": metric,
                     "expected": 0.0 if metric == "pixels" else values[metric],
                     "tol_abs": tolerance(metric, measured[unit][metric]), "measured": measured[unit][metric]}
            if metric == "pixels":
                entry["cm"] = values["cm"]
            entries.append(entry)
    spec.update(entries=entries, measured={"kernel_sets": sets, "largest": measured, "per_set": per_set,
                                           "native": kernel_set(), "factor": TOLERANCE_FACTOR, "floors": FLOORS},
                fingerprint=machine_fingerprint(torch.device("cpu")))
    path.write_text(json.dumps(spec, indent=1) + "\n")
    print(f"[drift] wrote {len(entries)} entries to {path}")
    return 0


def run_drift(dataset: str, update: bool = False, values: str | None = None, measure: bool = False) -> int:
    """Run the stored small benchmark; print the checks; return the exit code (1 on drift, 2 without a baseline).

    ``values``: write this run's unit values as JSON there and compare nothing (``--measure`` uses it).
    ``update``: store this run's values as expected (tolerances kept). ``measure``: see
    :func:`measure_tolerances`.
    """
    from bench.runtime.measure import machine_fingerprint
    import torch

    path = baseline_path(dataset)
    if not path.is_file():
        print(f"no drift baseline at {path}")
        return 2
    if measure:
        return measure_tolerances(dataset)
    spec = json.loads(path.read_text())
    results, class_names = evaluate(dataset, spec["overrides"])
    if values:
        Path(values).write_text(json.dumps(unit_values(results)))
        return 0
    fingerprint = machine_fingerprint(torch.device("cpu"))
    if update:
        current = unit_values(results)
        for e in spec["entries"]:
            unit = current[f"{e['method']}@{e['size']}"]
            if e["metric"] == "pixels":
                e["cm"] = unit["cm"]
            else:
                e["expected"] = metric_value(results[(e["method"], e["size"])], e["metric"], class_names, e)
        spec["fingerprint"] = fingerprint
        path.write_text(json.dumps(spec, indent=1) + "\n")
        print(f"updated {path}")
        return 0
    checks = compare(spec["entries"], results, class_names, fingerprint == spec.get("fingerprint"))
    for c in checks:
        print(c.line())
    bad = [c for c in checks if c.status in ("drift", "missing")]
    env = " ".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ)
    print(f"[drift] kernel set: {env or 'native'}; tolerances measured as in {path.name} 'measured'")
    print(f"drift: {len(checks) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0

