"""``python -m bench.perf`` (``make perf``): same-run speed comparisons, medians over repeats.

Every comparison alternates its variants in one process (variant A, variant B, A, B, ...), after
one untimed warm-up call of each (oneDNN builds its kernels on the first call), and reports the
median of ``--repeats`` timed calls of each, timed by ``bench.measure.timed``. Ratios are
medians of the old variant over medians of the new one. Sections:

- ``guided_filter``: our per-channel guided filter (``baselines._gf_ops.guided_filter``, the CPU
  kernel and the convolution path it replaced) against the DGF authors' ``guided-filter-pytorch``
  ``GuidedFilter(r, 1e-2)`` on C channels at W x H (default 19 at 1024x512, r = 4; guide and
  signal uniform in [0, 1]), with the largest |difference| to the reference package and, on two
  channels, to a float64 evaluation; also the grey-guide GF method's OpenCV filter for scale.
- ``dgf``: DGF's whole filtering step at that size (guide head, upsampling, filter, argmax),
  the CPU kernel against the convolution path, with the label pixels that differ.
- ``backbone``: one forward of the backbone (default HRNet-W18-Small-v2-OCR, 19 classes, BN
  statistics calibrated on random images so that folding changes the weights) at the input
  size: the plain forward against the inference copy with BN folded, channels-last, and both;
  the floating-point operations of one forward (conv + linear layers counted by hooks, and
  everything ``torch.utils.flop_counter`` counts), and the achieved rate as a fraction of
  ``peak``; the label pixels each variant changes.
- ``peak``: the best fp32 matrix-multiply rate (n x n, default 2048) on the same threads.
- ``magnet``: MagNet and MagNet-Fast ``refine()`` plus the coarse pass on one random image
  (default 512x256, random refiners), the plain backbone forward against the inference copy,
  with the label pixels that differ and the peak resident memory of each variant in a fresh
  subprocess (``--no-memory`` skips those).

Weights are random (calibrated as above): the times hold for trained weights of the same
architecture, the label differences are an indication only. The machine is often shared: the
load average before and after is recorded. The results go to ``--out`` (default
``results/perf/perf.json``) with the machine fingerprint; ``make readme`` renders the README's
``perf`` block from it (:func:`render`). The process re-executes itself once with the tuned
allocator the harness gives its measured units (``bench.measure.child_env``).

This is a tool, not part of the harness: it imports the methods' modules lazily, inside the
functions that time them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.config import REPO_DIR, parse_size
from bench.measure import allocator_in_use, child_env, kernel_set, machine_fingerprint, provenance, summarize, timed

CPU = torch.device("cpu")
DEFAULT_OUT = REPO_DIR / "results" / "perf" / "perf.json"


# ---------------------------------------------------------------- FLOPs and peak
def count_flops(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Floating-point operations of ``model(x)`` (a multiply-add counts 2).

    Returns:
        ``conv_linear``: Conv2d and Linear layers by forward hooks (2 * output elements *
        in_channels / groups * kernel area, plus one add per output for a bias);
        ``flop_counter``: everything ``torch.utils.flop_counter.FlopCounterMode`` counts
        (convolutions, matrix products, attention; no bias adds, no elementwise work).
    """
    from torch.utils.flop_counter import FlopCounterMode

    total = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_out = 2 * (module.in_channels // module.groups) * kh * kw
        else:
            per_out = 2 * module.in_features
        total[0] += out.numel() * (per_out + (module.bias is not None))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    copy_on = getattr(model, "inference_copy", None)
    if copy_on is not None:
        model.inference_copy = False  # count the model's own layers, not its folded copy's
    try:
        with torch.inference_mode():
            model(x)
            with FlopCounterMode(display=False) as counter:
                model(x)
    finally:
        for h in handles:
            h.remove()
        if copy_on is not None:
            model.inference_copy = copy_on
    return {"conv_linear": total[0] // 2, "flop_counter": int(counter.get_total_flops())}


def matmul_peak(n: int, repeats: int) -> dict[str, float]:
    """fp32 ``n x n @ n x n`` rate in GFLOP/s on the current threads: best and median of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    rates = [2 * n**3 / (timed(lambda: a @ b, CPU)[1] * 1e-3) / 1e9 for _ in range(repeats)]
    return {"n": n, "best_gflops": max(rates), "median_gflops": float(np.median(rates)), "repeats": repeats}


# ---------------------------------------------------------------- alternation
def alternate(variants: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, dict[str, float]], dict]:
    """Warm each variant once, then ``repeats`` rounds of every variant in turn.

    Returns:
        ``(times, last)``: per variant the summary of its times in ms (``bench.measure.summarize``
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


def _ratio(times: dict[str, dict[str, float]], old: str, new: str) -> float:
    return times[old]["median"] / times[new]["median"]


# ---------------------------------------------------------------- guided filter
def guided_filter_section(channels: int, size: tuple[int, int], r: int, repeats: int) -> dict[str, Any]:
    """Ours (CPU kernel and the convolution path) against ``guided-filter-pytorch`` (see module doc)."""
    from guided_filter_pytorch.guided_filter import GuidedFilter

    import baselines._gf_ops as gf
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
            "speedup_vs_reference": _ratio(times, "reference", "ours"),
            "speedup_vs_conv_path": _ratio(times, "ours_conv_path", "ours")}


def dgf_section(classes: int, size: tuple[int, int], coarse: tuple[int, int], repeats: int) -> dict[str, Any]:
    """DGF's whole filtering step (guide head, upsampling, filter, argmax) on one random image,
    with the CPU kernel against the convolution path it replaced (random guide head)."""
    import baselines._gf_ops as gf
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
            "speedup": _ratio(times, "conv_path", "cpu_kernel"),
            "label_pixels_changed": int((last["conv_path"] != last["cpu_kernel"]).sum()),
            "pixels": int(last["conv_path"].numel())}


# ---------------------------------------------------------------- backbone
def calibrated_backbone(name: str, classes: int, seed: int = 0, size: tuple[int, int] = (128, 64),
                        images: torch.Tensor | None = None) -> nn.Module:
    """A random backbone whose BN statistics are estimated on ``images`` (default: two random
    normal images of ``size`` (w, h)), in eval mode.

    With PyTorch's fresh statistics (mean 0, variance 1) folding would barely change a weight;
    calibrated statistics make the folded network differ from the plain one as a trained one does.
    """
    from bench.backbones import create_backbone

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


BACKBONE_VARIANTS = {"fold+channels_last": (True, True), "fold": (True, False), "channels_last": (False, True)}


def backbone_variants(model: nn.Module) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """``plain`` (the forward as before) and the inference copies of :data:`BACKBONE_VARIANTS`."""
    from bench.backbones.fold import InferenceCopy

    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    def plain(x: torch.Tensor) -> torch.Tensor:
        model.inference_copy = False
        return model(x)

    out["plain"] = plain
    for name, (fold, last) in BACKBONE_VARIANTS.items():
        cache = InferenceCopy(fold=fold, channels_last=last)
        out[name] = lambda x, cache=cache: cache.get(model, x)(x)
    return out


def backbone_section(name: str, classes: int, size: tuple[int, int], batch: int, repeats: int,
                     peak_gflops: float) -> dict[str, Any]:
    """Plain forward against the inference copies, FLOPs and fraction of peak (see module doc)."""
    w, h = size
    model = calibrated_backbone(name, classes)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(1))
    flops = count_flops(model, x[:1])
    with torch.inference_mode():
        fns = backbone_variants(model)
        times, last = alternate({k: (lambda f=f: f(x)) for k, f in fns.items()}, repeats)
    labels = last["plain"].argmax(1)
    out: dict[str, Any] = {"backbone": name, "classes": classes, "size": f"{w}x{h}", "batch": batch,
                           "flops_per_image": flops, "times_ms": times, "variants": {}}
    for k in fns:
        per_image_s = times[k]["median"] * 1e-3 / batch
        gflops = flops["flop_counter"] / per_image_s / 1e9
        out["variants"][k] = {
            "speedup_vs_plain": _ratio(times, "plain", k), "gflops": gflops,
            "fraction_of_peak": gflops / peak_gflops if peak_gflops else None,
            "max_abs_logit_diff": float((last[k] - last["plain"]).abs().max()),
            "label_pixels_changed": int((last[k].argmax(1) != labels).sum()), "pixels": int(labels.numel())}
    return out


