"""What every throwaway server process of the tests needs: to die with the test run, to be
stopped for sure, and to show its last output when it would not start."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from pathlib import Path


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (Linux prctl), so a
    killed test run leaves no server behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM (after SIGCONT: a paused server could not act on it), SIGKILL after
    ``timeout``; nothing if it is gone already."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def tail(log: Path, lines: int = 40) -> str:
    """The last lines a server wrote, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
