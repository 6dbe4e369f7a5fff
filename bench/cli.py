"""Command line: ``python -m bench {run,train,table,drift,list,unit} ...``.

Overrides are ``key=value`` (YAML scalars or ``[a, b]``): ``limit=2``, ``device=cuda``,
``methods=[downsample,magnet]``, ``magnet.n_points=0.5``, ``data.size=2048x1024``.
"""

from __future__ import annotations

import argparse
import sys

from bench.config import load, parse_overrides


def _cfg(args: argparse.Namespace):  # noqa: ANN202
    return load(args.dataset, parse_overrides(args.overrides), args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import run_sweep, train_missing
    from bench.tables import render

    cfg = _cfg(args)
    status = train_missing(cfg)
    if status.get("backbone") == "missing":
        print(f"[bench] backbone weights missing at {cfg.backbone_path}; units needing them are recorded as such",
              file=sys.stderr)
    results = run_sweep(cfg)
    paths = render(cfg)
    failed = {k: v for k, v in results.items() if v not in ("ok", "done")}
    print(f"[bench] {len(results) - len(failed)}/{len(results)} units ok; records in {cfg.out_path}")
    print(f"[bench] tables: {paths[0]} (and .md/.tex per table in {cfg.tables_path})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bench.runner import train_missing

    status = train_missing(_cfg(args))
    return 1 if any(s == "missing" or s.startswith("untrainable") for s in status.values()) else 0


def cmd_table(args: argparse.Namespace) -> int:
    from bench.tables import render

    paths = render(_cfg(args))
    print(paths[0].read_text())
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from bench.drift import run_drift

    return run_drift(args.dataset, update=args.update)


def cmd_list(args: argparse.Namespace) -> int:
    from bench.registry import MethodUnavailable, list_methods, resolve

    for name in list_methods(args.pattern):
        try:
            cls = resolve(name)
            print(f"{name:16s} {cls.display_name}")
        except MethodUnavailable as err:
            print(f"{name:16s} {err}")
    return 0


def cmd_unit(args: argparse.Namespace) -> int:
    from bench.config import parse_size
    from bench.runner import config_from_file, run_unit

    status = run_unit(config_from_file(args.config_json), args.method, parse_size(args.size))
    return 0 if status in ("ok", "done", "unavailable", "missing_checkpoint", "oom") else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, text in (("run", cmd_run, "train what is missing, sweep, write tables"),
                           ("train", cmd_train, "train every checkpoint the sweep needs"),
                           ("table", cmd_table, "render tables from records")):
        s = sub.add_parser(name, help=text)
        s.add_argument("dataset", nargs="?", default="synthetic")
        s.add_argument("overrides", nargs="*")
        s.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
        s.set_defaults(fn=fn)
    d = sub.add_parser("drift", help="rerun the small benchmark and compare with results/baselines")
    d.add_argument("dataset", nargs="?", default="synthetic")
    d.add_argument("--update", action="store_true", help="store the current values as expected")
    d.set_defaults(fn=cmd_drift)
    ls = sub.add_parser("list", help="registered methods")
    ls.add_argument("pattern", nargs="?", default="*")
    ls.set_defaults(fn=cmd_list)
    u = sub.add_parser("unit", help="(internal) one method x size in this process")
    u.add_argument("config_json")
    u.add_argument("method")
    u.add_argument("size")
    u.set_defaults(fn=cmd_unit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # `run cityscapes limit=2`: a first positional with '=' is an override, not a dataset
    if getattr(args, "dataset", None) and "=" in args.dataset:
        args.overrides.insert(0, args.dataset)
        args.dataset = "synthetic"
    return args.fn(args)