# ---------------------------------------------------------------- MagNet image call
def _magnet_method(fast: bool, backbone: nn.Module, classes: int, input_size: tuple[int, int],
                   image_size: tuple[int, int], batch: int):
    from bench.interface import DatasetInfo, MethodContext
    from magnet.config import MagNetConfig, MagNetFastConfig, resolve_plan
    from magnet.method import MagNet, MagNetFast
    from magnet.refinement import RefinementModule

    cls, cfg_cls = (MagNetFast, MagNetFastConfig) if fast else (MagNet, MagNetConfig)
    cfg = cfg_cls(batch_size=batch)
    info = DatasetInfo("random", tuple(f"c{i}" for i in range(classes)), None, ((0, 0, 0),) * classes)
    ctx = MethodContext(classes, input_size, CPU, backbone, Path("."), info, image_size)
    plan = resolve_plan(cfg, input_size, image_size)
    torch.manual_seed(0)
    return cls(cfg, ctx, refiners=[RefinementModule(classes).eval() for _ in range(plan.n_refiners)])


def _image_call(method, backbone: nn.Module, image: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    from bench.coarse import compute_coarse

    return method.refine(image, compute_coarse(backbone, image, input_size, CPU))


def magnet_section(args: argparse.Namespace) -> dict[str, Any]:
    """MagNet and MagNet-Fast image calls, plain backbone forward against the inference copy."""
    input_size, image_size = parse_size(args.input), parse_size(args.image)
    backbone = calibrated_backbone(args.backbone, args.classes)
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    out: dict[str, Any] = {"backbone": args.backbone, "image": args.image, "input": args.input,
                           "batch": args.magnet_batch, "methods": {}}
    for fast in (False, True):
        method = _magnet_method(fast, backbone, args.classes, input_size, image_size, args.magnet_batch)

        def call(copy_on: bool, method=method) -> torch.Tensor:
            backbone.inference_copy = copy_on
            return _image_call(method, backbone, image, input_size)

        with torch.inference_mode():
            times, last = alternate({"plain": lambda: call(False), "inference_copy": lambda: call(True)},
                                    args.magnet_repeats)
        name = "magnet_fast" if fast else "magnet"
        entry = {"times_ms": times, "speedup": _ratio(times, "plain", "inference_copy"),
                 "label_pixels_changed": int((last["plain"] != last["inference_copy"]).sum()),
                 "pixels": int(last["plain"].numel())}
        if args.memory:
            entry["peak_rss_mib"] = {v: _memory_child(args, name, v == "inference_copy")
                                     for v in ("plain", "inference_copy")}
        out["methods"][name] = entry
    return out


def _memory_child(args: argparse.Namespace, method: str, copy_on: bool) -> float:
    """Peak resident memory (MiB, ``ru_maxrss``) of one warm-up and one image call in a fresh process."""
    cmd = [sys.executable, "-m", "bench.perf", "--memory-child", f"{method}:{int(copy_on)}", "--image", args.image,
           "--input", args.input, "--backbone", args.backbone, "--classes", str(args.classes),
           "--magnet-batch", str(args.magnet_batch), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env("tuned"), cwd=REPO_DIR)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {method} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _run_memory_child(args: argparse.Namespace) -> None:
    method, copy_on = args.memory_child.split(":")
    input_size, image_size = parse_size(args.input), parse_size(args.image)
    backbone = calibrated_backbone(args.backbone, args.classes)
    backbone.inference_copy = copy_on == "1"
    image = np.random.default_rng(0).integers(0, 256, (image_size[1], image_size[0], 3), dtype=np.uint8)
    m = _magnet_method(method == "magnet_fast", backbone, args.classes, input_size, image_size, args.magnet_batch)
    with torch.inference_mode():
        for _ in range(2):
            _image_call(m, backbone, image, input_size)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# ---------------------------------------------------------------- report
def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every section of the module doc on ``args.threads`` threads; the dict :func:`render` shows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run_sections(args)
    finally:
        torch.set_num_threads(threads)


def _run_sections(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"command": "python -m bench.perf " + " ".join(args.argv), "load_before": _load(),
                               "fingerprint": machine_fingerprint(CPU), "provenance": provenance(CPU, 0),
                               "kernel_set": kernel_set(), "repeats": args.repeats}
    results["peak"] = matmul_peak(args.matmul_n, max(args.repeats, 5))
    peak = results["peak"]["best_gflops"]
    if "gf" in args.sections:
        results["guided_filter"] = guided_filter_section(args.gf_channels, parse_size(args.gf_size), args.gf_radius,
                                                         args.repeats)
    if "dgf" in args.sections:
        results["dgf"] = dgf_section(args.gf_channels, parse_size(args.gf_size), parse_size(args.dgf_coarse),
                                     args.repeats)
    if "backbone" in args.sections:
        results["backbone"] = backbone_section(args.backbone, args.classes, parse_size(args.input),
                                               args.backbone_batch, args.repeats, peak)
    if "magnet" in args.sections:
        results["magnet"] = magnet_section(args)
    # the peak again at the end (a shared machine's load changes): the best of both is the peak
    again = matmul_peak(args.matmul_n, max(args.repeats, 5))
    results["peak"] = {**max(results["peak"], again, key=lambda r: r["best_gflops"]),
                       "best_gflops_start": results["peak"]["best_gflops"], "best_gflops_end": again["best_gflops"]}
    for v in results.get("backbone", {}).get("variants", {}).values():
        v["fraction_of_peak"] = v["gflops"] / results["peak"]["best_gflops"]
    results["load_after"] = _load()
    return results


def render(results: dict[str, Any]) -> str:
    """The README's ``perf`` block: Markdown tables of the same-run ratios."""
    prov = results.get("provenance", {})
    peak = results["peak"]
    lines = [f"Rendered from `{results.get('out', 'results/perf/perf.json')}` (`{results['command']}`): "
             f"{prov.get('cpu', '?')}, {prov.get('threads', '?')} threads, torch {prov.get('versions', {}).get('torch')}, "
             f"git {str(prov.get('git_sha'))[:10]}, fingerprint {results['fingerprint']}; load average "
             f"{results.get('load_before')} before and {results.get('load_after')} after (a shared machine: "
             f"times are noisy, ratios come from variants alternated in one process, medians of "
             f"{results['repeats']}). fp32 matmul peak ({peak['n']}x{peak['n']}): {peak['best_gflops']:.1f} GFLOP/s "
             f"(best at the start {peak.get('best_gflops_start', float('nan')):.1f}, at the end "
             f"{peak.get('best_gflops_end', float('nan')):.1f}).", ""]
    gf = results.get("guided_filter")
    if gf:
        t = gf["times_ms"]
        lines += [f"Guided filter, {gf['channels']} channels at {gf['size']}, r = {gf['radius']}, eps = {gf['eps']} "
                  f"(median ms): ours {t['ours']['median']:.0f}, `guided-filter-pytorch` {t['reference']['median']:.0f} "
                  f"(**{gf['speedup_vs_reference']:.1f}x**), our previous convolution path "
                  f"{t['ours_conv_path']['median']:.0f} ({gf['speedup_vs_conv_path']:.1f}x); grey-guide OpenCV filter "
                  f"{t['grey_guide_cv2']['median']:.0f}. Max |ours - reference| = {gf['max_abs_diff_vs_reference']:.1e}; "
                  f"against float64: ours {gf['max_abs_err_float64']['ours']:.1e}, reference "
                  f"{gf['max_abs_err_float64']['reference']:.1e}.", ""]
    dgf = results.get("dgf")
    if dgf:
        t = dgf["times_ms"]
        lines += [f"DGF's filtering step on a {dgf['size']} image ({dgf['classes']} classes, coarse {dgf['coarse']}, "
                  f"random guide head), median ms: {t['conv_path']['median']:.0f} with the convolution path, "
                  f"{t['cpu_kernel']['median']:.0f} with the CPU kernel ({dgf['speedup']:.1f}x); label pixels "
                  f"changed: {dgf['label_pixels_changed']} of {dgf['pixels']}.", ""]
    bb = results.get("backbone")
    if bb:
        f = bb["flops_per_image"]
        lines += [f"Backbone `{bb['backbone']}` forward at {bb['size']}, batch {bb['batch']}: "
                  f"{f['flop_counter'] / 1e9:.1f} GFLOP per image (`torch.utils.flop_counter`; conv + linear layers "
                  f"{f['conv_linear'] / 1e9:.1f}).", "",
                  "| Variant | median s per forward | speed-up | GFLOP/s | of fp32 peak | label pixels changed |",
                  "|---|---:|---:|---:|---:|---:|"]
        for k, v in bb["variants"].items():
            lines.append(f"| {k} | {bb['times_ms'][k]['median'] / 1e3:.2f} | {v['speedup_vs_plain']:.2f}x | "
                         f"{v['gflops']:.1f} | {100 * v['fraction_of_peak']:.0f} % | "
                         f"{v['label_pixels_changed']} of {v['pixels']} |")
        lines.append("")
    mg = results.get("magnet")
    if mg:
        lines += [f"MagNet image call (coarse pass + refine) on a {mg['image']} image, input {mg['input']}, "
                  f"batch {mg['batch']}, random calibrated weights:", "",
                  "| Method | plain backbone s | inference copy s | speed-up | label pixels changed | "
                  "peak RSS MiB plain / copy |", "|---|---:|---:|---:|---:|---:|"]
        for k, v in mg["methods"].items():
            rss = v.get("peak_rss_mib")
            rss_text = f"{rss['plain']:.0f} / {rss['inference_copy']:.0f}" if rss else "not measured"
            lines.append(f"| {k} | {v['times_ms']['plain']['median'] / 1e3:.2f} | "
                         f"{v['times_ms']['inference_copy']['median'] / 1e3:.2f} | {v['speedup']:.2f}x | "
                         f"{v['label_pixels_changed']} of {v['pixels']} | {rss_text} |")
    return "\n".join(lines).rstrip() + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default="gf,dgf,backbone,magnet", help="comma list of gf, dgf, backbone, magnet")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gf-channels", type=int, default=19)
    p.add_argument("--gf-size", default="1024x512")
    p.add_argument("--gf-radius", type=int, default=4)
    p.add_argument("--dgf-coarse", default="128x64", help="DGF section: coarse map size WxH")
    p.add_argument("--backbone", default="hrnet18_small_v2_ocr")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--input", default="256x128", help="backbone input size WxH")
    p.add_argument("--backbone-batch", type=int, default=2)
    p.add_argument("--image", default="512x256", help="MagNet image size WxH")
    p.add_argument("--magnet-batch", type=int, default=2)
    p.add_argument("--magnet-repeats", type=int, default=3)
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--no-reexec", action="store_true", help="run with the shell's allocator settings")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv, args.sections = argv, set(args.sections.split(","))
    torch.set_num_threads(args.threads)
    if args.memory_child:
        _run_memory_child(args)
        return 0
    if not args.no_reexec and not allocator_in_use()["tuned"]:
        # the harness's measured units run under the tuned allocator; so do these comparisons
        return subprocess.run([sys.executable, "-m", "bench.perf", *argv], env=child_env("tuned"), cwd=REPO_DIR).returncode
    results = run(args)
    out = Path(args.out)
    results["out"] = str(out.relative_to(REPO_DIR)) if out.resolve().is_relative_to(REPO_DIR) else str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(render(results))
    print(f"[perf] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
