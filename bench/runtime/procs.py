"""Runs that cannot collide: unit workers that die with their parent, and a lock on ``out_dir``.

- :func:`worker_preexec` gives each unit subprocess, before it starts, its own process group and,
  on Linux, the kernel's promise of a SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
  A ``kill -9`` of ``bench run`` alone so never leaves a worker appending records while a rerun
  does the same unit.
- :func:`out_dir_lock` holds an exclusive ``flock`` on ``<out_dir>/.bench.lock`` (with the
  holder's pid written in it) for the whole run; the workers inherit it. The kernel drops the
  lock when the last of them dies, so the lock of a killed run is taken over without any
  clean-up; a live holder is named.
- :func:`clean_stale_temp` removes the temporary folders of runs whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.core.errors import UserError

LOCK_NAME = ".bench.lock"
TEMP_PREFIX = ".sweep-"  # <out_dir>/.sweep-<pid>-<random>/config.json of a running sweep
_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (Linux), or None elsewhere; resolved in the parent, never after a fork."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl


def worker_preexec(parent_pid: int) -> Callable[[], None]:
    """The ``preexec_fn`` of a unit worker: its own process group, and death with ``parent_pid``.

    The returned function runs in the forked child before ``exec``. Loading a library there
    could deadlock on a lock another thread of the parent held at the fork, so ``prctl`` is
    looked up here, in the parent, and the child only makes two system calls.
    """
    prctl = _prctl()

    def preexec() -> None:
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # the parent may have died between fork and prctl: then nobody would ever send the signal
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def pid_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno == errno.EPERM
    return True


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def out_dir_lock(out_dir: Path, wait_s: float = 5.0) -> Iterator[int]:
    """Hold ``<out_dir>/.bench.lock`` for the block; yields the lock's file descriptor.

    A lock whose recorded holder is dead but still held belongs to that run's workers, which
    the kernel is killing with their parent: it is waited for up to ``wait_s`` seconds.

    Raises:
        UserError: another live run holds the lock (its pid is named).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while not _try_lock(fd):
            holder = _holder(path)
            if (holder is not None and pid_alive(holder)) or time.monotonic() > deadline:
                who = f"pid {holder}" if holder is not None else "an unknown process"
                raise UserError(f"out_dir {out_dir} is in use by another bench run ({who}, lock {path}); wait for "
                                f"it to finish or give another out_dir=")
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield fd
    finally:
        os.close(fd)  # closing drops the flock


def clean_stale_temp(out_dir: Path) -> list[Path]:
    """Remove ``<out_dir>/.sweep-<pid>-*`` folders whose pid is gone (a killed run's config.json)."""
    removed = []
    for folder in sorted(out_dir.glob(f"{TEMP_PREFIX}*")):
        pid = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` for the block, so ``finally`` clean-ups run.

    Only the main thread may set handlers; elsewhere the block runs unchanged.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_exit)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
