"""What the subcommands share: their config from the command line, a run folder's stored config, lists, data errors."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from bench.core.config import build, parse_overrides
from bench.core.errors import UserError, one_line
from bench.pipeline.configure import load


def command_config(args: argparse.Namespace):  # noqa: ANN201
    """The config of a dataset command: DATASET, ``key=value`` overrides, ``--config``."""
    return load_config(args.dataset, args.overrides, args.config)


def run_config(args: argparse.Namespace):  # noqa: ANN201
    """The config of a command that reads a run's records (``table``, ``score``, ``show``).

    With ``out_dir=<run>`` and a ``<run>/run.json`` written by ``bench run``, the run's stored
    config is the base and the command line's overrides go on top: no override of the run needs
    repeating to find its records.
    """
    overrides = parse_cli_overrides(args.overrides) if isinstance(args.overrides, list) else dict(args.overrides)
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
    from bench.evaluation import run_folder

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
    from bench.weights.released import resolve  # issue 12: released_weights= -> checked files, else cfg unchanged

    return resolve(cfg)


@contextlib.contextmanager
def dataset_read(what: str) -> Iterator[None]:
    """A data folder the command needs (the folder dataset's ``classes.yaml``) missing or malformed: exit 2, one line."""
    from bench.data.base import DataFormatError

    try:
        yield
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(f"{what}: {one_line(str(err))}") from err


def csv_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None or empty -> None."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


def parse_cli_overrides(args: list[str], check: bool = True) -> dict:
    """``key=value`` words as a dict; a malformed one is a :class:`UserError` (``check``: config keys only)."""
    try:
        return parse_overrides(args, check=check)
    except ValueError as err:
        raise UserError(str(err)) from err


def dataset_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments every dataset command takes: DATASET, key=value overrides, --config."""
    p.add_argument("dataset", nargs="?", default="synthetic")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--config", default=None, help="a config file instead of configs/datasets/<dataset>.yaml")
    return p
