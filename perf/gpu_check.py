"""``make gpu-check``: one prepared script that says whether the harness's CUDA path can be trusted.

Sections, each timed and each allowed to fail on its own (its error is reported, the next runs):

- ``env``: torch, CUDA, cuDNN, the GPU, its memory and driver;
- ``drift``: the drift gate's sweep (``results/baselines/<dataset>.json``: reference weights, few
  images) on the GPU, compared with the stored CPU values: every difference is reported (unit,
  metric, CPU value, GPU value, difference, the CPU tolerance), none is hidden;
- ``sweep``: the synthetic default sweep on the GPU, time (median ms per image, synchronised) and
  peak memory (``torch.cuda.max_memory_allocated`` after a reset, per image) per method;
- ``magnet``: MagNet and MagNet-Fast on one 2048x1024 image with HRNet-W18-Small-v2-OCR at
  256x128 (random weights: time and memory only, no accuracy), at patch batch 1 and larger, in
  fp32 and under autocast (fp16), with the number of labels autocast changes;
- ``train``: the backbone's training steps per second (a few steps of its real loop).

``--device cpu --quick`` runs every section on tiny sizes (the test suite does), so the script is
known to work before a GPU is lent. Writes ``<out>/gpu_check.json`` and prints a Markdown summary.
Timing: ``time.perf_counter`` around each call with ``torch.cuda.synchronize`` before and after
(``bench.runtime.measure.timed``); warm-up calls are not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.config import REPO_DIR, parse_size
from bench.runtime.measure import summarize, sync, timed
from perf.magnet_section import magnet_method

MIB = 1 << 20


def env_section(device: torch.device) -> dict[str, Any]:
    """Versions and the device."""
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                   cudnn=torch.backends.cudnn.version())
        if shutil.which("nvidia-smi"):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            out["driver"] = smi.stdout.strip()
    else:
        out["cpu"] = platform.processor() or platform.machine()
    return out


def drift_section(device: torch.device, dataset: str, quick: bool) -> dict[str, Any]:
    """The drift gate's sweep on ``device``, every value against the stored CPU one."""
    from bench.checks.drift import baseline_path, compare, evaluate

    spec = json.loads(baseline_path(dataset).read_text())
    overrides = {**spec["overrides"], "device": device.type}
    if quick:
        overrides.update(methods=["downsample"])  # the baseline's images: values comparable
    results, class_names = evaluate(dataset, overrides)
    entries = [e for e in spec["entries"] if not quick or e["method"] == "downsample"]
    checks = compare(entries, results, class_names, same_machine=False)
    rows = [{"unit": f"{c.method}@{c.size}", "metric": c.metric, "cpu": c.expected, "device": c.actual,
             "difference": None if c.actual is None else c.actual - c.expected, "cpu_tolerance": c.tolerance,
             "status": c.status} for c in checks]
    return {"compared": len(rows), "within_cpu_tolerance": sum(r["status"] == "ok" for r in rows),
            "differences": [r for r in rows if r["difference"] != 0]}


def sweep_section(device: torch.device, dataset: str, quick: bool, out_dir: Path) -> dict[str, Any]:
    """The default sweep on ``device``: per unit, median ms per image and peak MiB."""
    from bench.pipeline.configure import load
    from bench.pipeline.runner import run_sweep
    from bench.pipeline.unit import setup_torch
    from bench.report.results import load_results

    overrides: dict[str, Any] = {"device": device.type, "out_dir": str(out_dir / "sweep"),
                                 "tables_dir": str(out_dir / "sweep" / "tables")}
    if quick:
        overrides.update(methods=["downsample", "magnet"], limit=1)
    cfg = load(dataset, overrides)
    setup_torch(cfg)
    run_sweep(cfg)
    units = {}
    for (method, size), res in load_results(cfg).items():
        units[f"{method}@{size}"] = {"status": res.status, "images": res.n_images, "miou": res.miou,
                                     "time_ms_median": res.time.get("median"), "peak_mib": res.memory,
                                     "mem_method": res.mem_method}
    return {"units": units}


