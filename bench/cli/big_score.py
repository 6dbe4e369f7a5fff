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
file, exit 2. Nothing is written, except with ``--resume FILE``: one JSON line per object scored,
reused when the command runs again on unchanged files (a scoring of the full BIG set at 5000x3600
takes minutes per method; one that dies resumes at the object it stopped at).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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


def _signature(paths: list[Path]) -> list[list[Any]]:
    """Each file's path, size and modification time: a resumed score is reused only for unchanged files."""
    out = []
    for path in paths:
        st = path.stat()
        out.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _read_resume(path: Path | None) -> dict[str, dict[str, Any]]:
    """The complete lines of a resume file by stem (a line cut short by a crash is ignored)."""
    if path is None or not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[entry["stem"]] = entry
    return done


def _object_score(data: dict[str, Any]) -> Any:
    from bench.evaluation.big_score import MaskScore, ObjectScore

    refined = None if data["refined"] is None else MaskScore(**data["refined"])
    return ObjectScore(**{**data, "coarse": MaskScore(**data["coarse"]), "refined": refined})


def score_folder(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Score every coarse source of ``args.root`` and every ``--refined`` method: source -> method -> SetScore.

    With ``args.resume`` (a file), each object's scores are appended to it as one JSON line once
    computed, and an object whose line matches the settings and the files' sizes and times is not
    scored again: a scoring that dies resumes at the object it stopped at.

    Raises:
        UserError: a missing folder or file, an unreadable file, a size mismatch (one line).
    """
    from dataclasses import asdict

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
    except (FileNotFoundError, ValueError) as err:  # DataFormatError is a ValueError
        raise UserError(str(err)) from err
    names = list(methods) or [""]  # "": the coarse masks alone
    accs = {(s, m): BigAccumulator(args.threshold, args.dilation_ratio) for s in folder.sources for m in names}
    resume = Path(args.resume) if args.resume else None
    done = _read_resume(resume)
    try:
        for index, stem in enumerate(stems):  # one ground truth (and its bands) per object, for every source
            entry = folder.entries[index]
            used = [entry.gt, *entry.coarse.values(), *(files[(s, m)][stem] for s in folder.sources for m in methods)]
            key = {"stem": stem, "threshold": args.threshold, "ratio": args.dilation_ratio,
                   "sources": folder.sources, "methods": names, "files": _signature(used)}
            old = done.get(stem)
            if old is not None and {k: old.get(k) for k in key} == key:
                for source, per in old["scores"].items():
                    for m, data in per.items():
                        accs[(source, m)].add(_object_score(data))
                continue
            gt = folder.gt(index)
            truth = prepare_truth(gt, args.threshold, args.dilation_ratio)
            line: dict[str, dict[str, Any]] = {}
            for source in folder.sources:
                coarse = folder.coarse(index, source)
                check_size(gt, coarse.shape, entry.gt, entry.coarse[source])
                refined = {m: read_grey(files[(source, m)][stem]) if m else None for m in names}
                for m, obj in score_methods(stem, truth, coarse, refined).items():
                    accs[(source, m)].add(obj)
                    line.setdefault(source, {})[m] = asdict(obj)
            if resume is not None:
                with resume.open("a") as fh:  # one line per object, flushed before the next starts
                    fh.write(json.dumps({**key, "scores": line}) + "\n")
    except (FileNotFoundError, DataFormatError) as err:
        raise UserError(str(err)) from err
    return {s: {m: accs[(s, m)].compute() for m in names} for s in folder.sources}


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
    p.add_argument("--resume", default=None, metavar="FILE",
                   help="append each object's scores to FILE and reuse those of unchanged files (a stopped scoring "
                        "resumes)")
    p.set_defaults(fn=run)
