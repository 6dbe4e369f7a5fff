"""Command line: ``python -m bench {run,train,table,score,show,drift,list,smoke,unit} ...``.

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
    from bench import distributed
    from bench.runner import run_sweep, train_missing
    from bench.tables import load_results, render

    cfg = _cfg(args)
    distributed.init(cfg.device)  # under torchrun: join the ranks (each sweeps its shard of the images)
    status = train_missing(cfg)
    if status.get("backbone") == "missing" and distributed.is_main():
        print(f"[bench] backbone weights missing at {cfg.backbone_path}; units needing them are recorded as such",
              file=sys.stderr)
    results = distributed.gather_results(run_sweep(cfg))  # waits for every rank
    if results is None:  # not rank 0: rank 0 renders the tables from every rank's records
        return 0
    aggregates = load_results(cfg)  # read once, for the tables and the plots
    paths = render(cfg, aggregates)
    failed = {k: v for k, v in results.items() if v not in ("ok", "done")}
    print(f"[bench] {len(results) - len(failed)}/{len(results)} units ok; records in {cfg.out_path}")
    print(f"[bench] tables: {paths[0]} (and .md/.tex per table in {cfg.tables_path})")
    return _figures(cfg, aggregates)


def _figures(cfg, aggregates=None) -> int:  # noqa: ANN001
    """Plots and panels after the tables; a failure is reported (traceback) and exits 1."""
    import traceback

    from bench.figures import render_figures

    try:
        figures = render_figures(cfg, aggregates)
    except Exception:  # noqa: BLE001 - records and tables are written; say clearly that figures are not
        print(f"[bench] FIGURES FAILED (records and tables are fine):\n{traceback.format_exc()}", file=sys.stderr)
        return 1
    for note in figures.notes:
        print(f"[bench] figures: {note}", file=sys.stderr)
    print(f"[bench] figures: {len(figures.files)} PNG(s) in {cfg.tables_path}/plots and {cfg.tables_path}/panels")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bench.runner import train_missing

    overrides = {"train": True, **parse_overrides(args.overrides)}  # the training command trains
    status = train_missing(load(args.dataset, overrides, args.config))
    return 1 if any(s == "missing" or s.startswith(("untrainable", "stale")) for s in status.values()) else 0


def cmd_table(args: argparse.Namespace) -> int:
    from bench.tables import render

    paths = render(_cfg(args))
    print(paths[0].read_text())
    return 0


def _csv_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None or empty -> None."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


def cmd_score(args: argparse.Namespace) -> int:
    from bench.score import run_score

    overrides = parse_overrides(args.overrides)
    if args.absent:
        overrides["absent"] = args.absent
    cfg = load(args.dataset, overrides, args.config)
    try:
        text, results = run_score(cfg, _csv_list(args.methods), _csv_list(args.images), args.format)
    except ValueError as err:
        print(f"[bench] score: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    if not any(r.status == "ok" for r in results):
        print(f"[bench] score: no image records for these units in {cfg.out_path}", file=sys.stderr)
        return 1
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from bench.config import parse_size
    from bench.panels import MissingPredictions, parse_crop, render_panels
    from bench.plots import render_plots

    cfg = _cfg(args)
    try:
        panels = render_panels(cfg, _csv_list(args.images), _csv_list(args.methods),
                               parse_size(args.size) if args.size else None,
                               parse_crop(args.crop) if args.crop else None, n_crops=args.crops)
    except (MissingPredictions, KeyError, ValueError) as err:
        print(f"[bench] show: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    files, notes = render_plots(cfg)
    for note in notes:
        print(f"[bench] show: {note}", file=sys.stderr)
    for path in panels.files + files:
        print(path)
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
    return 0 if status in ("ok", "done", "unavailable", "missing_checkpoint", "stale_checkpoint", "reference_mismatch",
                                                 "oom") else 1


def cmd_reference(args: argparse.Namespace) -> int:
    from bench.reference_cli import main as reference_main

    return reference_main(args)


def cmd_seeds(args: argparse.Namespace) -> int:
    from bench.seeds import main as seeds_main

    return seeds_main(args)


def cmd_train_check(args: argparse.Namespace) -> int:
    from bench.seeds import train_check

    return train_check(args)


def cmd_readme(args: argparse.Namespace) -> int:
    from bench.readme import main as readme_main

    return readme_main(args)


def cmd_smoke(args: argparse.Namespace) -> int:
    from bench.smoke import run

    return run(args)


def _dataset_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments every dataset command takes: DATASET, key=value overrides, --config."""
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
    return p


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, text in (("run", cmd_run, "train what is missing, sweep, write tables"),
                           ("train", cmd_train, "train every checkpoint the sweep needs"),
                           ("table", cmd_table, "render tables from records")):
        _dataset_args(sub.add_parser(name, help=text)).set_defaults(fn=fn)
    sc = _dataset_args(sub.add_parser("score", help="recompute mIoU, per-class IoU and mBA from the records, nothing rerun"))
    sc.add_argument("--methods", default=None, help="comma-separated method keys (default: all of the config's)")
    sc.add_argument("--images", default=None, help="comma-separated image ids (default: all recorded)")
    sc.add_argument("--absent", choices=("nan", "zero"), default=None, help="absent-class policy (default: the config's)")
    sc.add_argument("--format", choices=("md", "csv", "json"), default="md",
                    help="md: percentages; csv, json: fractions in [0, 1]")
    sc.set_defaults(fn=cmd_score)
    sh = _dataset_args(sub.add_parser("show", help="panels from saved label maps, and the plots; "
                                                   "into <tables_dir>/{panels,plots}"))
    sh.add_argument("--images", default=None, help="comma-separated image ids (default: the first save_predictions)")
    sh.add_argument("--methods", default=None, help="comma-separated method keys, in column order (default: the config's)")
    sh.add_argument("--size", default=None, help="input size WxH of the units shown (default: input_size)")
    sh.add_argument("--crop", default=None, help="x,y,w,h in full-resolution pixels (default: chosen where methods disagree)")
    sh.add_argument("--crops", type=int, default=2, help="number of automatically chosen crops per image")
    sh.set_defaults(fn=cmd_show)
    d = sub.add_parser("drift", help="rerun the small benchmark and compare with results/baselines")
    d.add_argument("dataset", nargs="?", default="synthetic")
    d.add_argument("--update", action="store_true", help="store the current values as expected")
    d.set_defaults(fn=cmd_drift)
    from bench.reference_cli import add_arguments as reference_arguments

    rf = sub.add_parser("reference", help="train the reference weights from scratch, evaluate, write the manifest")
    reference_arguments(rf)
    rf.set_defaults(fn=cmd_reference)
    se = _dataset_args(sub.add_parser("seeds", help="train and evaluate with several seeds; the spread table"))
    se.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    se.add_argument("--render-only", action="store_true", help="render results/seeds/<dataset>.json, train nothing")
    se.set_defaults(fn=cmd_seeds)
    tc = _dataset_args(sub.add_parser("train-check", help="retrain and compare with the reference manifest"))
    tc.add_argument("--staging", default=None, help="staging folder (default results/reference/<dataset>-check)")
    tc.set_defaults(fn=cmd_train_check)
    rd = _dataset_args(sub.add_parser("readme", help="render the README's result blocks from records"))
    rd.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the rendering")
    rd.add_argument("--readme", default=None, help="the file to render into (default README.md)")
    rd.set_defaults(fn=cmd_readme)
    ls = sub.add_parser("list", help="registered methods")
    ls.add_argument("pattern", nargs="?", default="*")
    ls.set_defaults(fn=cmd_list)
    from bench.smoke import add_arguments as smoke_arguments

    sm = sub.add_parser("smoke", help="every method once on the real samples of ../shared/data, at native size")
    smoke_arguments(sm)
    sm.set_defaults(fn=cmd_smoke)
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
