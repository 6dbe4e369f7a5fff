"""Runs that cannot collide: unit workers that die with their parent, and a lock on ``out_dir``.

- :func:`worker_preexec` gives each unit subprocess, before it starts, its own process group and,
  on Linux, the kernel's promise of a SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
  A ``kill -9`` of ``bench run`` alone so never leaves a worker appending records while a rerun
  does the same unit.
- :func:`out_dir_lock` holds an exclusive ``flock`` on ``<out_dir>/.bench.lock`` (with the
  holder's pid written in it) for the whole run; the workers inherit it. The kernel drops the
  lock when the last of them dies, so the lock of a killed run is taken over without any
  clean-up; a live holder is named. Every exit the process sees (the end, an error, a signal)
  removes the file; only a ``kill -9`` leaves it, for the next run to take over and remove.
- :func:`clean_stale_temp` removes the temporary folders of runs whose process is gone.
- :func:`exit_on_signals` turns SIGINT and SIGTERM into :class:`Interrupted`, which unwinds every
  ``finally`` (a unit worker is killed by ``subprocess.run`` on the way out, the lock removed) and
  which the command prints as one line with the exit code 128 + the signal's number.
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


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a finishing holder unlinks it before unlocking)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _open_lock(out_dir: Path) -> tuple[Path, int]:
    """Create ``out_dir`` and open its lock file; a folder that cannot be made or written is a :class:`UserError`."""
    path = out_dir / LOCK_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return path, os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out_dir) else ""
        raise UserError(f"out_dir: {out_dir} cannot be created or written: {err.strerror}{where}; "
                        f"give a writable out_dir=") from err


@contextlib.contextmanager
def out_dir_lock(out_dir: Path, wait_s: float = 5.0) -> Iterator[int]:
    """Hold ``<out_dir>/.bench.lock`` for the block; yields the lock's file descriptor.

    A lock whose recorded holder is dead but still held belongs to that run's workers, which
    the kernel is killing with their parent: it is waited for up to ``wait_s`` seconds. The file
    is removed when the block ends, however it ends. A holder removes it while it still holds
    the lock, and a taker checks after locking that the path still names the file it locked (or
    starts again on the new one), so two runs never hold locks on two different files.

    Raises:
        UserError: another live run holds the lock (its pid is named); ``out_dir`` cannot be
            created or written.
    """
    deadline = time.monotonic() + wait_s
    while True:
        path, fd = _open_lock(out_dir)
        locked = False
        try:
            while not _try_lock(fd):
                holder = _holder(path)
                if (holder is not None and pid_alive(holder)) or time.monotonic() > deadline:
                    who = f"pid {holder}" if holder is not None else "an unknown process"
                    raise UserError(f"out_dir {out_dir} is in use by another bench run ({who}, lock {path}); wait "
                                    f"for it to finish or give another out_dir=")
                time.sleep(0.05)
            locked = True
            if not _same_file(fd, path):  # the holder finished and removed it meanwhile: lock the current one
                locked = False
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield fd
            return
        finally:
            if locked and _same_file(fd, path):
                path.unlink(missing_ok=True)  # while still locked: a waiting run then retries on a fresh file
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


class Interrupted(SystemExit):
    """SIGINT or SIGTERM arrived; ``code`` is the shell's exit status for it (130, 143), ``name`` the signal's.

    A ``SystemExit``, so not an ``Exception``: the sweep's ``except Exception`` (a failing unit is
    recorded and the sweep goes on) does not record an interruption as a unit's failure, and code
    that tells a stopped sweep from a crashed one by ``SystemExit.code`` reads 130 or 143.
    """

    code: int

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def exit_on_signals(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Raise :class:`Interrupted` on each of ``signums`` inside the block, so every ``finally`` runs.

    A second signal while the first unwinds is ignored, so that the clean-up (the worker killed,
    the lock removed) is not itself interrupted. Only the main thread may set handlers; elsewhere
    the block runs unchanged.
    """
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in signums}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def exit_on_sigterm() -> contextlib.AbstractContextManager[None]:
    """:func:`exit_on_signals` for SIGTERM alone (callers that keep Ctrl-C's default)."""
    return exit_on_signals((signal.SIGTERM,))
