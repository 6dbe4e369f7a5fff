"""``bench big-score``: score folders of refined masks against a BIG folder (CascadePSP's protocol), print the table.

::

    python -m bench big-score BIG_ROOT --refined cascadepsp=out/cascadepsp [--refined crm=out/crm ...]
    python -m bench big-score --published            # SegRefiner's Table 1, cited

``BIG_ROOT`` is in either layout of :mod:`bench.data.big`. Each ``--refined NAME=DIR`` holds one
sub-folder per coarse source (``DIR/<source>/``; ``DIR`` itself when the BIG folder has one
source) with one refined mask per object, named ``<stem>_mask.png`` (CascadePSP),
``<stem>_refine.png`` (SegRefiner) or ``1.0_<stem>_mask.png`` (CRM), found by itself or named
with ``--pattern``. Without ``--refined`` only the coarse column is scored.

A missing folder or file, an unreadable mask or masks of different sizes: one line naming the
file, exit 2. Nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench.core.errors import UserError


def _refined_args(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--refined {item!r}: expected NAME=FOLDER (e.g. cascadepsp=out/cascadepsp)")
        if name in out:
            raise UserError(f"--refined: method {name!r} given twice")
        out[name] = folder
    return out


def score_folder(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Score every coarse source of ``args.root`` and every ``--refined`` method: source -> method -> SetScore.

    Raises:
        UserError: a missing folder or file, an unreadable file, a size mismatch (one line).
    """
    from bench.data.base import DataFormatError
    from bench.data.big import BigFolder, check_size, read_grey, refined_dir, refined_files
    from bench.evaluation.big_score import BigAccumulator, prepare_truth, score_methods

    methods = _refined_args(args.refined)
    try:
        folder = BigFolder(args.root, layout=args.layout, source=args.source, gt_dir=args.gt_dir,
                           coarse_dir=args.coarse_dir, sources=args.sources.split(",") if args.sources else None)
        stems = folder.ids()
        files = {(s, m): refined_files(refined_dir(d, s, len(folder.sources) == 1), stems, args.pattern)
                 for s in folder.sources for m, d in methods.items()}
        names = list(methods) or [""]  # "": the coarse masks alone
        accs = {(s, m): BigAccumulator(args.threshold, args.dilation_ratio) for s in folder.sources for m in names}
        for index, stem in enumerate(stems):  # one ground truth (and its bands) per object, for every source
            entry = folder.entries[index]
            gt = folder.gt(index)
            truth = prepare_truth(gt, args.threshold, args.dilation_ratio)
            for source in folder.sources:
                coarse = folder.coarse(index, source)
                check_size(gt, coarse.shape, entry.gt, entry.coarse[source])
                refined = {m: read_grey(files[(source, m)][stem]) if m else None for m in names}
                for m, obj in score_methods(stem, truth, coarse, refined).items():
                    accs[(source, m)].add(obj)
        scores = {s: {m: accs[(s, m)].compute() for m in names} for s in folder.sources}
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(str(err)) from err
    except ValueError as err:  # an unknown layout, a pattern without {stem}, an ambiguous refined folder
        raise UserError(str(err)) from err
    return scores


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN as None (JSON has no NaN: an undefined score is null)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    if args.root is None and not args.published:
        raise UserError("big-score: give a BIG folder (BIG_ROOT), or --published for the cited table")
    if args.root is None and args.refined:
        raise UserError("big-score: --refined needs a BIG folder (BIG_ROOT)")
    if not args.dilation_ratio > 0:
        raise UserError(f"--dilation-ratio must be > 0, got {args.dilation_ratio}")
    scores = score_folder(args) if args.root is not None else None  # user errors before any table import
    if args.format == "json":
        from dataclasses import asdict

        payload: dict[str, Any] = {}
        if scores is not None:
            payload["scores"] = {s: {m or "coarse": asdict(v) for m, v in per.items()} for s, per in scores.items()}
        if args.published:
            from bench.report.big_tables import PUBLISHED_BIG, PUBLISHED_COLUMNS, PUBLISHED_SOURCE

            payload["published"] = {"source": PUBLISHED_SOURCE, "columns": list(PUBLISHED_COLUMNS),
                                    "rows": {k: list(v) for k, v in PUBLISHED_BIG.items()}}
        print(json.dumps(_no_nan(payload), indent=1, allow_nan=False))
        return 0
    from bench.report.big_tables import measured_table, published_table
    from bench.report.table_format import to_latex, to_markdown

    render = to_latex if args.format == "tex" else to_markdown
    parts = []
    if scores is not None:
        parts.append(render(measured_table(scores, biou=args.biou, what=str(args.root))))
    if args.published:
        parts.append(render(published_table()))
    print("\n".join(parts), end="")
    empty = sum(len(next(iter(per.values())).empty_coarse) for per in (scores or {}).values())
    if empty:
        print(f"[bench] big-score: {empty} object(s) with an empty coarse mask (listed under the table)",
              file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("big-score", help="score refined masks against a BIG folder (CascadePSP's protocol), print the table",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", nargs="?", default=None, help="the BIG folder (CascadePSP or SegRefiner layout)")
    p.add_argument("--refined", action="append", default=[], metavar="NAME=DIR",
                   help="a method's refined masks: DIR/<source>/<stem>_mask.png (repeat per method)")
    p.add_argument("--pattern", default=None,
                   help="refined file name with {stem}, or cascadepsp / segrefiner / crm (default: found)")
    p.add_argument("--layout", choices=("auto", "cascadepsp", "segrefiner"), default="auto")
    p.add_argument("--source", default=None, help="the source name of a single flat folder (default: its name)")
    p.add_argument("--sources", default=None, help="comma-separated coarse sources, in row order (default: all, sorted)")
    p.add_argument("--gt-dir", default="test", help="SegRefiner layout: the ground-truth folder (default: test)")
    p.add_argument("--coarse-dir", default="coarse", help="SegRefiner layout: the sources' folder (default: coarse)")
    p.add_argument("--threshold", choices=("gt128", "ge128"), default="gt128",
                   help="gt128: > 128 (CascadePSP, CRM; default); ge128: >= 128 (SegRefiner)")
    p.add_argument("--biou", action="store_true", help="add Boundary IoU to every cell")
    p.add_argument("--dilation-ratio", type=float, default=0.02,
                   help="Boundary IoU band width as a fraction of the image diagonal (0.02; Cityscapes APIs: 0.005)")
    p.add_argument("--format", choices=("md", "tex", "json"), default="md",
                   help="md, tex: tables in percent; json: unrounded fractions")
    p.add_argument("--published", action="store_true", help="also print SegRefiner's published BIG table (cited)")
    p.set_defaults(fn=run)
