"""A process that runs one ldapToLdap job from its state file alone, for the kill tests.

    python -m tests.ldap.job_worker --state S --job J

(and, for the tests that kill it: ``start_worker``, ``kill_when``, ``settle``)

It opens a new SyncEngine on the state file and runs cycles until one exports nothing and
leaves no escrow (exit 0; 1 if that does not happen within its bounds): no ``attach``, the
template builds the LDAP connectors from the secrets stored with the application. It prints
one line per cycle, flushed, since it is meant to be killed at any moment.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import JobRunningElsewhere, SyncEngine, SystemClock, configure_logging
from engine.model import TaskExecutionResult

CYCLES = 30
ROOT = Path(__file__).resolve().parents[2]


def start_worker(state: Path, job_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ldap.job_worker", "--state", str(state), "--job", job_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], timeout: float) -> bool:
    """SIGKILL the process once ``ready()``; False if it finished first."""
    deadline = SystemClock().monotonic() + timeout
    while SystemClock().monotonic() < deadline and process.poll() is None:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            return True
        SystemClock().sleep(0.01)
    return False


def settle(state: Path, job_id: str) -> None:
    worker = start_worker(state, job_id)
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ldap.job_worker")
    parser.add_argument("--state", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    engine = SyncEngine(args.state, SystemClock())
    refused = 0
    for cycle in range(1, CYCLES + 1):
        try:
            execution = engine.run_cycle(args.job)
        except JobRunningElsewhere:  # the killed runner's lease: its pid is gone, retake it
            refused += 1
            engine.clock.sleep(0.1)
            continue
        escrows = len(engine.escrows(args.job))
        failed = execution.state is TaskExecutionResult.FAILED
        print(f"cycle={cycle} exports={execution.count_exports} escrows={escrows} "
              f"failed={int(failed)}", flush=True)  # fmt: skip
        if not failed and execution.count_exports == 0 and escrows == 0:
            print("settled=1", flush=True)
            return 0
    print(f"settled=0 refused={refused}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
