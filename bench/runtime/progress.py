"""Progress one can watch: the unit workers' events, and the lines a person reads.

The sweep's unit workers run in subprocesses whose output is captured, so they do not print
progress themselves: they append *events* (one JSON object a line) to ``<out_dir>/progress.events``
(``progress-rank<r>.events`` under torchrun), and the sweep's process tails that file and prints.
``bench status`` reads the same file from another shell. The file is append-only, like the
records, and holds no result: it is never read by a table. It ends in ``.events``, not
``.jsonl``, because every ``*.jsonl`` of a run folder is read as records.

Events (field ``event``; every one has ``t``, Unix seconds, and all but ``sweep``/``sweep_end`` ``unit``,
``"method@WxH"``):

- ``sweep`` (the sweep's process, when it starts): ``pid``, ``units`` (labels in run order),
  ``left`` (``{label: images not yet recorded}``) where known.
- ``unit`` (the worker, once it knows its images): ``total`` (images of the unit on this rank),
  ``done`` (already recorded before), ``pid``.
- ``image`` (the worker, before reading an image): ``image_id``.
- ``done`` (the worker, after an image's record is written): ``image_id``, ``ok``, ``seconds``
  (the image's wall clock: reading, warm-up on the first, prediction, scoring, saving), ``reason`` when not ok.
- ``end`` (the sweep's process, after the unit's worker is gone): ``status``.
- ``sweep_end`` (the sweep's process, when every unit has ended).

:class:`Progress` turns events into lines; it is pure (it is given each event and the time) so that
its policy can be tested with a fake clock. Without a terminal (a log file, CI, ``nohup``): a line
when an image finishes, at most one every :data:`LINE_EVERY_S` seconds a unit (its first and last
image always), and a heartbeat at least every :data:`HEARTBEAT_S` seconds while the unit is still
busy. On a terminal, one live bar (:meth:`Progress.bar`) and the lines that stay. :class:`Watcher`
is the thread of the sweep's process that tails the file and prints.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

EVENTS_NAME = "progress.events"
LINE_EVERY_S = 10.0   # at most one image line a unit this often (without a terminal)
HEARTBEAT_S = 60.0    # a line at least this often while a unit is busy (without a terminal)
POLL_S = 0.5          # how often the sweep's process reads new events and redraws the bar
BAR_WIDTH = 20


def events_file(out_dir: Path, rank: int = 0, world: int = 1) -> Path:
    """The events file of one rank in ``out_dir`` (named like ``bench.pipeline.runner.records_file``)."""
    return Path(out_dir) / (f"progress-rank{rank}.events" if world > 1 or rank != 0 else EVENTS_NAME)


def append_event(path: Path, event: Mapping[str, Any]) -> None:
    """Append one event (``t`` added when absent) as a JSON line.

    One ``write`` of a short line in append mode: the sweep's process and its worker never
    interleave inside a line. Not fsynced: an event lost to a power cut costs a line of progress, not a result.
    """
    line = json.dumps({"t": time.time(), **event}, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(line)


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete events of ``path`` from byte ``offset`` on, and the offset after the last complete line.

    A line still being written (no newline yet) is left for the next read; a torn line (a
    killed writer) and anything that is not an event object are skipped.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event and isinstance(event.get("t"), (int, float)):
            out.append(event)
    return out, offset + end


def format_duration(seconds: float | None) -> str:
    """``"?"``, ``"0.42 s"``, ``"12 s"``, ``"3 min 05 s"``, ``"2 h 04 min"``."""
    if seconds is None:
        return "?"
    s = max(float(seconds), 0.0)
    if s < 10:
        return f"{s:.2g} s" if s < 1 else f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def clock_time(t: float) -> str:
    """``HH:MM:SS`` of Unix time ``t`` in the machine's time zone."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def rate(seconds: Sequence[float]) -> float | None:
    """Seconds an image from the images done so far; None before the first.

    The first image of a unit also carries the warm-up and the lazy set-up of the method, so
    once there are others it is left out.
    """
    if not seconds:
        return None
    rest = seconds[1:] or seconds
    return sum(rest) / len(rest)


