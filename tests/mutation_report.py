"""Render mutmut's results into docs/mutation.md (the block between the mutation markers).

``python tests/mutation_report.py MUTATION_DIR [docs/mutation.md] [--commit SHA]`` (the last step of
``make mutation``): runs ``mutmut results --all true`` in MUTATION_DIR, counts each status per
module, lists the survivors, and replaces the block between ``<!-- mutation:begin -->`` and
``<!-- mutation:end -->`` with them, the commit mutated, the date, the machine and the mutmut
version. The commit is this checkout's HEAD (marked "with local changes" when the tree is dirty,
as ``make mutation`` copies the working tree), or ``--commit`` when MUTATION_DIR was copied from
another one. The analysis
of each survivor (test added, or why it is equivalent) is prose below the block, written by hand.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from bench.runtime.measure import cpu_model

BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
STATUSES = ("killed", "survived", "no tests", "timeout", "suspicious", "segfault", "skipped", "not checked")


def results(folder: Path) -> dict[str, str]:
    """``{mutant name: status}`` from ``mutmut results --all true`` run in ``folder``."""
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=folder, capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        match = re.match(r"^\s*(\S+__mutmut_\d+): (.+?)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def module_of(name: str) -> str:
    """``bench.evaluation.metrics.x_iou__mutmut_3`` -> ``bench.evaluation.metrics``."""
    return name.split(".x", 1)[0] if ".x" in name else name.rsplit(".", 1)[0]


def checkout_commit() -> str:
    """This checkout's short HEAD, with "with local changes" when tracked files differ from it."""
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"
    return f"{sha} with local changes" if dirty else sha


def render(found: dict[str, str], commit: str) -> str:
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in found.items():
        counts[module_of(name)][status] += 1
        if status == "survived":
            survivors[module_of(name)].append(name)
    cols = [s for s in STATUSES if any(c[s] for c in counts.values())]
    lines = [f"Run of commit {commit}, {datetime.date.today().isoformat()}, on {cpu_model()} ({os.cpu_count()} CPUs), "
             f"mutmut {importlib.metadata.version('mutmut')}, Python {platform.python_version()}; "
             "rendered by `python tests/mutation_report.py` from `mutmut results` (`make mutation`).", "",
             "| module | mutants | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for module in sorted(counts):
        c = counts[module]
        lines.append(f"| `{module}` | {sum(c.values())} | " + " | ".join(str(c[s]) for s in cols) + " |")
    lines += ["", "Survivors (see each with `mutmut show NAME` in the mutation folder):", ""]
    for module in sorted(survivors):
        names = sorted(survivors[module], key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[1])))
        short = ", ".join(f"`{n[len(module) + 1:]}`" for n in names)
        lines.append(f"- `{module}` ({len(names)}): {short}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    commit = None
    if "--commit" in argv:
        at = argv.index("--commit")
        commit = argv[at + 1] if at + 1 < len(argv) else None
        if not commit:
            print("mutation_report: --commit needs a SHA", file=sys.stderr)
            return 2
        argv = argv[:at] + argv[at + 2:]
    if not argv or len(argv) > 2:
        print("usage: python tests/mutation_report.py MUTATION_DIR [docs/mutation.md] [--commit SHA]", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    doc = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "mutation.md"
    found = results(folder)
    if not found:
        print(f"mutation_report: {folder}: mutmut lists no mutants (did `mutmut run` finish there?)", file=sys.stderr)
        return 2
    text = doc.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        print(f"mutation_report: {doc}: expected one {BEGIN} and one {END}", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    doc.write_text(f"{head}{BEGIN}\n{render(found, commit or checkout_commit())}\n{END}{tail}")
    print(f"mutation_report: {len(found)} mutants, {sum(s == 'survived' for s in found.values())} survived -> {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
