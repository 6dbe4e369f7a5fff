"""The sections of ``python -m perf``: guided filters, DGF's filtering step, the backbone forward.

Every section alternates its variants in one process (A, B, A, B, ...) after one untimed
warm-up call of each and reports medians (``perf.core.alternate``); see ``perf`` for the list.
The methods' modules are imported inside the functions that time them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.runtime.measure import summarize, timed
from perf.core import CPU, alternate, best_ratio, calibrated_backbone, count_flops, matmul_rate, ratio


# ---------------------------------------------------------------- guided filter
def guided_filter_section(channels: int, size: tuple[int, int], r: int, repeats: int) -> dict[str, Any]:
    """Ours (CPU kernel and the convolution path) against ``guided-filter-pytorch`` (see module doc)."""
    from guided_filter_pytorch.guided_filter import GuidedFilter

    import baselines.common.gf_ops as gf
    from baselines.guided_filter import filter_probs

    w, h = size
    gen = torch.Generator().manual_seed(0)
    guide, src = torch.rand(1, channels, h, w, generator=gen), torch.rand(1, channels, h, w, generator=gen)
    reference = GuidedFilter(r, 1e-2)

    def conv_path() -> torch.Tensor:
        gf.USE_CPU_KERNEL = False
        try:
            return gf.guided_filter(guide, src, r, 1e-2)
        finally:
            gf.USE_CPU_KERNEL = True

    grey, probs = guide[0, 0].numpy(), src[0].numpy()
    variants = {"reference": lambda: reference(guide, src), "ours": lambda: gf.guided_filter(guide, src, r, 1e-2),
                "ours_conv_path": conv_path, "grey_guide_cv2": lambda: filter_probs(grey, probs, r, 1e-2)}
    with torch.inference_mode():
        times, last = alternate(variants, repeats)
        exact = gf.guided_filter(guide[:, :2].double(), src[:, :2].double(), r, 1e-2)
    ours, ref = last["ours"], last["reference"]
    return {"channels": channels, "size": f"{w}x{h}", "radius": r, "eps": 1e-2, "times_ms": times,
            "max_abs_diff_vs_reference": float((ours - ref).abs().max()),
            "max_abs_diff_conv_path_vs_reference": float((last["ours_conv_path"] - ref).abs().max()),
            "max_abs_err_float64": {"ours": float((ours[:, :2].double() - exact).abs().max()),
                                    "reference": float((ref[:, :2].double() - exact).abs().max())},
            "speedup_vs_reference": ratio(times, "reference", "ours"),
            "speedup_vs_conv_path": ratio(times, "ours_conv_path", "ours")}


def dgf_section(classes: int, size: tuple[int, int], coarse: tuple[int, int], repeats: int) -> dict[str, Any]:
    """DGF's whole filtering step (guide head, upsampling, filter, argmax) on one random image,
    with the CPU kernel against the convolution path it replaced (random guide head)."""
    import baselines.common.gf_ops as gf
    from baselines.dgf import DGFConfig, GuideHead, dgf_logits

    w, h = size
    torch.manual_seed(0)
    head, cfg = GuideHead(classes).eval(), DGFConfig()
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    logp = torch.log_softmax(3 * torch.randn(1, classes, coarse[1], coarse[0]), 1)

    def call(kernel: bool) -> torch.Tensor:
        gf.USE_CPU_KERNEL = kernel
        try:
            return dgf_logits(head, cfg, image, logp)[0].argmax(0)
        finally:
            gf.USE_CPU_KERNEL = True

    with torch.inference_mode():
        times, last = alternate({"conv_path": lambda: call(False), "cpu_kernel": lambda: call(True)}, repeats)
    return {"size": f"{w}x{h}", "coarse": f"{coarse[0]}x{coarse[1]}", "classes": classes, "times_ms": times,
            "speedup": ratio(times, "conv_path", "cpu_kernel"),
            "label_pixels_changed": int((last["conv_path"] != last["cpu_kernel"]).sum()),
            "pixels": int(last["conv_path"].numel())}


# ---------------------------------------------------------------- backbone
BACKBONE_VARIANTS = {"fold+channels_last": (True, True), "fold": (True, False), "channels_last": (False, True)}


def backbone_variants(model: nn.Module) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """``reference`` (the forward as it was: ``reference_forward``), ``exact`` (the default
    forward, bitwise equal to it), ``only_<speed-up>`` (one bit-identical speed-up on its own) and
    the opt-in inference copies of :data:`BACKBONE_VARIANTS`."""
    from bench.models.backbones.fold import InferenceCopy
    from bench.models.backbones.hrnet_ocr import EXACT_SPEEDUPS, reference_forward

    def reference(x: torch.Tensor) -> torch.Tensor:
        setattr(model, "inference_copy", False)
        with reference_forward(model):
            return model(x)

    def exact(x: torch.Tensor) -> torch.Tensor:
        setattr(model, "inference_copy", False)
        return model(x)

    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"reference": reference, "exact": exact}
    for part in EXACT_SPEEDUPS:  # each bit-identical speed-up alone (timed only when asked for)

        def alone(x: torch.Tensor, part: str = part) -> torch.Tensor:
            setattr(model, "inference_copy", False)
            with reference_forward(model, keep=(part,)):
                return model(x)

        out[f"only_{part}"] = alone
    for name, (fold, last) in BACKBONE_VARIANTS.items():
        cache = InferenceCopy(fold=fold, channels_last=last)

        def run(x: torch.Tensor, cache: InferenceCopy = cache) -> torch.Tensor:
            fn = cache.get(model, x)
            assert fn is not None, "the inference copy needs eval mode without autograd"
            return fn(x)

        out[name] = run
    return out


def backbone_section(name: str, classes: int, size: tuple[int, int], batch: int, repeats: int,
                     matmul_n: int, only: set[str] | None = None) -> dict[str, Any]:
    """The reference forward against the exact default and the inference copies, with the FLOPs
    and the fraction of the fp32 matmul peak.

    Each round times the matmul peak (best of 3 ``matmul_n`` products) and then every variant,
    so that the peak and the forwards see the same machine load; a variant's fraction of peak
    is the median over rounds of (its rate in the round) / (the peak in the round). ``only``
    keeps those variants (``reference`` and ``exact`` always run; the ``only_*`` ones run only
    when named).
    """
    w, h = size
    model = calibrated_backbone(name, classes)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(1))
    flops = count_flops(model, x[:1])
    fns = {k: f for k, f in backbone_variants(model).items()
           if k in ("reference", "exact") or (k in only if only is not None else not k.startswith("only_"))}
    peaks: list[float] = []
    fractions: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        last = {k: f(x) for k, f in fns.items()}  # warm-up (oneDNN builds its kernels)
        matmul_rate(matmul_n, 1)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for rep in range(repeats):
            peaks.append(matmul_rate(matmul_n, 3))
            for k, f in fns.items():
                last[k], ms = timed(partial(f, x), CPU)
                times[k].append(ms)
                fractions[k].append(flops["flop_counter"] * batch / (float(ms) * 1e-3) / 1e9 / peaks[-1])
                print(f"[perf] backbone round {rep + 1}/{repeats} {k}: {ms:.0f} ms (peak {peaks[-1]:.1f} GFLOP/s)",
                      flush=True)
    summary: dict[str, dict[str, Any]] = {k: {**summarize(v), "all_ms": v} for k, v in times.items()}
    labels = last["reference"].argmax(1)
    out: dict[str, Any] = {"backbone": name, "classes": classes, "size": f"{w}x{h}", "batch": batch,
                           "flops_per_image": flops, "times_ms": summary, "peak_gflops_per_round": peaks,
                           "variants": {}}
    for k in fns:
        per_image_s = float(summary[k]["median"]) * 1e-3 / batch
        out["variants"][k] = {
            "speedup_vs_reference": ratio(summary, "reference", k),
            "best_speedup_vs_reference": best_ratio(summary, "reference", k),
            "gflops": flops["flop_counter"] / per_image_s / 1e9,
            "fraction_of_peak": float(np.median(fractions[k])),
            "bitwise_equal": bool(torch.equal(last[k], last["reference"])),
            "max_abs_logit_diff": float((last[k] - last["reference"]).abs().max()),
            "label_pixels_changed": int((last[k].argmax(1) != labels).sum()), "pixels": int(labels.numel())}
    return out
