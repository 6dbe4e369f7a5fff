"""How ``bench compare`` prints a :class:`bench.report.compare.Comparison`: Markdown (the sides, the flags, the two
rules, one row per unit and metric) and JSON (``{"schema": "magnet-bench/compare", "version": 1, ...}``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from bench.evaluation.significance import MIN_PAIRED_IMAGES
from bench.report.compare import (NAMES, NOISE_RULE, Comparison, Metric, Run, change_text, code_versions, fmt_num,
                                   regressions)


def _side_text(run: Run) -> str:
    p = run.provenance
    sha = "+".join(code_versions(run)) or "unknown"
    return (f"`{run.folder}`: {run.identity_text}, git {sha}, torch {p.get('versions', {}).get('torch')}, "
            f"{p.get('device_name') or p.get('device')}, {p.get('threads')} thread(s), {len(run.units)} unit(s)")


def rules_text(result: Comparison) -> list[str]:
    """The two rules the verdicts follow, as sentences."""
    pct = f"{100 * result.level:g} %"
    return [f"Accuracy: B − A in percentage points over the images both units share, with the {pct} percentile "
            f"interval of a paired bootstrap over those images ({result.n_resamples} resamples, seed "
            f"{result.seed}); a change when the interval excludes 0, no verdict under {MIN_PAIRED_IMAGES} shared "
            f"images. mIoU: A's policy (absent classes -> {result.a.cfg.absent}).",
            "Time and memory: " + NOISE_RULE.format(time=f"{result.time_factor:g}",
                                                    memory=f"{result.memory_factor:g}") + "."]


def to_markdown(result: Comparison, fail_on: Sequence[str] = ()) -> str:
    """The comparison as Markdown: header (sides, flags, rules), a summary line, one row per unit and metric."""
    lines = ["# bench compare", "", f"- A: {_side_text(result.a)}", f"- B: {_side_text(result.b)}"]
    lines += [f"- **Flag**: {f}" for f in result.flags] or ["- No flag: same code, data, config and machine."]
    lines += [f"- {t}" for t in rules_text(result)]
    changed = [u for u in result.units if u.changed]
    lines += ["", f"{len(result.units)} unit(s); changed: "
              + (", ".join(u.label for u in changed) if changed else "none") + "."]
    lines += ["", "| Unit | Metric | A | B | B − A [CI] or B/A | Verdict |", "|---|---|---|---|---|---|"]
    for u in result.units:
        n = f" (n={u.n_shared})" if u.metrics else ""
        if not u.metrics:
            why = "; ".join(u.flags) or "no results on both sides"
            lines.append(f"| {u.label} | status | {u.status_a} | {u.status_b} | {why} | "
                         f"{'changed' if u.status_a != u.status_b else 'same'} |")
            continue
        for j, m in enumerate(u.metrics):
            scale, digits = (100.0, 2) if m.kind == "accuracy" else (1.0, 1 if m.kind == "time" else 0)
            verdict = f"**{m.verdict}**" if m.verdict in ("better", "worse") else m.verdict
            lines.append(f"| {u.label + n if j == 0 else ''} | {NAMES[m.name]} | {fmt_num(m.a, digits, scale)} | "
                         f"{fmt_num(m.b, digits, scale)} | {change_text(m)} | {verdict} |")
        for f in u.flags:
            lines.append(f"| | flag | | | {f} | |")
    if fail_on:
        found = regressions(result, fail_on)
        lines += ["", f"Regressions ({', '.join(fail_on)}): " + ("; ".join(found) if found else "none") + "."]
    return "\n".join(lines) + "\n"


def _json_num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def to_json(result: Comparison, fail_on: Sequence[str] = ()) -> str:
    """The comparison as JSON: fractions for accuracy, ms and MiB otherwise, null where undefined."""
    def metric(m: Metric) -> dict[str, Any]:
        return {"name": m.name, "kind": m.kind, "a": _json_num(m.a), "b": _json_num(m.b), "verdict": m.verdict,
                **({"diff": _json_num(m.diff), "low": _json_num(m.low), "high": _json_num(m.high)}
                   if m.kind == "accuracy" else
                   {"ratio": _json_num(m.ratio), "spread_a": [_json_num(v) for v in m.spread_a],
                    "spread_b": [_json_num(v) for v in m.spread_b]})}

    data = {"schema": "magnet-bench/compare", "version": 1,
            "a": {"folder": str(result.a.folder), "identity": result.a.identity,
                  "git_sha": result.a.provenance.get("git_sha")},
            "b": {"folder": str(result.b.folder), "identity": result.b.identity,
                  "git_sha": result.b.provenance.get("git_sha")},
            "flags": result.flags, "rules": rules_text(result),
            "units": [{"method": u.method, "size": u.size, "coarse": u.coarse or None, "display": u.display,
                       "status_a": u.status_a, "status_b": u.status_b, "n_a": u.n_a, "n_b": u.n_b,
                       "n_shared": u.n_shared, "changed": u.changed, "flags": u.flags,
                       "metrics": [metric(m) for m in u.metrics]} for u in result.units],
            "fail_on": list(fail_on), "regressions": regressions(result, fail_on) if fail_on else []}
    return json.dumps(data, indent=1) + "\n"