def image_rates(events: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """``{unit label: seconds an image}`` from the latest run of each unit that finished an image."""
    runs: dict[str, list[float]] = {}
    for e in events:
        kind, label = e.get("event"), e.get("unit")
        if kind == "unit" and label:
            runs[label] = []
        elif kind == "done" and label and e.get("ok") and isinstance(e.get("seconds"), (int, float)):
            runs.setdefault(label, []).append(float(e["seconds"]))
    out = {}
    for label, secs in runs.items():
        r = rate(secs)
        if r is not None:
            out[label] = r
    return out


def unit_left(total: int, done: int, per_image: float | None, running_for: float | None) -> float | None:
    """Seconds left to a unit with ``done`` of ``total`` images finished, one running for ``running_for`` s.

    The image in flight is counted as at least finishing now, so a slow image never makes the
    estimate negative.
    """
    left = max(total - done, 0)
    if left == 0:
        return 0.0
    if per_image is None:
        return None
    return max(per_image - (running_for or 0.0), 0.0) + per_image * (left - 1)


@dataclass
class _Unit:
    label: str
    total: int = 0
    done: int = 0            # images finished, earlier runs' included
    before: int = 0          # of which recorded by an earlier run
    launched: float | None = None  # when the sweep turned to it, until its first image
    failed: int = 0          # images of this run that could not be read
    started: float = 0.0
    image: str | None = None  # the image in flight
    image_started: float | None = None
    seconds: list[float] = field(default_factory=list)
    last_line: float | None = None        # when this unit last printed any line (the heartbeat's clock)
    last_image_line: float | None = None  # when it last printed an image's line (the throttle's clock)


class Progress:
    """What a person sees of a sweep, from its events; pure (the time is passed in).

    Args:
        units: the sweep's unit labels (``"method@WxH"``) in run order.
        left: images not yet recorded per unit at the start (a unit absent: unknown).
        estimates: seconds an image per unit, from earlier runs (a unit absent: not timed).
        tty: a live bar instead of throttled lines and heartbeats.
        started: when the sweep started (Unix s), so that the first unit's set-up is timed too.
    """

    def __init__(self, units: Sequence[str], left: Mapping[str, int] | None = None,
                 estimates: Mapping[str, float] | None = None, tty: bool = False,
                 started: float | None = None) -> None:
        self.units = list(units)
        self.left = dict(left or {})
        self.estimates = dict(estimates or {})
        self.tty = tty
        self.ended: dict[str, str] = {}
        self.current: _Unit | None = None
        # a unit's set-up (a fresh process, imports, weights) until its first image: the same
        # order for every unit of a sweep, and on a small split a large part of the time left
        self.setups: list[float] = []
        self._since_last_end = started

    # -- events --------------------------------------------------------------------------------------------------

    def feed(self, event: Mapping[str, Any], now: float) -> list[str]:
        """The lines (without newline) that ``event`` prints at time ``now``."""
        kind, label = event.get("event"), str(event.get("unit", ""))
        if kind == "unit":
            return self._start(label, event, now)
        u = self.current
        if kind == "end":
            return self._end(label, str(event.get("status", "?")), now)
        if u is None or u.label != label:
            return []
        if kind == "image":
            u.image, u.image_started = str(event.get("image_id")), float(event.get("t", now))
            if u.launched is not None:
                self.setups.append(u.image_started - u.launched)
                u.launched = None
            return []
        if kind == "done":
            return self._done(u, event, now)
        return []

    def tick(self, now: float) -> list[str]:
        """A heartbeat when the unit in progress has printed nothing for :data:`HEARTBEAT_S` seconds."""
        u = self.current
        if self.tty or u is None or u.last_line is None or now - u.last_line < HEARTBEAT_S:
            return []
        u.last_line = now
        if u.image is not None and u.image_started is not None:
            doing = f"image {u.image} running for {format_duration(now - u.image_started)}"
        else:
            doing = f"setting up for {format_duration(now - u.started)}"
        return [self._line(u, now, f"{u.done}/{u.total} images, {doing}, {self._left(u, now)}")]

    def bar(self, now: float) -> str:
        """The live bar of the unit in progress ('' when none), for a terminal."""
        u = self.current
        if u is None or (u.done >= u.total and u.image is None):
            return ""  # its last line is printed; the bar would only repeat it until the unit's process ends
        filled = int(BAR_WIDTH * u.done / u.total) if u.total else BAR_WIDTH
        running = (f", image {u.image} {format_duration(now - u.image_started)}"
                   if u.image is not None and u.image_started is not None else "")
        return (f"[bench] {_pretty(u.label)} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {u.done}/{u.total}, "
                f"{self._rate_text(u)}, {self._left(u, now, short=True)}{running}")

    # -- the steps -------------------------------------------------------------------------------------------------

    def _start(self, label: str, event: Mapping[str, Any], now: float) -> list[str]:
        total, done = int(event.get("total", 0)), int(event.get("done", 0))
        u = _Unit(label, total=total, done=done, before=done, started=float(event.get("t", now)), last_line=now,
                  launched=self._since_last_end)
        self.current = u
        self.left[label] = total - done
        where = f"unit {self.units.index(label) + 1}/{len(self.units)}, " if label in self.units else ""
        before = f" ({done} recorded before)" if done else ""
        if done >= total:
            return []  # nothing to run: its end says so
        return [self._line(u, now, f"{where}{total - done} of {total} images to run{before}")]

    def _done(self, u: _Unit, event: Mapping[str, Any], now: float) -> list[str]:
        u.done += 1
        u.image = u.image_started = None
        lines = []
        if event.get("ok", True):
            if isinstance(event.get("seconds"), (int, float)):
                u.seconds.append(float(event["seconds"]))
        else:
            u.failed += 1
            lines.append(self._line(u, now, f"image {event.get('image_id')} failed, recorded, going on "
                                               f"({u.failed} so far): {event.get('reason', '')}"))
        last = u.done >= u.total
        if self.tty and not last:
            return lines
        # a failure's own line is not throttled (the runner always said so), but the figures are
        if last or u.last_image_line is None or now - u.last_image_line >= LINE_EVERY_S:
            lines.append(self._line(u, now, self._stats(u, now)))
            u.last_image_line = now
        if lines:
            u.last_line = now
        return lines

    def _end(self, label: str, status: str, now: float) -> list[str]:
        u = self.current
        self.ended[label] = status
        self._since_last_end = now
        self.left[label] = 0
        self.current = None
        if u is not None and u.label == label:
            r = rate(u.seconds)
            if r is not None:
                self.estimates[label] = r
            if status in ("ok", "partial") and u.done >= u.total and u.total:
                return []  # its last image's line said it all
            if status == "done":
                return [self._line(u, now, f"nothing left to run ({u.done}/{u.total} images recorded before)")]
            if u.done == u.before:
                return [self._line(u, now, f"{status}, before its first image")]
            return [self._line(u, now, f"{status} after {u.done}/{u.total} images, {u.failed} failed")]
        return [f"[bench] {clock_time(now)} {_pretty(label)}: {status}"]

    # -- text ------------------------------------------------------------------------------------------------------

    def _line(self, u: _Unit, now: float, text: str) -> str:
        return f"[bench] {clock_time(now)} {_pretty(u.label)}: {text}"

    def _stats(self, u: _Unit, now: float) -> str:
        return f"{u.done}/{u.total} images, {self._rate_text(u)}, {self._left(u, now)}"

    def _rate_text(self, u: _Unit) -> str:
        r = rate(u.seconds)
        return f"{format_duration(r)}/image" if r is not None else "?/image"

    def _per_image(self, u: _Unit) -> float | None:
        r = rate(u.seconds)
        return r if r is not None else self.estimates.get(u.label)

    def _left(self, u: _Unit, now: float, short: bool = False) -> str:
        running_for = now - u.image_started if u.image_started is not None else None
        mine = unit_left(u.total, u.done, self._per_image(u), running_for)
        sweep, untimed = mine or 0.0, int(mine is None)
        setup = sum(self.setups) / len(self.setups) if self.setups else 0.0
        for label in self.units:
            if label == u.label or label in self.ended:
                continue
            n, per = self.left.get(label), self.estimates.get(label)
            if n == 0:
                continue
            if n is None or per is None:
                untimed += 1
            else:
                sweep += setup + n * per
        if not untimed:
            sweep_text = format_duration(sweep)
        elif not sweep:
            sweep_text = "?"
        else:
            sweep_text = (f">= {format_duration(sweep)}" if short else
                          f"at least {format_duration(sweep)} ({untimed} unit(s) not timed yet)")
        return f"left: unit {format_duration(mine)}, sweep {sweep_text}; {u.failed} failed"


def _pretty(label: str) -> str:
    """``"magnet@128x64"`` -> ``"magnet @ 128x64"`` (how the other lines of a run name a unit)."""
    name, _, size = label.rpartition("@")
    return f"{name} @ {size}" if name else label


class Watcher:
    """The sweep's thread that tails an events file and prints what :class:`Progress` says.

    Use as a context manager around the units; :meth:`say` prints a line of the sweep's own
    without breaking the bar. Events already in the file when it starts are not replayed.
    """

    def __init__(self, path: Path, progress: Progress, stream: TextIO | None = None, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.progress, self.poll_s, self.clock = Path(path), progress, poll_s, clock
        self._stream = stream
        self._offset = self.path.stat().st_size if self.path.is_file() else 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="bench-progress", daemon=True)
        self._bar_shown = False

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr  # sys.stderr now, not at import

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()  # the events written after the thread's last read
        with self._lock:
            self._clear_bar()
            self.stream.flush()

    def say(self, line: str) -> None:
        """Print one line of the sweep's own (under the bar on a terminal)."""
        with self._lock:
            self._clear_bar()
            self.stream.write(line + "\n")
            self.stream.flush()

    def poll(self) -> None:
        """Read the new events, print their lines, and redraw the bar or print a heartbeat."""
        events, self._offset = read_events(self.path, self._offset)
        now = self.clock()
        lines = [line for e in events for line in self.progress.feed(e, now)] + self.progress.tick(now)
        with self._lock:
            if lines:
                self._clear_bar()
                self.stream.write("".join(line + "\n" for line in lines))
            if self.progress.tty:
                bar = self.progress.bar(now)
                if bar:
                    width = _terminal_width(self.stream)
                    self.stream.write("\r" + bar[: width - 1] + "\x1b[K")
                    self._bar_shown = True
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as err:  # noqa: BLE001 - progress must never end a sweep; say so once and stop
                self.stream.write(f"[bench] progress display stopped: {type(err).__name__}: {err}\n")
                return

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r\x1b[K")
            self._bar_shown = False


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 120
