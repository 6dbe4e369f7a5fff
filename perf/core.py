"""Timing helpers of ``python -m perf``: alternation, FLOP counting, the fp32 matmul peak, a calibrated backbone."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.runtime.measure import summarize, timed

CPU = torch.device("cpu")


def count_flops(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Floating-point operations of ``model(x)`` (a multiply-add counts 2).

    The model runs its reference forward (``bench.models.backbones.hrnet_ocr.reference_forward``: plain
    ``F.conv2d`` calls, which ``FlopCounterMode`` sees) and its own layers, not an inference copy.

    Returns:
        ``conv_linear``: Conv2d and Linear layers by forward hooks (2 * output elements *
        in_channels / groups * kernel area, plus one add per output for a bias);
        ``flop_counter``: everything ``torch.utils.flop_counter.FlopCounterMode`` counts
        (convolutions, matrix products, attention; no bias adds, no elementwise work).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from bench.models.backbones.hrnet_ocr import reference_forward

    total = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_out = 2 * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            per_out = 2 * module.in_features
        total[0] += out.numel() * (per_out + (module.bias is not None))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    copy_on = getattr(model, "inference_copy", None)
    if copy_on is not None:
        setattr(model, "inference_copy", False)  # count the model's own layers, not its folded copy's
    try:
        with torch.inference_mode(), reference_forward(model):
            model(x)
            with FlopCounterMode(display=False) as counter:
                model(x)
    finally:
        for h in handles:
            h.remove()
        if copy_on is not None:
            setattr(model, "inference_copy", copy_on)
    return {"conv_linear": total[0] // 2, "flop_counter": int(counter.get_total_flops())}


def matmul_rate(n: int, repeats: int) -> float:
    """Best fp32 ``n x n @ n x n`` rate of ``repeats`` products, GFLOP/s, on the current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return max(2 * n**3 / (timed(lambda: a @ b, CPU)[1] * 1e-3) / 1e9 for _ in range(repeats))


def matmul_peak(n: int, repeats: int) -> dict[str, float]:
    """fp32 ``n x n @ n x n`` rate in GFLOP/s on the current threads: best and median of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    rates = [2 * n**3 / (timed(lambda: a @ b, CPU)[1] * 1e-3) / 1e9 for _ in range(repeats)]
    return {"n": n, "best_gflops": max(rates), "median_gflops": float(np.median(rates)), "repeats": repeats}


def alternate(variants: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, dict[str, Any]], dict]:
    """Warm each variant once, then ``repeats`` rounds of every variant in turn.

    Returns:
        ``(times, last)``: per variant the summary of its times in ms (``bench.runtime.measure.summarize``
        plus ``all_ms``), and its last result.
    """
    last = {name: fn() for name, fn in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(repeats):
        for name, fn in variants.items():
            last[name], ms = timed(fn, CPU)
            times[name].append(ms)
            print(f"[perf] round {rep + 1}/{repeats} {name}: {ms:.0f} ms", file=sys.stderr, flush=True)
    return {name: {**summarize(v), "all_ms": v} for name, v in times.items()}, last


def ratio(times: dict[str, dict[str, Any]], old: str, new: str) -> float:
    """Median time of ``old`` over median time of ``new`` (> 1: ``new`` is faster)."""
    return float(times[old]["median"] / times[new]["median"])


def best_ratio(times: dict[str, dict[str, Any]], old: str, new: str) -> float:
    """Fastest time of ``old`` over fastest time of ``new``: on a loaded machine the fastest call
    is the one least slowed by other jobs, so this ratio moves less between runs than the medians'."""
    return float(min(times[old]["all_ms"]) / min(times[new]["all_ms"]))


def calibrated_backbone(name: str, classes: int, seed: int = 0, size: tuple[int, int] = (128, 64),
                        images: torch.Tensor | None = None) -> nn.Module:
    """A random backbone whose BN statistics are estimated on ``images`` (default: two random
    normal images of ``size`` (w, h)), in eval mode.

    With PyTorch's fresh statistics (mean 0, variance 1) folding would barely change a weight;
    calibrated statistics make the folded network differ from the plain one as a trained one does.
    """
    from bench.models.backbones import create_backbone

    torch.manual_seed(seed)
    model = create_backbone(name, classes)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        model(torch.randn(2, 3, size[1], size[0], generator=gen) if images is None else images)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


