"""``bench status OUT_DIR``: a running or dead sweep's units from another shell: done, failed, running since, left.

Reads ``run.json``, the records and the progress events of the folder; takes no lock and writes
nothing, so it is safe while the sweep runs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bench.evaluation.run_folder import sweep_state

    now = time.time()
    state = sweep_state(args.out_dir, now)
    for line in render(state, now):
        print(line)
    return 0


def render(state: Any, now: float) -> list[str]:
    """The lines of ``bench status`` for a :class:`bench.evaluation.run_folder.SweepState`."""
    from bench.runtime.progress import clock_time, format_duration

    ended = sum(u.state not in ("running", "waiting", "stopped", "not run") for u in state.units)
    lefts = [u.left_s for u in state.units if u.state in ("running", "waiting", "stopped", "not run")]
    known = sum(x for x in lefts if x is not None)
    left = (f"at least {format_duration(known)} ({lefts.count(None)} unit(s) not timed yet)" if None in lefts
            else format_duration(known))
    if state.state == "unknown":
        head = "no sweep has started here yet (training first?), or it ran before progress events were written"
    else:
        since = f"{clock_time(state.started)} ({format_duration(now - state.started)} ago)"
        last = f"last event {clock_time(state.last_event)}" if state.last_event else "no event"
        head = {"running": f"sweep running (pid {state.pid}) since {since}",
                "finished": f"sweep finished; it started {since}, {last}",
                "stopped": f"sweep STOPPED ({state.reason}, {last}); started {since}; the same `bench run` "
                           f"command resumes it",
                "died": f"sweep DIED (pid {state.pid} is gone, {last}); started {since}; the same "
                        f"`bench run` command resumes it"}[state.state]
    lines = [f"{state.out_dir}: {head}",
             f"{ended} of {len(state.units)} unit(s) ended" + (f"; left {left}" if lefts else "")]
    rows = [("unit", "done", "failed", "state", "left")]
    for u in state.units:
        total = "?" if u.total is None else str(u.total)
        what = u.state
        if u.state == "running" and u.since is not None:
            what = f"running since {clock_time(u.since)} ({format_duration(now - u.since)})"
            if u.image is not None:
                what += f", image {u.image[0]} for {format_duration(now - u.image[1])}"
        elif u.state == "stopped" and u.since is not None:
            how = "died" if state.state == "died" else "was stopped"
            what = f"stopped: the sweep {how} while it ran (started {clock_time(u.since)})"
        elif u.message:
            what = f"{u.state}: {u.message[:80]}"
        rows.append((u.label, f"{u.done}/{total}", str(u.failed), what,
                     "-" if u.left_s == 0 else format_duration(u.left_s)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines += ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths)), r[4]]).rstrip() for r in rows]
    return lines


def add_parser(sub: Any) -> None:
    s = sub.add_parser("status", help="a running or dead sweep's units: done, failed, running since, left")
    s.add_argument("out_dir", help="the out_dir of a bench run (holding its run.json)")
    s.set_defaults(fn=run)
