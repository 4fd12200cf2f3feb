"""Runner: run due jobs' cycles in the background, beside the HTTP API (``syncjob serve``).

A scheduling thread wakes when the next job falls due (at most ``interval`` seconds later,
at once when a cycle ends or a command makes a job due) and submits the cycles of due jobs to a
bounded pool of ``workers`` threads, earliest due first: a job that has just run waits behind
every job that was due before it ended, so with more due jobs than workers each gets its turn.
A job is never submitted while a cycle of it runs here (a set of running job ids); across
processes, the engine's lease refuses a second cycle (``JobRunningElsewhere``, logged and
skipped).

Shutdown (:meth:`Runner.stop`) sets a stop flag that every running cycle's ``should_stop`` sees:
each ends at its next checkpoint, as a pause would, but the job stays started and due at once, so
the next start resumes it. ``stop`` then waits for those cycles (they end at the checkpoint)
and joins the thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from engine.errors import JobRunningElsewhere
from engine.jobs import SyncEngine

DEFAULT_INTERVAL = 1.0  # longest sleep between scheduling passes (seconds)
MAX_REST = 60.0  # longest a job whose attempts keep raising waits between them (seconds)
MIN_SLEEP = 0.005  # shortest: a clock that is a little off cannot make the pass spin


class Runner:
    """Run the cycles of ``engine``'s due jobs on ``workers`` threads until :meth:`stop`.

    :meth:`run_once` is one synchronous scheduling pass (the testable core); :meth:`start`
    loops it in a daemon thread. Due-ness is read from ``engine.clock`` (a ManualClock in tests).
    """

    def __init__(
        self, engine: SyncEngine, workers: int = 2, *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        if workers < 1:
            raise ValueError("a runner needs at least one worker")
        if interval <= 0:
            raise ValueError("the wake-up interval must be longer than zero")
        self.engine = engine
        self.workers = workers
        self.interval = interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syncjob-cycle")
        self._lock = threading.Lock()
        self._running: dict[str, Future[None]] = {}
        self._resting: dict[str, float] = {}  # job id -> clock.monotonic() it may run again
        self._strikes: dict[str, int] = {}  # job id -> attempts in a row that raised
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = structlog.get_logger("syncjob.runner")

    @property
    def running(self) -> frozenset[str]:
        """The ids of the jobs whose cycle runs (or waits for a worker) now."""
        with self._lock:
            return frozenset(self._running)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_once(self) -> list[Future[None]]:
        """One scheduling pass: submit the due jobs not running here, earliest due first
        (the one waiting longest), as many as workers are free; returns the futures of the
        cycles submitted (already finished or not). The engine's schedule is in memory, so a
        pass with nothing due reads nothing, however many jobs there are."""
        if self._stopping.is_set():
            return []
        with self._lock:
            free = self.workers - len(self._running)
            busy = set(self._running)
        if free <= 0:
            return []  # the rest stay due: a cycle's end wakes the next pass
        submitted: list[Future[None]] = []
        for job_id in self.engine.due_jobs(limit=free, skip=busy | self._resting_now()):
            with self._lock:
                if self._stopping.is_set() or len(self._running) >= self.workers:
                    break
                if job_id in self._running:
                    continue
                future: Future[None] = Future()
                self._running[job_id] = future
            self._pool.submit(self._cycle, job_id, future)
            submitted.append(future)
        return submitted

    def _cycle(self, job_id: str, future: Future[None]) -> None:
        try:
            self.engine.run_cycle(job_id, stop=self._stopping.is_set)
            with self._lock:
                self._strikes.pop(job_id, None)
        except JobRunningElsewhere:
            self._log.info("job_running_elsewhere", job_id=job_id)
            self._rest(job_id)
        except Exception:  # one job's failure never stops the runner or the other jobs
            self._log.exception("job_run_failed", job_id=job_id)
            self._rest(job_id)  # still due: not again before the next interval
        finally:
            with self._lock:
                self._running.pop(job_id, None)
            future.set_result(None)
            self._wake.set()  # a worker is free: look for due jobs now

    def _rest(self, job_id: str) -> None:
        """Keep a job whose attempt raised out for ``interval``, doubling with each attempt
        in a row that raises (up to MAX_REST): a broken job costs little, a passing hiccup
        (another runner's lease) is retried soon."""
        with self._lock:
            strikes = self._strikes[job_id] = self._strikes.get(job_id, 0) + 1
            rest = min(self.interval * 2.0 ** min(strikes - 1, 16), max(MAX_REST, self.interval))
            self._resting[job_id] = self.engine.clock.monotonic() + rest

    def _resting_now(self) -> set[str]:
        """Jobs whose last attempt here raised: they stay due, but wait ``interval``."""
        now = self.engine.clock.monotonic()
        with self._lock:
            for job_id in [j for j, until in self._resting.items() if until <= now]:
                del self._resting[job_id]
            return set(self._resting)

    def start(self) -> None:
        """Start the scheduling thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the runner has been started already")
        self.engine.due_listeners.append(self._wake.set)
        self._thread = threading.Thread(target=self._loop, name="syncjob-runner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the pass: a wake-up during it means "look again"
            try:
                self.run_once()
                sleep = self.next_sleep()
            except Exception:  # e.g. the store briefly unreadable: try again next pass
                self._log.exception("runner_pass_failed")
                sleep = self.interval
            self._wake.wait(sleep)

    def next_sleep(self) -> float:
        """Seconds until the next pass: until the next job not running here falls due, at
        most ``interval``; the whole ``interval`` while every worker is busy (a cycle's end
        wakes the loop)."""
        running = self.running
        if len(running) >= self.workers:
            return self.interval
        due_in = self.engine.seconds_until_due(running | self._resting_now())
        if due_in is None:
            return self.interval
        return min(max(due_in, MIN_SLEEP), self.interval)

    def request_stop(self) -> None:
        """Ask running cycles to end at their next checkpoint and submit no more; returns at
        once (safe from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the scheduling thread and the running cycles to end."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._wake.set in self.engine.due_listeners:
                self.engine.due_listeners.remove(self._wake.set)
        self._pool.shutdown(wait=True)
        self._log.info("runner_stopped")

    def stop(self, timeout: float | None = None) -> None:
        """:meth:`request_stop`, then :meth:`join`."""
        self.request_stop()
        self.join(timeout)
