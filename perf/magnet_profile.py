"""Where MagNet's refine() time goes, per inference batch size: ``python -m perf.magnet_profile``.

One random image (default 2048x1024) and random weights (default HRNet-W18-Small-v2 + OCR, 19
classes, input 256x128, the Cityscapes geometry). Each batch size runs in a fresh subprocess so
that the peak resident memory (``ru_maxrss``) is that run's alone, with the allocator setting
the harness gives its units (``--allocator``, see ``bench.runtime.measure``). Reported per run: the coarse
pass (outside refine, as the runner times it), refine() in total, the time inside backbone
forwards and refiner forwards, the rest, the number of patch forwards, peak RSS, and a digest of
the labels (identical digests = identical predictions). As in the runner, ``--warmup`` untimed
refine() calls come first (oneDNN builds its kernels on the first call); of ``--repeats`` timed
calls, the one with the median refine() time is reported (its parts add up), and the labels
must agree across all of them.

Example::

    python -m perf.magnet_profile --batch-sizes 1,2,4,8 --threads 2
    python -m perf.magnet_profile --fast --backbone light --image 1024x512 --input 128x64 --n-points 8192
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench.core.config import ALLOCATORS, parse_size
from bench.runtime.measure import MemoryProbe, child_env


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="hrnet18_small_v2_ocr")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--image", default="2048x1024", help="image size WxH")
    p.add_argument("--input", default="256x128", help="backbone input size WxH (= crop size)")
    p.add_argument("--n-points", type=float, default=32768)
    p.add_argument("--fast", action="store_true", help="MagNet-Fast (4 patches per stage, 0.9 of their points)")
    p.add_argument("--behaviour", default="released")
    p.add_argument("--batch-sizes", default="1,2,4,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--allocator", default="tuned", choices=ALLOCATORS,
                   help="the children's allocator, as the harness sets it for its units (bench.runtime.measure)")
    p.add_argument("--warmup", type=int, default=1, help="untimed refine() calls first (default: 1, as the runner)")
    p.add_argument("--repeats", type=int, default=1, help="timed calls; the median one is reported (default: 1)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--save-labels", help="folder for labels_b<batch>.npy (to count differing pixels)")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    return p


def _child(args: argparse.Namespace) -> dict:
    """Warm-up, then the timed refine() calls in this process; the median call's numbers as a dict."""
    from bench.models.backbones import create_backbone
    from bench.models.coarse import compute_coarse
    from bench.core.interface import DatasetInfo, MethodContext
    from magnet.config import MagNetConfig, MagNetFastConfig, resolve_plan
    from magnet.geometry import patch_boxes
    from magnet.method import MagNet, MagNetFast
    from magnet.refinement import RefinementModule

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    (iw, ih), size = parse_size(args.image), parse_size(args.input)
    image = np.random.default_rng(0).integers(0, 256, (ih, iw, 3), dtype=np.uint8)
    backbone = create_backbone(args.backbone, args.classes).eval()
    cls, cfg_cls = (MagNetFast, MagNetFastConfig) if args.fast else (MagNet, MagNetConfig)
    cfg = cfg_cls(batch_size=args.child, behaviour=args.behaviour, **({} if args.fast else {"n_points": args.n_points}))
    info = DatasetInfo("random", tuple(f"c{i}" for i in range(args.classes)), None, ((0, 0, 0),) * args.classes)
    ctx = MethodContext(args.classes, size, torch.device("cpu"), backbone, Path("."), info, (iw, ih))
    plan = resolve_plan(cfg, size, (iw, ih))
    method = cls(cfg, ctx, refiners=[RefinementModule(args.classes).eval() for _ in range(plan.n_refiners)])
    with torch.inference_mode():
        for _ in range(args.warmup):
            method.refine(image, compute_coarse(backbone, image, size, ctx.device))
        probe = MemoryProbe(ctx.device)
        probe.setup_done()
        calls = [_timed_call(method, backbone, image, ctx, probe) for _ in range(args.repeats)]
    digests = {hashlib.sha1(labels.numpy().tobytes()).hexdigest()[:12] for _, labels in calls}
    if len(digests) != 1:
        raise RuntimeError(f"refine() gave different labels across repeats: {sorted(digests)}")
    median, labels = sorted(calls, key=lambda c: c[0]["refine_s"])[(len(calls) - 1) // 2]
    if args.save_labels:
        np.save(Path(args.save_labels) / f"labels_b{args.child}.npy", labels.numpy().astype(np.uint8))
    grids = [len(patch_boxes(s, plan.crop)) for s in plan.scales[1:]]
    patches = sum(g if cfg.n_patches < 0 else min(g, cfg.n_patches) for g in grids)
    return {"batch_size": args.child, "patch_forwards": patches, "repeats": len(calls), **median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "labels_sha1": digests.pop()}


def _timed_call(method, backbone: torch.nn.Module, image: np.ndarray, ctx, probe) -> tuple[dict, torch.Tensor]:  # noqa: ANN001
    """One coarse pass and one refine() timed as the runner times a unit (``bench.pipeline.unit.predict``).

    A fresh section timer splits refine() into backbone forwards, refiner forwards and the rest.
    Returns (seconds per part, labels).
    """
    from bench.core.data_types import Sample
    from bench.pipeline.unit import predict
    from magnet.inference import Timer

    method.timer = Timer(ctx.device)
    blank = np.zeros(image.shape[:2], np.uint8)  # no ground truth: predict only checks the shape
    labels, times, _ = predict(method, type(method), Sample("random", image, blank), backbone, ctx, probe)
    sec = method.timer.seconds
    refine_s = times["time_refine_ms"] / 1e3
    return {"coarse_s": times["time_coarse_ms"] / 1e3, "refine_s": refine_s, "backbone_s": sec["backbone"],
            "refiner_s": sec["refiner"], "other_s": refine_s - sec["backbone"] - sec["refiner"]}, torch.from_numpy(labels)


def _run(args: argparse.Namespace, batch: int) -> dict:
    cmd = [sys.executable, "-m", "perf.magnet_profile", "--child", str(batch), "--backbone", args.backbone,
           "--classes", str(args.classes), "--image", args.image, "--input", args.input,
           "--n-points", str(args.n_points), "--behaviour", args.behaviour, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    cmd += ["--fast"] if args.fast else []
    cmd += ["--save-labels", args.save_labels] if args.save_labels else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args.allocator))
    if proc.returncode != 0:
        raise RuntimeError(f"profile child (batch {batch}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    base = rows[0]["backbone_s"]
    lines = ["| batch | patches | coarse s | refine s | backbone s | refiner s | other s | outside backbone % | "
             "backbone speed-up | peak RSS MB | labels |", "|---" * 11 + "|"]
    for r in rows:
        outside = 100 * (r["refine_s"] - r["backbone_s"]) / r["refine_s"]
        lines.append(f"| {r['batch_size']} | {r['patch_forwards']} | {r['coarse_s']:.2f} | {r['refine_s']:.2f} | "
                     f"{r['backbone_s']:.2f} | {r['refiner_s']:.2f} | {r['other_s']:.2f} | {outside:.1f} | "
                     f"{base / r['backbone_s']:.2f}x | {r['peak_rss_mb']:.0f} | {r['labels_sha1']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return
    if args.save_labels:
        Path(args.save_labels).mkdir(parents=True, exist_ok=True)
    rows = [_run(args, int(b)) for b in args.batch_sizes.split(",")]
    print(f"MagNet{'-Fast' if args.fast else ''} {args.behaviour}, {args.backbone}, image {args.image}, input "
          f"{args.input}, {args.threads} threads, allocator {args.allocator}, warm-up {args.warmup}, "
          f"median of {args.repeats}, torch {torch.__version__}")
    print(_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
