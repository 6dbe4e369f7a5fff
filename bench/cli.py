"""Command line: ``python -m bench {run,train,table,score,show,check-data,drift,list,smoke,unit} ...``.

Overrides are ``key=value`` (YAML scalars or ``[a, b]``): ``limit=2``, ``device=cuda``,
``methods=[downsample,magnet]``, ``magnet.n_points=0.5``, ``data.size=2048x1024``.

Exit codes: 0 every unit complete; 1 a unit failed, is partial, lacks weights, has stale weights
(or the figures failed); 2 a user error (an unknown name or key, a bad value, a missing data
folder), printed as one line before anything runs (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.config import build, load, parse_overrides
from bench.errors import UserError, one_line



def _cfg(args: argparse.Namespace):  # noqa: ANN202
    return load_config(args.dataset, args.overrides, args.config)


def _run_cfg(args: argparse.Namespace):  # noqa: ANN202
    """The config of a command that reads a run's records (``table``, ``score``, ``show``).

    With ``out_dir=<run>`` and a ``<run>/run.json`` written by ``bench run``, the run's stored
    config is the base and the command line's overrides go on top: no override of the run needs
    repeating to find its records.
    """
    overrides = _overrides(args.overrides) if isinstance(args.overrides, list) else dict(args.overrides)
    stored = read_run_config(overrides.get("out_dir")) if "out_dir" in overrides and not args.config else None
    if stored is None:
        return load_config(args.dataset, overrides, args.config)
    if getattr(args, "dataset_given", False) and stored.get("dataset") != args.dataset:
        raise UserError(f"out_dir {overrides['out_dir']} holds a {stored.get('dataset')!r} run, not {args.dataset!r}")
    try:
        return build({**stored, **overrides})
    except KeyError as err:
        raise UserError(one_line(err.args[0] if err.args else str(err))) from err
    except (ValueError, TypeError) as err:
        raise UserError(one_line(str(err))) from err


def read_run_config(out_dir: str | None) -> dict | None:
    """The resolved config stored in ``<out_dir>/run.json`` by ``bench run``, or None without one."""
    from bench import run_folder

    data = run_folder.read(out_dir)
    return None if data is None else data["config"]


def load_config(dataset: str, overrides: list[str] | dict, config_file: str | None = None):  # noqa: ANN201
    """The config of a command; a bad key, value or file name is a :class:`UserError`."""
    try:
        values = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        cfg = load(dataset, values, config_file)
    except KeyError as err:  # KeyError's str() quotes its message
        raise UserError(one_line(err.args[0] if err.args else str(err))) from err
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise UserError(one_line(str(err))) from err
    from bench.released import resolve  # issue 12: released_weights= -> checked files, else cfg unchanged

    return resolve(cfg)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.validate import check_run

    cfg = _cfg(args)
    check_run(cfg)  # names, options, device and data folder, before any training or file write
    from bench import distributed, procs, run_folder  # after the checks: distributed imports torch (seconds)

    distributed.init(cfg.device)  # under torchrun: join the ranks (each sweeps its shard of the images)
    # rank 0 holds the out_dir lock for the run; the other ranks write only their own record files
    lock = procs.out_dir_lock(cfg.out_path) if distributed.is_main() else contextlib.nullcontext(None)
    with procs.exit_on_sigterm(), lock as lock_fd:
        if lock_fd is not None:
            procs.clean_stale_temp(cfg.out_path)
            run_folder.write(cfg)  # the config now; the sweep adds its unit keys and image ids
        return _run_locked(cfg, lock_fd)


def _run_locked(cfg, lock_fd: int | None) -> int:  # noqa: ANN001
    """Train what is missing, sweep, render; the last line counts the units by outcome."""
    from bench import distributed
    from bench.outcome import exit_code, problem_lines, summary_line
    from bench.runner import run_sweep
    from bench.results import load_results
    from bench.tables import render

    status = _train(cfg)
    if status.get("backbone") == "missing" and distributed.is_main():
        print(f"[bench] backbone weights missing at {cfg.backbone_path}; units needing them are recorded as such",
              file=sys.stderr)
    results = distributed.gather_results(run_sweep(cfg, lock_fd=lock_fd))  # waits for every rank
    if results is None:  # not rank 0: rank 0 renders the tables from every rank's records
        return 0
    aggregates = load_results(cfg)  # read once, for the tables and the plots
    paths = render(cfg, aggregates)
    print(f"[bench] records in {cfg.out_path}")
    print(f"[bench] tables: {paths[0]} (and .md/.tex per table in {cfg.tables_path})")
    figures = _figures(cfg, aggregates)
    for line in problem_lines(aggregates):
        print(f"[bench] {line}", file=sys.stderr)
    print(f"[bench] {summary_line(aggregates)}")
    return max(figures, exit_code(aggregates))


def _train(cfg) -> dict[str, str]:  # noqa: ANN001
    """``train_missing``; a missing or malformed training split is the user's to fix."""
    from bench.datasets.base import DataFormatError
    from bench.runner import train_missing

    try:
        return train_missing(cfg)
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(f"training data ({cfg.train_split} split): {one_line(str(err))}") from err


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
    from bench.validate import check_run

    overrides = {"train": True, **_overrides(args.overrides)}  # the training command trains
    cfg = load_config(args.dataset, overrides, args.config)
    check_run(cfg, data=False)  # the training split is opened only if something is trained
    status = _train(cfg)
    return 1 if any(s == "missing" or s.startswith(("untrainable", "stale")) for s in status.values()) else 0


