"""The spread of training over seeds, and the training-drift check against the reference manifest.

``python -m bench seeds DATASET --seeds 0,1,2`` trains and evaluates the default sweep once per
seed (``bench.checks.reference_set``: staging folders ``results/reference/<dataset>-seed<k>/``), then
writes ``results/seeds/<dataset>.json`` (tracked: per seed, every unit's mIoU, mBA and per-class
IoU) and renders the spread: per unit the mean, standard deviation and min-max over seeds next to
the reference weights' value, and whether each headline comparison holds in every seed.

``python -m bench train-check DATASET [methods=[...]]`` retrains (with the reference's seed) into
``results/reference/<dataset>-check/`` and compares with ``weights/<dataset>/manifest.json``: on a
machine with the manifest's training fingerprint every retrained file must equal the reference's
sha256; elsewhere each unit's mIoU and mBA must lie within the measured seed spread.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.weights import reference
from bench.core.config import REPO_DIR, parse_overrides
from bench.pipeline.configure import load
from bench.report.table_model import fmt_pct

SUMMARY_DIR = REPO_DIR / "results" / "seeds"
# Headline comparisons the README reports across seeds: (better?, than, what it shows).
COMPARISONS = (("magnet", "patching", "MagNet vs Patching"), ("magnet", "downsample", "MagNet vs Downsample"),
               ("magnet_fast_paper", "magnet_fast", "MagNet-Fast: paper vs released behaviour"))
SPREAD_SDS = 2.0  # train-check elsewhere: within [min - 2 sd, max + 2 sd] of the seeds


def summary_path(dataset: str) -> Path:
    return SUMMARY_DIR / f"{dataset}.json"


def summarise(manifests: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The tracked summary of per-seed manifests: fingerprint, training time and unit metrics per seed."""
    first = next(iter(manifests.values()))
    return {"schema": 1, "dataset": first["dataset"],
            "seeds": {str(k): {key: m[key] for key in ("fingerprint", "training_digest", "train_seconds", "torch",
                                                       "git_sha", "metrics")} for k, m in sorted(manifests.items())}}


