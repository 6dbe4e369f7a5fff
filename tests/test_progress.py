"""Issue 21 item 1: progress one can watch, and ``bench status`` from another shell.

The line policy is tested on :class:`bench.runtime.progress.Progress` with a fake clock; the rest
runs a tiny sweep through the CLI (unit workers in subprocesses, stderr to a file, as in a log).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main as cli
from bench.core.config import build
from bench.evaluation import records
from bench.evaluation.run_folder import sweep_state
from bench.pipeline.runner import train_missing
from bench.runtime import progress
from bench.runtime.progress import HEARTBEAT_S, LINE_EVERY_S, Progress, format_duration
from tests.test_runner import _flat, plugin_env  # noqa: F401 - the fixture

UNIT = "magnet@64x32"


def _unit(p: Progress, now: float, total: int = 5, done: int = 0, label: str = UNIT) -> list[str]:
    return p.feed({"event": "unit", "unit": label, "total": total, "done": done, "t": now}, now)


def _image(p: Progress, i: int, start: float, seconds: float, ok: bool = True, label: str = UNIT) -> list[str]:
    """One image from ``start`` to ``start + seconds``: the lines its ``done`` event prints."""
    assert p.feed({"event": "image", "unit": label, "image_id": f"img{i}", "t": start}, start) == []
    event = {"event": "done", "unit": label, "image_id": f"img{i}", "ok": ok, "t": start + seconds}
    event.update({"seconds": seconds} if ok else {"reason": "ValueError: bad png"})
    return p.feed(event, start + seconds)


# -- the line policy, with a fake clock ---------------------------------------------------------------------------

def test_image_lines_are_throttled_to_one_per_10_s_and_the_last_image_always_prints():
    p = Progress([UNIT])
    assert len(_unit(p, 0.0)) == 1  # the unit's start line
    assert len(_image(p, 0, 0.0, 1.0)) == 1  # the first image: nothing printed yet for any image
    assert _image(p, 1, 1.0, 1.0) == []  # 2 s: within 10 s of the last image line
    assert _image(p, 2, 2.0, LINE_EVERY_S - 1.5) == []  # 10.5 s, but 9.5 s after the last image line
    lines = _image(p, 3, 10.5, 0.5)  # 11 s: 10 s after the last image line
    assert len(lines) == 1 and "4/5 images" in lines[0]
    last = _image(p, 4, 11.0, 0.5)  # 11.5 s: 0.5 s after a line, but the unit's last image
    assert len(last) == 1 and "5/5 images" in last[0]
    assert p.feed({"event": "end", "unit": UNIT, "status": "ok"}, 12.0) == []  # the last image said it


def test_a_heartbeat_at_least_every_60_s_while_an_image_runs():
    p = Progress([UNIT])
    _unit(p, 0.0, total=2)
    _image(p, 0, 0.0, 2.0)  # a line at 2 s
    assert p.feed({"event": "image", "unit": UNIT, "image_id": "img1", "t": 2.0}, 2.0) == []
    assert p.tick(2.0 + HEARTBEAT_S - 0.1) == []
    beat = p.tick(2.0 + HEARTBEAT_S)
    assert len(beat) == 1 and "image img1 running for 1 min 00 s" in beat[0] and "1/2 images" in beat[0]
    assert p.tick(2.0 + HEARTBEAT_S + 30) == []  # 60 s from the heartbeat, not from the last image
    assert len(p.tick(2.0 + 2 * HEARTBEAT_S)) == 1
    # a unit still setting up (no image yet) gets its heartbeat too
    q = Progress([UNIT])
    _unit(q, 0.0)
    assert "setting up for 1 min 00 s" in q.tick(HEARTBEAT_S)[0]


def test_rate_unit_and_sweep_left_and_failures():
    nxt = "magnet@128x64"
    p = Progress([UNIT, nxt], left={UNIT: 4, nxt: 3}, estimates={nxt: 10.0}, started=0.0)
    _unit(p, 2.0, total=4)  # 2 s of set-up before its first image (the sweep started at 0)
    _image(p, 0, 2.0, 9.0)   # the first image carries the warm-up: left out of the rate once others exist
    p.feed({"event": "image", "unit": UNIT, "image_id": "img1", "t": 11.0}, 11.0)
    assert p.feed({"event": "done", "unit": UNIT, "image_id": "img1", "ok": True, "seconds": 3.0, "t": 14.0},
                  14.0) == []  # 3 s after the first image's line: throttled
    line = _image(p, 2, 14.0, 11.0)[0]  # 25 s: 14 s after the first image's line
    # rate (3 + 11) / 2 = 7 s, not (9 + 3 + 11) / 3: the first image is left out
    assert "3/4 images, 7.0 s/image" in line, line
    # 1 image left: 7 s; the next unit: the 2 s set-up seen on this one + 3 images x 10 s
    assert "left: unit 7.0 s, sweep 39 s; 0 failed" in line, line
    q = Progress([UNIT])
    _unit(q, 0.0, total=3)
    _image(q, 0, 0.0, 1.0)
    failed = _image(q, 1, 1.0, 0.1, ok=False)  # within 10 s of the last line: its own line, no figures
    assert len(failed) == 1 and "image img1 failed, recorded, going on (1 so far)" in failed[0]
    failed = _image(p, 3, 25.0, 0.1, ok=False)  # the last image could not be read
    assert "image img3 failed, recorded, going on (1 so far): ValueError: bad png" in failed[0]
    assert "4/4 images" in failed[1] and "; 1 failed" in failed[1]
    # an untimed next unit makes the sweep's estimate a lower bound, and says so
    q = Progress([UNIT, nxt], left={UNIT: 2, nxt: 3})
    _unit(q, 0.0, total=2)
    assert "sweep at least 4.0 s (1 unit(s) not timed yet)" in _image(q, 0, 0.0, 4.0)[0]


def test_on_a_terminal_a_live_bar_instead_of_image_lines():
    p = Progress([UNIT], tty=True)
    _unit(p, 0.0, total=4)
    assert _image(p, 0, 0.0, 1.0) == []
    assert p.tick(200.0) == []  # no heartbeat: the bar moves
    assert p.feed({"event": "image", "unit": UNIT, "image_id": "img1", "t": 1.0}, 1.0) == []
    bar = p.bar(3.0)  # 3 images left at 1 s, the one in flight for 2 s already counted as finishing now
    assert "[#####...............] 1/4, 1.0 s/image, left: unit 2.0 s, sweep 2.0 s; 0 failed, image img1 2.0 s" in bar, bar
    for i in range(1, 4):
        last = _image(p, i, float(i), 1.0)
    assert len(last) == 1 and "4/4 images" in last[0]
    assert p.bar(5.0) == ""  # the last line is printed: no bar repeating it until the unit ends


def test_end_lines_name_what_happened():
    p = Progress([UNIT])
    assert _unit(p, 0.0, total=3, done=3) == []
    assert "nothing left to run (3/3" in p.feed({"event": "end", "unit": UNIT, "status": "done"}, 1.0)[0]
    _unit(p, 1.0, total=3)
    end = p.feed({"event": "end", "unit": UNIT, "status": "missing_checkpoint"}, 2.0)
    assert "missing_checkpoint, before its first image" in end[0]
    _unit(p, 2.0, total=3)
    _image(p, 0, 2.0, 1.0)
    assert "oom after 1/3 images" in p.feed({"event": "end", "unit": UNIT, "status": "oom"}, 4.0)[0]
    # a unit that failed before its worker said anything (an unknown method) still gets its line
    assert "broken @ 8x8: error" in p.feed({"event": "end", "unit": "broken@8x8", "status": "error"}, 5.0)[0]


def test_events_file_skips_a_torn_line_and_waits_for_an_unfinished_one(tmp_path):
    path = tmp_path / progress.EVENTS_NAME
    progress.append_event(path, {"event": "sweep", "units": []})
    with open(path, "a") as fh:
        fh.write('{"event": "unit", "t": 1, "unit": "a@1x1"\n{"event": "image", "t": 2')  # torn, then unfinished
    events, offset = progress.read_events(path)
    assert [e["event"] for e in events] == ["sweep"]
    with open(path, "a") as fh:
        fh.write(', "unit": "a@1x1", "image_id": "x"}\n')
    more, _ = progress.read_events(path, offset)
    assert [e["event"] for e in more] == ["image"]


def test_the_watcher_prints_only_new_events_and_keeps_the_bar_below_the_lines(tmp_path):
    path = tmp_path / progress.EVENTS_NAME
    progress.append_event(path, {"event": "unit", "unit": "old@1x1", "total": 1, "done": 0})  # an earlier run's
    plain, tty = io.StringIO(), io.StringIO()
    clock = iter([1.0, 2.0, 3.0, 4.0]).__next__
    watchers = [progress.Watcher(path, Progress([UNIT]), plain, clock=clock),
                progress.Watcher(path, Progress([UNIT], tty=True), tty, clock=clock)]
    progress.append_event(path, {"event": "unit", "unit": UNIT, "total": 2, "done": 0})
    progress.append_event(path, {"event": "image", "unit": UNIT, "image_id": "a"})
    for w in watchers:
        w.poll()
    assert "old @ 1x1" not in plain.getvalue() and plain.getvalue().count("\n") == 1  # the start line
    assert tty.getvalue().endswith("\x1b[K") and "0/2, ?/image" in tty.getvalue()  # the bar, no newline after it
    watchers[1].say("[bench] a line of the sweep")
    assert tty.getvalue().endswith("\r\x1b[K[bench] a line of the sweep\n")  # the bar cleared first
    progress.append_event(path, {"event": "done", "unit": UNIT, "image_id": "a", "ok": True, "seconds": 1.0})
    for w in watchers:
        w.poll()
    assert "1/2 images" in plain.getvalue().splitlines()[-1]


def test_format_duration():
    assert [format_duration(s) for s in (None, 0.42, 4.0, 42.0, 185.0, 7440.0)] == \
        ["?", "0.42 s", "4.0 s", "42 s", "3 min 05 s", "2 h 04 min"]


# -- a tiny sweep through the CLI, its log and its status --------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``bench run`` of 2 units x 4 images, stderr to a file as in a log: (out_dir, the log's text)."""
    tmp = tmp_path_factory.mktemp("progress")
    flat = _flat(tmp, table1_sizes=[], save_predictions=0, bootstrap=0)
    (tmp / "cfg.yaml").write_text(json.dumps(flat))
    train_missing(build(flat))
    log = tmp / "stderr.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(tmp / "cfg.yaml")],
                              stdout=subprocess.DEVNULL, stderr=fh, timeout=300)
    assert proc.returncode == 0, log.read_text()
    return Path(flat["out_dir"]), log.read_text()


