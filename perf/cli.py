"""Command line of ``python -m perf`` (``make perf``): run the sections, write ``results/perf/perf.json``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench.core.config import REPO_DIR, parse_size
from bench.runtime.measure import allocator_in_use, child_env, kernel_set, load_average, machine_fingerprint, provenance
from bench.report.perf_render import render
from perf.core import CPU, matmul_peak

DEFAULT_OUT = REPO_DIR / "results" / "perf" / "perf.json"
SECTIONS = ("gf", "dgf", "backbone", "magnet")
_KEYS = {"gf": "guided_filter", "dgf": "dgf", "backbone": "backbone", "magnet": "magnet"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every section in ``args.sections`` on ``args.threads`` threads; the dict ``render`` shows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run_sections(args)
    finally:
        torch.set_num_threads(threads)


def _run_sections(args: argparse.Namespace) -> dict[str, Any]:
    from perf.magnet_section import magnet_section
    from perf.sections import backbone_section, dgf_section, guided_filter_section

    results: dict[str, Any] = {"command": "python -m perf " + " ".join(args.argv), "load_before": load_average(),
                               "fingerprint": machine_fingerprint(CPU), "provenance": provenance(CPU, 0),
                               "kernel_set": kernel_set(), "repeats": args.repeats}
    results["peak"] = matmul_peak(args.matmul_n, max(args.repeats, 5))
    if "gf" in args.sections:
        results["guided_filter"] = guided_filter_section(args.gf_channels, parse_size(args.gf_size), args.gf_radius,
                                                         args.repeats)
    if "dgf" in args.sections:
        results["dgf"] = dgf_section(args.gf_channels, parse_size(args.gf_size), parse_size(args.dgf_coarse),
                                     args.repeats)
    if "backbone" in args.sections:
        results["backbone"] = backbone_section(args.backbone, args.classes, parse_size(args.input),
                                               args.backbone_batch, args.repeats, args.matmul_n,
                                               set(args.backbone_variants.split(",")) if args.backbone_variants else None)
    if "magnet" in args.sections:
        results["magnet"] = magnet_section(args)
    results["peak"]["best_gflops_end"] = matmul_peak(args.matmul_n, max(args.repeats, 5))["best_gflops"]
    results["load_after"] = load_average()
    return results


def carry_over(results: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Sections not rerun are kept from ``previous`` (an earlier perf.json), marked with its command and git sha."""
    for key in _KEYS.values():
        if key not in results and key in previous:
            results[key] = {**previous[key], "carried_over_from": previous[key].get("carried_over_from") or {
                "command": previous.get("command"), "git_sha": previous.get("provenance", {}).get("git_sha")}}
    return results


def parser() -> argparse.ArgumentParser:
    """The options of ``python -m perf``."""
    p = argparse.ArgumentParser(prog="python -m perf", description="Same-run speed comparisons, medians over repeats.")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of gf, dgf, backbone, magnet")
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
    p.add_argument("--backbone-variants", default="",
                   help="comma list of the variants to time besides reference and exact (default: the inference "
                        "copies; only_packed_weights, only_inplace_relu, only_direct_concat time one speed-up alone)")
    p.add_argument("--image", default="512x256", help="MagNet image size WxH")
    p.add_argument("--magnet-batch", type=int, default=2)
    p.add_argument("--magnet-repeats", type=int, default=3)
    p.add_argument("--magnet-copy", action="store_true", help="also time the opt-in inference copy in MagNet")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    p.add_argument("--no-carry", dest="carry", action="store_false",
                   help="do not keep the sections not rerun from the existing output file")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--no-reexec", action="store_true", help="run with the shell's allocator settings")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run, write ``--out`` and print the rendered block; 0 on success."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv, args.sections = argv, set(args.sections.split(","))
    unknown = args.sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}; expected some of {SECTIONS}")
    torch.set_num_threads(args.threads)
    if args.memory_child:
        from perf.magnet_section import run_memory_child

        run_memory_child(args)
        return 0
    if not args.no_reexec and not allocator_in_use()["tuned"]:
        # the harness's measured units run under the tuned allocator; so do these comparisons
        return subprocess.run([sys.executable, "-m", "perf", *argv], env=child_env("tuned"), cwd=REPO_DIR).returncode
    results = run(args)
    out = Path(args.out)
    if args.carry and out.is_file():
        results = carry_over(results, json.loads(out.read_text()))
    results["out"] = str(out.relative_to(REPO_DIR)) if out.resolve().is_relative_to(REPO_DIR) else str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(render(results))
    print(f"[perf] wrote {out}")
    return 0
