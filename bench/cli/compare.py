"""``bench compare RUN_A RUN_B``: two run folders unit by unit (``bench.report.compare``); ``--fail-on`` gates CI."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    """Print the comparison; 1 when ``--fail-on`` finds a regression, 2 for a bad folder or kind."""
    from bench.report import compare, compare_format

    kinds = compare.parse_kinds(args.fail_on)
    result = compare.compare(compare.load_run(args.run_a), compare.load_run(args.run_b),
                             n_resamples=args.resamples, seed=args.seed, time_factor=args.time_factor,
                             memory_factor=args.memory_factor)
    print((compare_format.to_json if args.json else compare_format.to_markdown)(result, kinds), end="")
    found = compare.regressions(result, kinds) if kinds else []
    for line in found:
        print(f"[bench] compare: regression: {line}", file=sys.stderr)
    return 1 if found else 0


def _factor(text: str) -> float:
    value = float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a factor is >= 1, got {text}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two run folders unit by unit (accuracy with a paired bootstrap, "
                                       "time and memory ratios with a noise rule)")
    p.add_argument("run_a", help="the baseline run folder (out_dir of a bench run)")
    p.add_argument("run_b", help="the run folder compared with it")
    p.add_argument("--fail-on", default=None, metavar="KINDS",
                   help="comma-separated accuracy,time,memory: exit 1 on a significant regression of these kinds")
    p.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    p.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--time-factor", type=_factor, default=1.10, help="time ratios inside [1/f, f] are noise (1.10)")
    p.add_argument("--memory-factor", type=_factor, default=1.05,
                   help="memory ratios inside [1/f, f] are noise (1.05)")
    p.set_defaults(fn=run)