def test_a_sweep_logs_progress_for_every_unit(finished_run):
    _, log = finished_run
    for n, label in enumerate(["downsample @ 32x16", "patching @ 32x16"], 1):
        mine = [line for line in log.splitlines() if f" {label}: " in line]
        assert any(f"unit {n}/2, 4 of 4 images to run" in line for line in mine), log
        assert re.search(r"1/4 images, [0-9.]+ s/image, left: unit [0-9.]+ s, sweep .*; 0 failed", "\n".join(mine)), log
        assert "4/4 images" in mine[-1] and "left: unit 0 s" in mine[-1], log


def test_status_of_a_finished_sweep(finished_run, capsys):
    out, _ = finished_run
    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sweep finished" in text and "2 of 2 unit(s) ended" in text, text
    assert re.search(r"downsample@32x16 +4/4 +0 +ok +-", text) and re.search(r"patching@32x16 +4/4 +0 +ok +-", text), text


def test_status_never_imports_torch(finished_run, tmp_path):
    """``bench status`` reads a folder in a second: a stand-in ``torch`` that raises on import must not be reached."""
    out, _ = finished_run
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported by bench status')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}:{Path(__file__).parents[1]}"}
    proc = subprocess.run([sys.executable, "-m", "bench", "status", str(out)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and "sweep finished" in proc.stdout, proc.stderr


def test_status_of_a_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert cli.main(["status", str(tmp_path)]) == 2
    assert "run.json: not found" in capsys.readouterr().err


def test_status_while_a_sweep_runs_and_after_it_was_killed(tmp_path, plugin_env, capsys):  # noqa: F811
    flat = _flat(tmp_path, methods=["slow_downsample", "downsample"], table1_sizes=[], save_predictions=0,
                 bootstrap=0, **{"data.n_images": 6})
    (tmp_path / "cfg.yaml").write_text(json.dumps(flat))
    train_missing(build(flat))
    out = Path(flat["out_dir"])
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--config", str(tmp_path / "cfg.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len([r for r in records.load(out) if r["type"] == "image"]) < 2:
            assert proc.poll() is None, "the run ended before it could be watched"
            time.sleep(0.02)
        # while it runs: read from outside, no lock taken (the run goes on)
        running = sweep_state(out)
        assert running.state == "running" and running.pid == proc.pid
        slow = running.units[0]
        assert slow.label == "slow_downsample@32x16" and slow.state == "running" and slow.since is not None
        assert 2 <= slow.done < 6 and slow.total == 6 and slow.left_s is not None and slow.left_s > 0
        assert running.units[1].state == "waiting"
        assert cli.main(["status", str(out)]) == 0
        assert re.search(r"slow_downsample@32x16 +\d/6 +0 +running since", capsys.readouterr().out)
    finally:
        proc.send_signal(signal.SIGKILL)  # the parent alone: its worker dies with it (bench.runtime.procs)
        proc.wait()
    time.sleep(0.5)
    dead = sweep_state(out)
    assert dead.state == "died" and dead.units[0].state == "stopped" and dead.units[1].state == "not run"
    left = dead.units[0].left_s
    assert left is not None and 0 < left < 6 * 5, "the left time comes from the unit's own image times"
    assert dead.units[1].left_s is None  # never timed: no guess
    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sweep DIED" in text and "resumes" in text, text
    assert re.search(r"slow_downsample@32x16 +\d/6 +0 +stopped: the sweep died while it ran", text), text
    assert re.search(r"downsample@32x16 +0/6 +0 +not run +\?", text), text


def test_an_interrupted_sweep_says_so_and_status_tells_it_from_a_dead_one(tmp_path, monkeypatch, capsys):
    from bench.pipeline import runner

    def interrupted(cfg, *args):  # noqa: ANN001, ANN202 - Ctrl-C while the first unit runs
        progress.append_event(runner.events_file(cfg), {"event": "unit", "unit": "downsample@32x16", "total": 4,
                                                        "done": 0, "pid": os.getpid()})
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_run_units", interrupted)
    cfg = build(_flat(tmp_path, methods=["downsample"], table1_sizes=[], isolate=False))
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(cfg)
    state = sweep_state(cfg.out_path)
    assert state.state == "stopped" and state.reason == "KeyboardInterrupt"
    assert [u.state for u in state.units] == ["stopped"]
    assert cli.main(["status", str(cfg.out_path)]) == 0
    text = capsys.readouterr().out
    assert "sweep STOPPED (KeyboardInterrupt" in text and "the sweep was stopped while it ran" in text, text


def test_status_before_the_sweep_starts_lists_the_units_to_come(tmp_path, capsys):
    from bench.evaluation import run_folder

    cfg = build(_flat(tmp_path))
    run_folder.write(cfg)  # what bench run writes first, before training
    state = sweep_state(cfg.out_path)
    assert state.state == "unknown"
    assert [(u.label, u.state) for u in state.units] == [
        ("downsample@32x16", "not run"), ("patching@32x16", "not run"), ("downsample@64x32", "not run")]
    assert cli.main(["status", str(cfg.out_path)]) == 0
    assert "no sweep has started here yet" in capsys.readouterr().out
