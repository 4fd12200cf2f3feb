"""Who uses a state file: ``syncjob serve`` holds it alone, ``syncjob run --once`` holds it
shared with other ``run --once`` processes (each job's lease keeps their cycles apart).

The lock is an ``flock`` on ``<state>.lock`` (mode 0600), so the kernel drops it when its
holder exits in any way, SIGKILL included: a stale lock cannot block a start. The serving
process writes who it is into the file (pid, host, address, since when) for the message the
next one shows; nothing decides on that text. A state file on a network file system where
``flock`` is not shared between hosts is not protected across hosts (the job leases still
keep two cycles of one job apart).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

import attrs

from engine.clock import SystemClock
from engine.errors import SyncJobError

LOCK_SUFFIX = ".lock"


class StateInUse(SyncJobError):
    """Another live process already uses the state file in a way that excludes this one."""


class StateLockUnavailable(SyncJobError):
    """The lock file cannot be opened (a directory, no permission, a read-only file system,
    a symbolic link): said plainly, not as a traceback."""


@attrs.define
class StateLock:
    """A held lock; ``release`` (or the process's end) lets the next holder in."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + LOCK_SUFFIX)


def hold_for_serve(state: Path, address: str) -> StateLock:
    """The state file for a daemon, alone; StateInUse naming who has it otherwise."""
    path = lock_path(state)
    fd = _open(path)
    if not _try(fd, fcntl.LOCK_EX):
        shared = _try(fd, fcntl.LOCK_SH)  # only `run --once` processes hold it shared
        holder = None if shared else _holder(path)
        os.close(fd)
        if shared:
            raise StateInUse(
                f"a syncjob run --once is running a cycle on {state}; "
                "start the daemon once it has ended"
            )
        raise StateInUse(f"{_serving(holder)} already runs the jobs of {state}")
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "address": address,
        "since": SystemClock().now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    return StateLock(path, fd)


def hold_for_run(state: Path) -> StateLock:
    """The state file for one ``run --once``, shared with others like it; StateInUse while
    a daemon serves it (the daemon runs its jobs: start or pause them through it)."""
    path = lock_path(state)
    fd = _open(path)
    if not _try(fd, fcntl.LOCK_SH):
        holder = _holder(path)
        os.close(fd)
        raise StateInUse(
            f"{_serving(holder)} runs the jobs of {state}: stop it first, or let it run the "
            "job (syncjob jobs start JOB)"
        )
    return StateLock(path, fd)


def _open(path: Path) -> int:
    """The lock file, never through a symbolic link (the serving process truncates and
    writes it: a link planted there must not make it overwrite another file)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise StateLockUnavailable(f"cannot open the state's lock file {path}: {reason}") from None


def _try(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _serving(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another syncjob serve"
    where = f" on {holder.get('host')}" if holder.get("host") != socket.gethostname() else ""
    return (
        f"syncjob serve (pid {holder.get('pid')}{where}, listening on {holder.get('address')}, "
        f"since {holder.get('since')})"
    )
