"""A runner process for the kill tests: one job over SqliteDirectory source and target.

    python -m tests.crash.worker --state S --source A --target B --job J --mode loop|settle

``loop`` runs cycles until it is killed, counting the cycles another runner refused it
(JobRunningElsewhere); ``settle`` runs cycles until one exports nothing and no escrow is left,
then exits 0 (1 when that does not happen within its bounds). ``--write-delay-ms`` makes the
target answer each write late, like a remote directory. It prints ``ready=1`` once the job has
its connectors, then counts only, one line per event, flushed (it is meant to be killed).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

from engine import JobRunningElsewhere, SyncEngine, SystemClock, configure_logging
from engine.errors import LeaseLost
from engine.model import TaskExecutionResult
from tests.crash.sqlite_directory import SqliteDirectory

SETTLE_CYCLES = 40  # cycles that export something before settle gives up
SETTLE_REFUSALS = 300  # JobRunningElsewhere answers before settle gives up (~30 s)


def say(**counts: int | str) -> None:
    print(" ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


def loop(engine: SyncEngine, job_id: str, rng: random.Random) -> int:
    cycles = elsewhere = lost = 0
    while True:
        try:
            engine.run_cycle(job_id)
            cycles += 1
        except JobRunningElsewhere as exc:
            elsewhere += 1
            lost += isinstance(exc, LeaseLost)
        say(cycles=cycles, elsewhere=elsewhere, lost=lost)
        engine.clock.sleep(rng.uniform(0.0, 0.005))


def settle(engine: SyncEngine, job_id: str) -> int:
    cycles = refused = 0
    while cycles < SETTLE_CYCLES and refused < SETTLE_REFUSALS:
        try:
            execution = engine.run_cycle(job_id)
        except JobRunningElsewhere:
            refused += 1
            engine.clock.sleep(0.1)
            continue
        cycles += 1
        escrows = len(engine.escrows(job_id))
        failed = execution.state is TaskExecutionResult.FAILED
        say(
            cycles=cycles,
            exports=execution.count_exports,
            escrows=escrows,
            failed=int(failed),
            elsewhere=refused,
        )
        if not failed and execution.count_exports == 0 and escrows == 0:
            say(settled=1, cycles=cycles)
            return 0
    say(settled=0, cycles=cycles, elsewhere=refused)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash.worker")
    parser.add_argument("--state", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--mode", choices=("loop", "settle"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING", help="the engine's logs, on stderr")
    parser.add_argument(
        "--write-delay-ms", type=float, default=0.0, help="the target answers each write late"
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    engine = SyncEngine(args.state, SystemClock())
    source = SqliteDirectory(args.source, id_prefix="s")
    target = SqliteDirectory(args.target, id_prefix="t")
    target.write_delay = args.write_delay_ms / 1000
    engine.attach(args.job, source, target)
    say(ready=1)
    if args.mode == "loop":
        return loop(engine, args.job, random.Random(args.seed))
    return settle(engine, args.job)


if __name__ == "__main__":
    sys.exit(main())
