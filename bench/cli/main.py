"""Command line: ``python -m bench {run,train,table,score,show,check-data,drift,list,smoke,unit} ...``.

Overrides are ``key=value`` (YAML scalars or ``[a, b]``): ``limit=2``, ``device=cuda``,
``methods=[downsample,magnet]``, ``magnet.n_points=0.5``, ``data.size=2048x1024``,
``backbone_train.iterations=20``; ``python -m bench keys [DATASET]`` lists every key.

Exit codes: 0 every unit complete; 1 a unit failed, is partial, lacks weights, has stale weights
(or the figures or the report page failed); 2 a user error (an unknown name or key, a bad value, a missing data
folder, units without weights while train is off), printed as one line before anything runs
(``--debug`` shows the traceback); 130 / 143 interrupted by SIGINT / SIGTERM (the command resumes).
`run` and `train` print their plan first (docs/plan-and-errors.md); ``--dry-run`` prints it alone.
"""

from __future__ import annotations

import argparse
import sys

from bench.cli import (batch_sweep, big_score, check, check_data, compare, drift, export, fps, keys, list_methods,
                       new_method, readme, reference, rehearse, report, run, score, seeds, show, smoke, status, table,
                       train, unit)
from bench.core.errors import UserError, one_line

# one module a subcommand (``add_parser`` registers it, ``run`` runs it), in the order of ``--help``
SUBCOMMANDS = (run, train, table, score, show, report, check_data, drift, reference, seeds, readme, list_methods, smoke,
               check, new_method, unit, big_score, keys, status, rehearse, batch_sweep, compare, export, fps)


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; given the ``command`` about to run, the others' heavy modules stay unimported.

    ``bench.checks.reference_set`` imports torch, which takes seconds: a ``run`` with a typo must fail faster.
    """
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of a user error (anywhere on the line)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        if module is reference:
            reference.add_parser(sub, command)
        else:
            module.add_parser(sub)
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
        args.parser_factory = parser  # for the pages' CLI reference (bench.cli.readme_blocks), which cannot import this
        return args.fn(args)
    except UserError as err:
        if debug:
            raise
        print(f"[bench] error: {one_line(str(err))} (--debug for the traceback)", file=sys.stderr)
        return 2
