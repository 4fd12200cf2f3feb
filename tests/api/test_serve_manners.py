"""``syncjob serve`` tells the operator what it is doing (where it listens, its state file and
jobs, when it stops), and a state file is served by one process: a second daemon or a
``run --once`` on it is refused at its start, and a SIGKILLed holder blocks nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.jobs import SyncEngine
from engine.service.cli import main
from engine.service.serve import TOKENS_ENV
from engine.service.state_lock import hold_for_run
from tests.api.daemon import free_port, start_daemon
from tests.processes import tail, terminate

TOKEN = "manners-token-Xk7pQ2rM9vL4"
ENV = {**os.environ, TOKENS_ENV: TOKEN}


def _state_with_a_job(tmp_path: Path) -> tuple[Path, str]:
    state = tmp_path / "s.db"
    with SyncEngine(state) as engine:
        job = engine.create_job("memoryToMemory").id
        assert job is not None
    return state, job


def _serve_again(state: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A second ``syncjob serve`` on ``state``: it must refuse at once, not serve."""
    command = [sys.executable, "-m", "engine", "serve", "--port", str(free_port())]
    return subprocess.run(
        [*command, "--state", str(state)],
        env=ENV, capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path,
    )  # fmt: skip


def test_serve_says_where_it_listens_its_state_and_jobs_and_when_it_stops(
    tmp_path: Path,
) -> None:
    state, job = _state_with_a_job(tmp_path)
    log = tmp_path / "serve.log"
    process, url = start_daemon(state, log, ENV)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, tail(log)
    finally:
        terminate(process)
    lines = log.read_text().splitlines()
    said = [line for line in lines if line.startswith(("syncjob serve: ", "  "))]
    assert said[0] == f"syncjob serve: listening on {url} (pid {process.pid})"
    assert said[1] == f"syncjob serve: state {state.resolve()}"
    assert said[2] == "syncjob serve: 1 job(s):"
    assert said[3] == f"  {job}\tmemoryToMemory\tNotRun"
    assert said[-1] == "syncjob serve: stopped on SIGTERM; 0 cycle(s) run since the start"


def test_a_second_daemon_on_the_same_state_is_refused_and_a_killed_one_blocks_nobody(
    tmp_path: Path,
) -> None:
    state, _ = _state_with_a_job(tmp_path)
    first, url = start_daemon(state, tmp_path / "first.log", ENV)
    try:
        second = _serve_again(state, tmp_path)
        assert second.returncode == 1, second.stdout + second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith(f"syncjob serve: syncjob serve (pid {first.pid}, listening on ")
        assert f"already runs the jobs of {state}" in message
        assert "listening on http" not in second.stderr.replace(message, "")  # never served

        ran = CliRunner().invoke(main, ["run", "x", "--once", "--state", str(state)])
        assert ran.exit_code == 1
        assert f"syncjob serve (pid {first.pid}, listening on {url}" in ran.output
        assert "stop it first" in ran.output

        first.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel drops its lock
        first.wait(10)
        third, _ = start_daemon(state, tmp_path / "third.log", ENV)
        terminate(third)
    finally:
        terminate(first)


def test_a_daemon_is_refused_while_a_run_once_holds_the_state(tmp_path: Path) -> None:
    state, _ = _state_with_a_job(tmp_path)
    with hold_for_run(state):  # what `syncjob run --once` holds while its cycle runs
        refused = _serve_again(state, tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "a syncjob run --once is running a cycle on" in refused.stderr
        with hold_for_run(state):  # two run --once (of different jobs) share it
            pass
    first, _ = start_daemon(state, tmp_path / "serve.log", ENV)
    terminate(first)
