"""The MagNet section of ``python -m perf``: MagNet and MagNet-Fast image calls, today's forward against the exact default.

An image call is what the runner times for a unit: the coarse pass (``bench.models.coarse``) and the
progressive refinement (``magnet.inference.progressive`` plus the argmax, as ``MagNet.refine``).
Variants, alternated in one process with the same method objects and weights:

- ``reference``: the backbone's forward as it was before the bit-identical speed-ups
  (``bench.models.backbones.hrnet_ocr.reference_forward``), i.e. today's main;
- ``exact``: the default forward (packed conv weights, in-place ReLUs), which must give bitwise
  the same probabilities (``probs_bitwise_equal``) and labels;
- ``inference_copy`` (with ``--magnet-copy``): the opt-in folded channels-last copy, which moves
  labels at near-ties.

Peak resident memory (``ru_maxrss``) of each variant comes from a fresh subprocess doing one
warm-up and one image call (``python -m perf --memory-child method:variant``).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.core.config import REPO_DIR, parse_size
from bench.runtime.measure import child_env
from perf.core import CPU, alternate, best_ratio, calibrated_backbone, ratio

MAGNET_VARIANTS = ("reference", "exact", "inference_copy")


def magnet_method(fast: bool, backbone: nn.Module, classes: int, input_size: tuple[int, int],
                  image_size: tuple[int, int], batch: int, device: torch.device = CPU) -> Any:
    """A MagNet (or MagNet-Fast) method on ``backbone`` with random refiners (seed 0), batch ``batch``, on ``device``."""
    from bench.core.interface import DatasetInfo, MethodContext
    from magnet.config import MagNetConfig, MagNetFastConfig, resolve_plan
    from magnet.method import MagNet, MagNetFast
    from magnet.refinement import RefinementModule

    cls, cfg_cls = (MagNetFast, MagNetFastConfig) if fast else (MagNet, MagNetConfig)
    cfg = cfg_cls(batch_size=batch)
    info = DatasetInfo("random", tuple(f"c{i}" for i in range(classes)), None, ((0, 0, 0),) * classes)
    ctx = MethodContext(classes, input_size, device, backbone, Path("."), info, image_size)
    plan = resolve_plan(cfg, input_size, image_size)
    torch.manual_seed(0)
    return cls(cfg, ctx, refiners=[RefinementModule(classes).to(device).eval() for _ in range(plan.n_refiners)])


def image_call(method: Any, backbone: nn.Module, image: np.ndarray, input_size: tuple[int, int],
               variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse pass + refinement under ``variant``: ``(probabilities (C, H, W), labels (H, W))``."""
    import torch.nn.functional as F

    from bench.models.backbones.hrnet_ocr import reference_forward
    from bench.models.coarse import compute_coarse
    from magnet.inference import progressive
    from magnet.scoring import argmax_channels

    setattr(backbone, "inference_copy", variant == "inference_copy")
    with reference_forward(backbone) if variant == "reference" else nullcontext(), torch.inference_mode():
        coarse = compute_coarse(backbone, image, input_size, CPU)
        y = progressive(image, method._check(image, coarse), method.plan, method.opts, backbone, method.refiners,
                        method.timer)
        if tuple(y.shape[-2:]) != image.shape[:2]:
            y = F.interpolate(y[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
        out = y, argmax_channels(y)
    setattr(backbone, "inference_copy", False)
    return out


def magnet_section(args: argparse.Namespace) -> dict[str, Any]:
    """MagNet and MagNet-Fast image calls for the variants of the module doc."""
    input_size, image_size = parse_size(args.input), parse_size(args.image)
    backbone = calibrated_backbone(args.backbone, args.classes)
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    variants = [v for v in MAGNET_VARIANTS if v != "inference_copy" or args.magnet_copy]
    out: dict[str, Any] = {"backbone": args.backbone, "image": args.image, "input": args.input,
                           "batch": args.magnet_batch, "variants": variants, "methods": {}}
    for fast in (False, True):
        method = magnet_method(fast, backbone, args.classes, input_size, image_size, args.magnet_batch)
        calls: dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]] = {
            v: partial(image_call, method, backbone, image, input_size, v) for v in variants}
        times, last = alternate(calls, args.magnet_repeats)
        ref_probs, ref_labels = last["reference"]
        name = "magnet_fast" if fast else "magnet"
        entry: dict[str, Any] = {"times_ms": times, "pixels": int(ref_labels.numel()), "variants": {}}
        for v in variants:
            probs, labels = last[v]
            entry["variants"][v] = {"speedup_vs_reference": ratio(times, "reference", v),
                                    "best_speedup_vs_reference": best_ratio(times, "reference", v),
                                    "probs_bitwise_equal": bool(torch.equal(probs, ref_probs)),
                                    "label_pixels_changed": int((labels != ref_labels).sum())}
            if args.memory:
                entry["variants"][v]["peak_rss_mib"] = memory_child(args, name, v)
        out["methods"][name] = entry
    return out


def memory_child(args: argparse.Namespace, method: str, variant: str) -> float:
    """Peak resident memory (MiB, ``ru_maxrss``) of one warm-up and one image call in a fresh process."""
    cmd = [sys.executable, "-m", "perf", "--memory-child", f"{method}:{variant}", "--image", args.image,
           "--input", args.input, "--backbone", args.backbone, "--classes", str(args.classes),
           "--magnet-batch", str(args.magnet_batch), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env("tuned"), cwd=REPO_DIR)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {method}:{variant} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def run_memory_child(args: argparse.Namespace) -> None:
    """The ``--memory-child method:variant`` process: print its peak RSS in MiB after two image calls."""
    method, variant = args.memory_child.split(":")
    if variant not in MAGNET_VARIANTS:
        raise ValueError(f"--memory-child variant must be one of {MAGNET_VARIANTS}, got {variant!r}")
    input_size, image_size = parse_size(args.input), parse_size(args.image)
    backbone = calibrated_backbone(args.backbone, args.classes)
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    m = magnet_method(method == "magnet_fast", backbone, args.classes, input_size, image_size, args.magnet_batch)
    for _ in range(2):
        image_call(m, backbone, image, input_size, variant)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
