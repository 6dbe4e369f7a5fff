"""What a sweep achieved, unit by unit: the summary line and the exit code of ``bench run``.

Each unit falls in one category, read from its records (``bench.report.table_model.UnitResult``), so a
resumed run reports what the records hold, not what this process happened to do:

- ``ok``: every image of the split evaluated;
- ``partial``: results for some images only (a bad image, a unit stopped early);
- ``missing weights`` (``missing_checkpoint``), ``stale`` (``stale_checkpoint``);
- ``failed``: everything else (``error``, ``oom``, ``unavailable``, ``reference_mismatch``,
  never run).

Any unit outside ``ok`` makes the run exit 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from bench.report.table_model import STATUS_TEXT, UnitResult

CATEGORIES = ("ok", "partial", "failed", "missing weights", "stale")
_BY_STATUS = {"missing_checkpoint": "missing weights", "stale_checkpoint": "stale"}

Results = Mapping[tuple[str, str], UnitResult]


def category(res: UnitResult) -> str:
    """The unit's category (one of :data:`CATEGORIES`)."""
    if res.status == "ok":
        return "partial" if res.partial else "ok"
    return _BY_STATUS.get(res.status, "failed")


def counts(results: Results) -> Counter:
    """Units per category."""
    return Counter(category(r) for r in results.values())


def summary_line(results: Results) -> str:
    """``"12 units: 10 ok, 1 partial, 1 failed, 0 missing weights, 0 stale"``."""
    c = counts(results)
    return f"{len(results)} units: " + ", ".join(f"{c[k]} {k}" for k in CATEGORIES)


def problem_lines(results: Results) -> list[str]:
    """One line per unit that is not ok: what it is and why."""
    lines = []
    for (method, size), res in results.items():
        kind = category(res)
        if kind == "ok":
            continue
        detail = res.coverage() if kind == "partial" else _first_line(res.message) or STATUS_TEXT.get(res.status, res.status)
        lines.append(f"{method} @ {size}: {kind} ({res.status}): {detail}")
    return lines


def exit_code(results: Results) -> int:
    """0 when every unit is ok, else 1."""
    return 0 if all(category(r) == "ok" for r in results.values()) else 1


def _first_line(text: str, limit: int = 300) -> str:
    """The line of a message that says what happened (a traceback's last line)."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