def _peak(device: torch.device, call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` and its peak allocation in MiB above what was allocated before (CUDA), else NaN."""
    if device.type != "cuda":
        return call(), float("nan")
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = call()
    sync(device)
    return out, (torch.cuda.max_memory_allocated(device) - before) / MIB


def magnet_section(device: torch.device, quick: bool, batches: list[int], repeats: int) -> dict[str, Any]:
    """MagNet and MagNet-Fast at full size: time and peak memory per patch batch, fp32 and autocast."""
    from bench.models.backbones import create_backbone
    from bench.models.coarse import compute_coarse

    classes = 19
    image_size, input_size = ((256, 128), (64, 32)) if quick else ((2048, 1024), (256, 128))
    backbone_name = "light" if quick else "hrnet18_small_v2_ocr"
    torch.manual_seed(0)
    backbone = create_backbone(backbone_name, classes).to(device).eval()
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    out: dict[str, Any] = {"backbone": f"{backbone_name} (random weights)", "image": f"{image_size[0]}x{image_size[1]}",
                           "input": f"{input_size[0]}x{input_size[1]}", "methods": {}}
    for fast in (False, True):
        name = "magnet_fast" if fast else "magnet"
        rows: dict[str, Any] = {}
        for batch in batches:
            method = magnet_method(fast, backbone, classes, input_size, image_size, batch, device)

            def call(amp: bool, method: Any = method) -> np.ndarray:
                with torch.inference_mode(), torch.autocast(device.type, enabled=amp,
                                                            dtype=torch.float16 if device.type == "cuda"
                                                            else torch.bfloat16):
                    coarse = compute_coarse(backbone, image, input_size, device)
                    return method.refine(image, coarse).cpu().numpy()

            for amp in (False, True):
                call(amp)  # warm-up: kernels chosen, caches filled
                times: list[float] = []
                labels: np.ndarray | None = None
                peak = float("nan")
                for _ in range(repeats):
                    (labels, peak), ms = timed(partial(_peak, device, partial(call, amp)), device)
                    times.append(ms)
                rows[f"batch{batch}{'_amp' if amp else ''}"] = {"time_ms": summarize(times), "peak_mib": peak,
                                                                 "labels": labels}
            fp32, amp_labels = rows[f"batch{batch}"]["labels"], rows[f"batch{batch}_amp"]["labels"]
            rows[f"batch{batch}_amp"]["labels_changed_vs_fp32"] = int((fp32 != amp_labels).sum())
        for row in rows.values():
            row.pop("labels")
        out["methods"][name] = rows
    return out


def train_section(device: torch.device, quick: bool) -> dict[str, Any]:
    """Steps per second of the backbone's own training loop (a few steps, nothing kept)."""
    from bench.core.config import BackboneTrainConfig
    from bench.data import create_dataset
    from bench.models.backbones import create_backbone
    from bench.training.backbone import train_backbone

    steps = 4 if quick else 30
    size = (256, 128) if quick else (1024, 512)
    crop = (128, 64) if quick else (256, 128)
    dataset = create_dataset("synthetic", split="train", n_images=2, size=size, seed=0)
    model = create_backbone("light", dataset.info.num_classes)
    cfg = BackboneTrainConfig(iterations=steps, batch_size=4 if quick else 8)
    with tempfile.TemporaryDirectory() as tmp:
        sync(device)
        stats = train_backbone(model, dataset, crop, Path(tmp) / "b.pt", cfg, device)
    return {"backbone": "light", "steps": steps, "batch": cfg.batch_size, "crop": f"{crop[0]}x{crop[1]}",
            "seconds": stats["seconds"], "steps_per_s": steps / stats["seconds"]}


SECTIONS = ("env", "drift", "sweep", "magnet", "train")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every chosen section; a failing section records its traceback and the rest still run."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu-check: --device cuda but torch sees no CUDA device")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"sections": {}}
    start = time.perf_counter()
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
        try:
            if name == "env":
                result = env_section(device)
            elif name == "drift":
                result = drift_section(device, args.dataset, args.quick)
            elif name == "sweep":
                result = sweep_section(device, args.dataset, args.quick, out_dir)
            elif name == "magnet":
                result = magnet_section(device, args.quick, [int(b) for b in args.batches.split(",")], args.repeats)
            elif name == "train":
                result = train_section(device, args.quick)
            else:
                raise ValueError(f"unknown section {name!r}; known: {SECTIONS}")
            status = "ok"
        except Exception:  # noqa: BLE001 - a report of every section, failed ones included, is the point
            result, status = {"error": traceback.format_exc(limit=8)}, "error"
        report["sections"][name] = {"status": status, "seconds": time.perf_counter() - t0, **result}
    report["seconds"] = time.perf_counter() - start
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    return report


def summary(report: dict[str, Any]) -> str:
    """Markdown: one line per section, the drift differences, the MagNet rows."""
    lines = ["# gpu-check", ""]
    for name, sec in report["sections"].items():
        lines.append(f"- {name}: {sec['status']} in {sec['seconds']:.1f} s")
    drift = report["sections"].get("drift", {})
    if drift.get("status") == "ok":
        lines += ["", f"Drift gate on the device: {drift['within_cpu_tolerance']} of {drift['compared']} values within "
                  "the CPU tolerances; every value that differs from the CPU baseline:", "",
                  "| unit | metric | CPU | device | difference | CPU tolerance |", "|---|---|---:|---:|---:|---:|"]
        for r in drift["differences"]:
            lines.append(f"| {r['unit']} | {r['metric']} | {r['cpu']:.6g} | {r['device']} | {r['difference']} | "
                         f"{r['cpu_tolerance']:.3g} |")
    mag = report["sections"].get("magnet", {})
    if mag.get("status") == "ok":
        lines += ["", f"MagNet on {mag['backbone']}, image {mag['image']}, input {mag['input']}:", "",
                  "| method | setting | median ms | peak MiB | labels changed by autocast |", "|---|---|---:|---:|---:|"]
        for method, rows in mag["methods"].items():
            for setting, row in rows.items():
                lines.append(f"| {method} | {setting} | {row['time_ms']['median']:.1f} | {row['peak_mib']:.0f} | "
                             f"{row.get('labels_changed_vs_fp32', '')} |")
    for name, sec in report["sections"].items():
        if sec["status"] == "error":
            lines += ["", f"{name} failed:", "```", sec["error"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m perf.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --quick: a check of the script)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and one image: the script's own test")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {SECTIONS}")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--batches", default="1,4,16", help="MagNet patch batch sizes")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per MagNet setting (median)")
    p.add_argument("--out", default=str(REPO_DIR / "results" / "gpu"), help="folder for gpu_check.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    parse_size("1x1")  # the harness imports cleanly before any section runs
    report = run(args)
    print(summary(report))
    return 0 if all(s["status"] == "ok" for s in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