def run_seeds(dataset: str, overrides: dict[str, Any], seeds: list[int], config_file: str | None = None) -> dict[str, Any]:
    """Train and evaluate each seed (skipping those already staged); write and return the summary."""
    from bench.checks.reference_set import staged_config, staging_dir, train_and_evaluate

    manifests = {}
    for k in seeds:
        cfg = staged_config(dataset, overrides, k, staging_dir(dataset, k), config_file)
        command = f"python -m bench seeds {dataset} --seeds {','.join(map(str, seeds))}"
        print(f"[seeds] seed {k}: {cfg.checkpoint_path}", file=sys.stderr, flush=True)
        manifests[k] = train_and_evaluate(cfg, command)
    summary = summarise(manifests)
    path = summary_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _values(summary: dict[str, Any], unit: str, metric: str) -> list[float]:
    out = []
    for seed in summary["seeds"].values():
        m = seed["metrics"].get(unit, {})
        value = m.get(metric) if m.get("status") == "ok" else None
        if value is not None:
            out.append(float(value))
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1), min and max of per-seed values."""
    arr = np.asarray(values, dtype=float)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return {"mean": float(arr.mean()), "sd": sd, "min": float(arr.min()), "max": float(arr.max()), "n": int(arr.size)}


def spread_table(summary: dict[str, Any], ref: dict[str, Any], order: list[str] | None = None) -> str:
    """Markdown: per unit (in ``order``, default the manifest's), the reference value and mean ± sd,
    min-max over seeds (mIoU, mBA in %)."""
    n = len(summary["seeds"])
    lines = [f"| Method | Size | mIoU ref. | mIoU mean ± sd ({n} seeds) | mIoU min–max | mBA ref. | "
             f"mBA mean ± sd | mBA min–max |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for unit in order or list(ref["metrics"]):
        m = ref["metrics"].get(unit, {})
        method, size = unit.split("@")
        cells = [m.get("display", method), size]
        for metric in ("miou", "mba"):
            vals = _values(summary, unit, metric)
            if not vals:
                cells += [fmt_pct(m.get(metric)), "–", "–"]
                continue
            s = spread(vals)
            cells += [fmt_pct(m.get(metric)), f"{fmt_pct(s['mean'])} ± {fmt_pct(s['sd'])}", f"{fmt_pct(s['min'])}–{fmt_pct(s['max'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparisons(summary: dict[str, Any], size: str) -> list[dict[str, Any]]:
    """Per headline comparison and metric: the per-seed differences (a - b) and whether all have one sign."""
    out = []
    for a, b, text in COMPARISONS:
        for metric in ("miou", "mba"):
            diffs = []
            for seed in summary["seeds"].values():
                ma, mb = seed["metrics"].get(f"{a}@{size}", {}), seed["metrics"].get(f"{b}@{size}", {})
                if ma.get(metric) is not None and mb.get(metric) is not None:
                    diffs.append(float(ma[metric]) - float(mb[metric]))
            if diffs:
                holds = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
                out.append({"what": text, "metric": metric, "diffs": diffs, "holds": holds,
                            "direction": "better" if np.mean(diffs) > 0 else "worse"})
    return out


def comparisons_table(summary: dict[str, Any], size: str) -> str:
    """Markdown: each comparison's per-seed difference in points and whether its sign holds in every seed."""
    rows = comparisons(summary, size)
    seeds = list(summary["seeds"])
    lines = ["| Comparison | Metric | " + " | ".join(f"seed {k}" for k in seeds) + " | Holds in every seed |",
             "|---|---|" + "---:|" * len(seeds) + "---|"]
    for r in rows:
        holds = f"yes ({r['direction']})" if r["holds"] else "**no**"
        diffs = [f"{100 * d:+.2f}" for d in r["diffs"]]
        lines.append(f"| {r['what']} | {'mIoU' if r['metric'] == 'miou' else 'mBA'} | {' | '.join(diffs)} | {holds} |")
    return "\n".join(lines) + "\n"


def class_table(summary: dict[str, Any], ref: dict[str, Any], units: list[str], classes: list[str]) -> str:
    """Markdown: per-class IoU (%) of ``units``, reference value and min-max over seeds."""
    lines = ["| Method | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for unit in units:
        m = ref["metrics"].get(unit, {})
        cells = [m.get("display", unit)]
        for c in classes:
            vals = [float(s["metrics"][unit]["iou"][c]) for s in summary["seeds"].values()
                    if s["metrics"].get(unit, {}).get("iou", {}).get(c) is not None]
            rng = f" ({fmt_pct(min(vals))}–{fmt_pct(max(vals))})" if vals else ""
            cells.append(fmt_pct(m.get("iou", {}).get(c)) + rng)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def class_diffs_table(summary: dict[str, Any], a: str, b: str, classes: list[str]) -> str:
    """Markdown: per class, unit ``a``'s IoU minus unit ``b``'s in each seed (points) and whether the sign holds."""
    seeds = list(summary["seeds"])
    lines = ["| Class | " + " | ".join(f"seed {k}" for k in seeds) + " | Same sign in every seed |",
             "|---|" + "---:|" * len(seeds) + "---|"]
    for c in classes:
        diffs = [float(s["metrics"][a]["iou"][c]) - float(s["metrics"][b]["iou"][c]) for s in summary["seeds"].values()
                 if s["metrics"].get(a, {}).get("iou", {}).get(c) is not None
                 and s["metrics"].get(b, {}).get("iou", {}).get(c) is not None]
        if not diffs:
            continue
        holds = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
        verdict = ("yes (better)" if diffs[0] > 0 else "yes (worse)") if holds else "**no**"
        lines.append(f"| {c} | " + " | ".join(f"{100 * d:+.2f}" for d in diffs) + f" | {verdict} |")
    return "\n".join(lines) + "\n"


def reference_manifest(dataset: str, overrides: dict[str, Any], config_file: str | None = None) -> dict[str, Any]:
    """The manifest of the dataset's reference folder (``reference_dir``)."""
    cfg = load(dataset, overrides, config_file)
    if not cfg.reference_dir:
        raise RuntimeError(f"dataset {dataset!r} has no reference_dir in its config")
    folder = REPO_DIR / cfg.reference_dir
    if not reference.is_reference(folder):
        raise RuntimeError(f"no reference manifest in {folder}: run `python -m bench reference {dataset} --install`")
    return reference.load_manifest(folder)


def main(args: Any) -> int:
    overrides = parse_overrides(args.overrides)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.render_only:
        summary = json.loads(summary_path(args.dataset).read_text())
    else:
        summary = run_seeds(args.dataset, overrides, seeds, args.config)
    ref = reference_manifest(args.dataset, overrides, args.config)
    cfg = load(args.dataset, overrides, args.config)
    size = cfg.input_size
    print(spread_table(summary, ref, [f"{m}@{s[0]}x{s[1]}" for m, s in cfg.units()]))
    print(comparisons_table(summary, f"{size[0]}x{size[1]}"))
    print(f"[seeds] summary: {summary_path(args.dataset)}", file=sys.stderr)
    return 0


def training_differences(new: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Training-config fields of ``new`` that differ from the reference's (methods compared one by one)."""
    diffs = [f"{k}: reference {ref.get(k)!r}, now {v!r}" for k, v in new.items() if k != "methods" and ref.get(k) != v]
    for name, opts in new.get("methods", {}).items():
        stored = ref.get("methods", {}).get(name)
        if stored is not None and {k: v for k, v in opts.items() if k != "backbone_digest"} != \
                {k: v for k, v in stored.items() if k != "backbone_digest"}:
            diffs.append(f"{name}: reference {stored}, now {opts}")
    return diffs


def compare_to_reference(new: dict[str, Any], ref: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    """Failures of a retrained set against the reference: exact on its fingerprint, else within the seed spread."""
    if new["fingerprint"] == ref["fingerprint"]:
        failures = []
        for rel, entry in new["files"].items():
            want = ref["files"].get(rel)
            if want is None:
                failures.append(f"{rel}: not in the reference manifest (another backbone digest?)")
            elif want["sha256"] != entry["sha256"]:
                failures.append(f"{rel}: sha256 {entry['sha256'][:12]} differs from the reference's {want['sha256'][:12]}")
            else:
                print(f"[train-check] identical: {rel}")
        return failures
    if summary is None:
        return ["another training fingerprint and no seed summary (results/seeds/<dataset>.json) to compare with"]
    failures = []
    for unit, m in new["metrics"].items():
        for metric in ("miou", "mba"):
            vals = _values(summary, unit, metric)
            if m.get(metric) is None or len(vals) < 2:
                continue
            s = spread(vals)
            lo, hi = s["min"] - SPREAD_SDS * s["sd"], s["max"] + SPREAD_SDS * s["sd"]
            ok = lo <= m[metric] <= hi
            line = f"{unit} {metric}: {fmt_pct(m[metric])} (seeds {fmt_pct(s['min'])}–{fmt_pct(s['max'])}, allowed {fmt_pct(lo)}–{fmt_pct(hi)})"
            print(f"[train-check] {'ok' if ok else 'OUTSIDE'} {line}")
            if not ok:
                failures.append(line)
    return failures


def train_check(args: Any) -> int:
    """Retrain into a fresh staging folder and compare with the reference manifest; 0 when it matches."""
    from bench.checks.reference_set import staged_config, train_and_evaluate

    overrides = parse_overrides(args.overrides)
    ref = reference_manifest(args.dataset, overrides, args.config)
    staging = Path(args.staging or f"results/reference/{args.dataset}-check")
    shutil.rmtree(staging, ignore_errors=True)
    cfg = staged_config(args.dataset, overrides, int(ref["seed"]), staging, args.config)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    new = train_and_evaluate(cfg, command)
    diffs = training_differences(new["training_config"], ref["training_config"])
    if diffs:
        print("[train-check] the config trains otherwise than the reference did (the reference is stale):\n  "
              + "\n  ".join(diffs))
        return 1
    path = summary_path(args.dataset)
    summary = json.loads(path.read_text()) if path.is_file() else None
    same = new["fingerprint"] == ref["fingerprint"]
    print(f"[train-check] training fingerprint {new['fingerprint']} ({'same as' if same else 'differs from'} the "
          f"reference's {ref['fingerprint']}): {'bit-identical files required' if same else 'seed spread required'}")
    failures = compare_to_reference(new, ref, summary)
    for f in failures:
        print(f"[train-check] FAIL {f}")
    print(f"[train-check] {'passed' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0
