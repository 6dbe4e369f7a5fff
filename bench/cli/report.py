"""``bench report OUT_DIR``: the run's report page, one self-contained HTML file (``bench.report.html``)."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from bench.cli.common import dataset_read, run_config
from bench.core.errors import UserError


def run(args: argparse.Namespace) -> int:
    from bench.evaluation import run_folder

    if run_folder.read(args.out_dir) is None:
        raise UserError(f"{Path(args.out_dir) / run_folder.RUN_FILE}: not found; expected the out_dir of a bench run")
    cfg = run_config(argparse.Namespace(dataset="synthetic", dataset_given=False, config=None,
                                        overrides=[f"out_dir={args.out_dir}", *args.overrides]))
    from bench.report.html import write_report  # imports torch (the table model's timing summary)

    with dataset_read(f"the report of {cfg.dataset} needs its class names"):
        path = write_report(cfg, path=Path(args.output) if args.output else None)
    print(path)
    return 0


def after_run(cfg: Any, aggregates: Any) -> int:
    """``bench run``'s last step: write the page and print its path; a failure is reported and exits 1."""
    from bench.report.html import write_report

    try:
        path = write_report(cfg, aggregates, draw_plots=False)  # drawn just before, unless they failed
    except Exception:  # noqa: BLE001 - records, tables and figures are written; say clearly that the page is not
        print(f"[bench] REPORT PAGE FAILED (records and tables are fine):\n{traceback.format_exc()}", file=sys.stderr)
        return 1
    print(f"[bench] report: {path}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write the run's report page (one HTML file: provenance, tables, plots, "
                                      "panels, failures)")
    p.add_argument("out_dir", help="the out_dir of a bench run (holding its run.json)")
    p.add_argument("overrides", nargs="*", help="key=value on top of the run's stored config (e.g. tables_dir=...)")
    p.add_argument("--output", default=None, help="the HTML file to write (default <tables_dir>/report.html)")
    p.set_defaults(fn=run)
