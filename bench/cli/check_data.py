"""``bench check-data``: a data folder checked before a run."""

from __future__ import annotations

import argparse
from typing import Any
from bench.cli.common import command_config, csv_list, dataset_args


def run(args: argparse.Namespace) -> int:
    """Check a data folder: its layout, or with ``--full`` every image and label decoded.

    Exits 0 when every file is fine, 1 naming every bad file, 2 for a missing folder or layout.
    """
    from bench.pipeline.validate import check_data, check_dataset, scan_split

    cfg = command_config(args)
    check_dataset(cfg)
    status = 0
    for split in csv_list(args.splits) or [cfg.split]:
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


def add_parser(sub: Any) -> None:
    ck = dataset_args(sub.add_parser("check-data", help="check the data folder before a run: the layout, or "
                                                        "every image and label decoded (--full)"))
    ck.add_argument("--full", action="store_true", help="decode every image and label (the first `limit`)")
    ck.add_argument("--splits", default=None, help="comma-separated splits (default: the evaluated split)")
    ck.set_defaults(fn=run)