@contextlib.contextmanager
def _dataset_read(what: str) -> Iterator[None]:
    """A data folder the command needs (the folder dataset's ``classes.yaml``) missing or malformed: exit 2, one line."""
    from bench.datasets.base import DataFormatError

    try:
        yield
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(f"{what}: {one_line(str(err))}") from err


def cmd_table(args: argparse.Namespace) -> int:
    from bench.tables import render

    cfg = _run_cfg(args)
    with _dataset_read(f"tables of {cfg.dataset} need its class names"):
        paths = render(cfg)
    print(paths[0].read_text())
    return 0


def _csv_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None or empty -> None."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


def _overrides(args: list[str]) -> dict:
    try:
        return parse_overrides(args)
    except ValueError as err:
        raise UserError(str(err)) from err


def cmd_score(args: argparse.Namespace) -> int:
    from bench.score import run_score

    overrides = _overrides(args.overrides)
    if args.absent:
        overrides["absent"] = args.absent
    args.overrides = overrides
    cfg = _run_cfg(args)
    try:
        with _dataset_read(f"scores of {cfg.dataset} need its class names"):
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

    cfg = _run_cfg(args)
    try:
        with _dataset_read(f"panels of {cfg.dataset} need its images and class names"):
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

    return run_drift(args.dataset, update=args.update, values=args.values, measure=args.measure)


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
    if args.status_file:  # the sweep reads the unit's status here (the exit code only says it ran to the end)
        Path(args.status_file).write_text(status + "\n")
    from bench.status import HANDLED

    return 0 if status in HANDLED else 1


def cmd_check_data(args: argparse.Namespace) -> int:
    """Check a data folder: its layout, or with ``--full`` every image and label decoded.

    Exits 0 when every file is fine, 1 naming every bad file, 2 for a missing folder or layout.
    """
    from bench.validate import check_data, check_dataset, scan_split

    cfg = _cfg(args)
    check_dataset(cfg)
    status = 0
    for split in _csv_list(args.splits) or [cfg.split]:
        dataset = check_data(cfg, split)  # the layout: a UserError (exit 2) names what is missing
        if not args.full:
            n = len(dataset.ids()) if cfg.limit is None else min(cfg.limit, len(dataset.ids()))
            print(f"[check-data] {cfg.dataset} {split}: {n} image(s), layout ok (--full decodes every file)")
            continue
        n, bad = scan_split(dataset, cfg.limit)
        for image_id, reason in bad:
            print(f"[check-data] {split} {image_id}: {reason}")
        print(f"[check-data] {cfg.dataset} {split}: {n} image(s) decoded, {len(bad)} bad")
        status = max(status, 1 if bad else 0)
    return status


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


