"""``python -m bench.checks.thin``: where MagNet loses the thin classes, by experiment, on the reference weights.

Each variant is an ordinary sweep of one method (``bench.pipeline.runner.run_sweep``) with option
overrides, in its own folder ``results/runs/thin-<dataset>/<variant>/``; the per-class IoUs go
to ``results/thin/<dataset>.json`` (tracked; ``python -m bench readme`` renders it):

- ``downsample``, ``magnet``: the reference rows;
- ``magnet_all_points``: every point of every stage replaced (``n_points 1.0``);
- ``magnet_copy_fine``: the refiner replaced by the patch's own backbone softmax
  (``refiner_mode: copy_fine``), so each stage keeps what the backbone sees on the patch;
- ``magnet_copy_fine_all_points``: both, which makes the last stage Patching at full resolution;
- ``patching_<WxH>``: the backbone alone on the patches of each MagNet scale (Patching at that
  scale, upsampled): what each stage's fine input knows;
- with ``--retrain``: ``magnet_trained_2x``, the refiner trained twice as long (into
  ``results/checkpoints/thin-<dataset>/``, on the reference backbone).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.core.config import REPO_DIR, format_size, parse_size
from bench.pipeline.configure import load
from bench.report.table_model import fmt_pct

THIN_CLASSES = ("pole", "traffic light", "traffic sign", "person", "rider", "motorcycle", "bicycle")
OUT = REPO_DIR / "results" / "thin"


def variants(cfg: Any, retrain: bool) -> dict[str, dict[str, Any]]:
    """``{name: overrides}`` of every experiment (see the module docstring)."""
    scales = [parse_size(s) for s in cfg.method_options.get("magnet", {}).get("scales", [])][1:]
    out: dict[str, dict[str, Any]] = {
        "downsample": {"methods": ["downsample"]},
        "magnet": {"methods": ["magnet"]},
        "magnet_all_points": {"methods": ["magnet"], "magnet.n_points": 1.0},
        "magnet_copy_fine": {"methods": ["magnet"], "magnet.refiner_mode": "copy_fine"},
        "magnet_copy_fine_all_points": {"methods": ["magnet"], "magnet.refiner_mode": "copy_fine",
                                        "magnet.n_points": 1.0},
    }
    for s in scales:
        out[f"patching_{format_size(s)}"] = {"methods": ["patching"], "patching.scale": list(s)}
    if retrain:
        train = {"train": True, "backbone_checkpoint": str(cfg.backbone_path),
                 "checkpoint_dir": f"results/checkpoints/thin-{cfg.dataset}"}
        epochs = int(cfg.method_options["magnet"]["epochs"])
        milestones = [2 * m for m in cfg.method_options["magnet"].get("milestones", [])]
        out["magnet_trained_2x"] = {"methods": ["magnet"], **train, "magnet.epochs": 2 * epochs,
                                    "magnet.milestones": milestones}
    return out


def run_variant(dataset: str, name: str, overrides: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Sweep one variant (resuming), return its unit's metrics."""
    from bench.data import dataset_info
    from bench.pipeline.runner import run_sweep, train_missing
    from bench.report.results import load_results

    folder = Path(f"results/runs/thin-{dataset}/{name}")
    cfg = load(dataset, {**base, "table1_sizes": [], "out_dir": str(folder / "runs"),
                         "tables_dir": str(folder / "tables"), "save_predictions": 0, **overrides})
    if cfg.train:
        train_missing(cfg)
    run_sweep(cfg)
    (res,) = [r for (m, s), r in load_results(cfg).items() if s == format_size(cfg.input_size)]
    if res.status != "ok":
        raise RuntimeError(f"variant {name}: {res.status} {res.message[-500:]}")
    names = dataset_info(dataset).class_names
    return {"display": res.display, "overrides": overrides, "n_images": res.n_images, "miou": res.miou, "mba": res.mba,
            "iou": dict(zip(names, res.iou))}


def experiments_table(results: dict[str, dict[str, Any]], classes: list[str]) -> str:
    """Markdown: each experiment variant's mIoU, mBA and per-class IoU of ``classes`` (%)."""
    lines = ["| Variant | mIoU | mBA | " + " | ".join(classes) + " |", "|---|---:|---:|" + "---:|" * len(classes)]
    for name, r in results.items():
        cells = [fmt_pct(r["miou"]), fmt_pct(r["mba"])] + [fmt_pct(r["iou"].get(c)) for c in classes]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.checks.thin", description=__doc__.split("\n")[0])
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("--retrain", action="store_true", help="also train and run the refiner trained twice as long")
    p.add_argument("--only", default=None, help="comma-separated variant names")
    args = p.parse_args(argv)
    cfg = load(args.dataset)
    path = OUT / f"{args.dataset}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    chosen = variants(cfg, args.retrain)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    for name, overrides in chosen.items():
        print(f"[thin] {name}: {overrides}", file=sys.stderr, flush=True)
        results[name] = run_variant(args.dataset, name, overrides, {})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")  # after each variant: nothing lost

    print(experiments_table(results, list(THIN_CLASSES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
