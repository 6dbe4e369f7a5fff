"""``bench fps METHOD [DATASET]``: a method timed under its paper's published FPS protocol
(``bench.checks.fps``: ISDNet's ``tools/fps_test.py``), not the harness's per-image timing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.cli.common import dataset_args, load_config
from bench.core.config import parse_size
from bench.core.errors import UserError


def run(args: argparse.Namespace) -> int:
    """Print the caption (and the record as JSON with ``--json``); ``--out`` writes the record."""
    from bench.checks.fps import FpsProtocol, run_fps
    from bench.core.files import write_atomically

    cfg = load_config(args.dataset, args.overrides, args.config)
    try:
        size = parse_size(args.size) if args.size else None
    except ValueError as err:
        raise UserError(f"fps: --size must be WxH (e.g. 1024x512), got {args.size!r}") from err
    protocol = FpsProtocol(scale=args.scale, warmup=args.warmup, timed=args.timed, swap=not args.no_swap)
    record = run_fps(cfg, args.method, protocol, size)
    print(record["caption"])
    if args.json:
        print(json.dumps(record, indent=1, sort_keys=True))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, lambda tmp: tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n"))
        print(f"[fps] record written to {out}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fps", help="a method under its paper's published FPS protocol (random tensor, no weights)")
    p.add_argument("method")
    dataset_args(p)
    p.add_argument("--scale", type=float, default=0.8, help="the release's --scale-ratio (0.8)")
    p.add_argument("--warmup", type=int, default=100, help="untimed calls first (100)")
    p.add_argument("--timed", type=int, default=300, help="timed calls (300)")
    p.add_argument("--size", default=None, help="requested WxH (default: the dataset's data.size)")
    p.add_argument("--no-swap", action="store_true", help="time (h s, w s) instead of the release's (w s, h s)")
    p.add_argument("--json", action="store_true", help="print the record too")
    p.add_argument("--out", default=None, help="write the record (JSON) here")
    p.set_defaults(fn=run)