def cmd_check(args: argparse.Namespace) -> int:
    """The method contract on one registered method (``bench.contract``)."""
    from bench.contract import main as contract_main
    from bench.registry import MethodUnavailable

    try:
        return contract_main(args.method, _overrides(args.options), device=args.device)
    except (KeyError, MethodUnavailable) as err:
        raise UserError(one_line(err.args[0] if err.args else str(err))) from err


def cmd_new_method(args: argparse.Namespace) -> int:
    """Write the skeleton of a new method (``bench.new_method``)."""
    from bench.new_method import main as new_method_main

    return new_method_main(args.name, args.root, force=args.force)


def _dataset_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments every dataset command takes: DATASET, key=value overrides, --config."""
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
    return p


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; given the ``command`` about to run, the others' heavy modules stay unimported.

    ``bench.reference_cli`` imports torch, which takes seconds: a ``run`` with a typo must fail faster.
    """
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of a user error (anywhere on the line)")
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
    ck = _dataset_args(sub.add_parser("check-data", help="check the data folder before a run: the layout, or "
                                                         "every image and label decoded (--full)"))
    ck.add_argument("--full", action="store_true", help="decode every image and label (the first `limit`)")
    ck.add_argument("--splits", default=None, help="comma-separated splits (default: the evaluated split)")
    ck.set_defaults(fn=cmd_check_data)
    d = sub.add_parser("drift", help="evaluate the reference weights on a small subset, compare with results/baselines")
    d.add_argument("dataset", nargs="?", default="synthetic")
    d.add_argument("--update", action="store_true", help="store the current values as expected (tolerances kept)")
    d.add_argument("--measure", action="store_true",
                   help="rewrite the baseline: values from this CPU, tolerances measured under every kernel set")
    d.add_argument("--values", default=None, help="(internal) write this run's unit values as JSON, compare nothing")
    d.set_defaults(fn=cmd_drift)
    rf = sub.add_parser("reference", help="train the reference weights from scratch, evaluate, write the manifest")
    if command in (None, "reference"):
        from bench.reference_cli import add_arguments as reference_arguments

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
    chk = sub.add_parser("check", help="the method contract on a registered method, on tiny generated images")
    chk.add_argument("method")
    chk.add_argument("options", nargs="*", help="option=value of the method's Config (a short schedule: iterations=2)")
    chk.add_argument("--device", default="cpu")
    chk.set_defaults(fn=cmd_check)
    nm = sub.add_parser("new-method", help="write the skeleton of a method: its file, config YAML and test")
    nm.add_argument("name", help="registry key, e.g. my_refiner")
    nm.add_argument("--root", default=None, help="repository to write into (default: this one)")
    nm.add_argument("--force", action="store_true", help="overwrite existing files")
    nm.set_defaults(fn=cmd_new_method)
    u = sub.add_parser("unit", help="(internal) one method x size in this process")
    u.add_argument("config_json")
    u.add_argument("method")
    u.add_argument("size")
    u.add_argument("--status-file", default=None, help="write the unit's status to this file")
    u.set_defaults(fn=cmd_unit)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse and run a command; a :class:`UserError` prints one line and exits 2 (``--debug``: raise)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, before or after the command
    argv = [a for a in argv if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), None)
    args = parser(None if command is None or "-h" in argv or "--help" in argv else command).parse_args(argv)
    # `run cityscapes limit=2`: a first positional with '=' is an override, not a dataset
    if getattr(args, "dataset", None) and "=" in args.dataset:
        args.overrides.insert(0, args.dataset)
        args.dataset = "synthetic"
    args.dataset_given = getattr(args, "dataset", None) in argv  # typed, not the default
    try:
        return args.fn(args)
    except UserError as err:
        if debug:
            raise
        print(f"[bench] error: {one_line(str(err))} (--debug for the traceback)", file=sys.stderr)
        return 2
