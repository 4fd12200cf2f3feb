"""``syncjob serve`` as a real process for the tests: started on a free port of 127.0.0.1,
ready once ``/healthz`` answers, stopped by the caller (or by its death: PR_SET_PDEATHSIG)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests

from engine import SystemClock
from tests.processes import die_with_parent, tail

CLOCK = SystemClock()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(
    state: Path,
    log: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    preexec: Callable[[], None] = die_with_parent,
) -> tuple[subprocess.Popen[bytes], str]:
    """The process and its URL, once it answers ``/healthz`` (20 s at most; its output goes to
    ``log``, shown when it exits early). The caller stops it (tests.processes.terminate).
    ``args`` go after the port and the state (e.g. ``--config FILE``: those two still win);
    ``preexec`` runs in the child before exec (it should call ``die_with_parent``)."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--port", str(port)]
            + ["--state", str(state), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            preexec_fn=preexec,  # noqa: PLW1509 (servers start from one thread)
        )
    url = f"http://127.0.0.1:{port}"
    deadline = CLOCK.monotonic() + 20
    while True:
        assert process.poll() is None, f"serve exited {process.returncode}: {tail(log)}"
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            pass
        assert CLOCK.monotonic() < deadline, "serve did not answer /healthz in 20 s"
        CLOCK.sleep(0.05)
