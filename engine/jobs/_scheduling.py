"""Which started jobs are due, earliest first, and how long until the next one is: what a
Runner (or run_pending) asks before it runs cycles.

The schedule is held in memory, a heap of next-due times (engine.jobs._due_heap), so that a
scheduling pass looks at its top instead of reading every job: with a thousand paused jobs an
idle pass reads nothing, and a job that has just run goes behind every job that was due
before it ended (no job starves because of where its id sorts). It is built from the store on
first use and follows every job row this engine stores (Shared.watchers: commands, secrets
that configure jobs, cycle ends). The store stays the authority: a job is read again before
it is handed out as due, and the schedule is compared with the store's status codes and next
runs (not whole jobs) every RESYNC_SECONDS, and by run_pending, for what another engine on
the same store changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime

from engine.jobs._connections import Connections
from engine.jobs._due_heap import DueHeap
from engine.jobs._rows import Shared, status_of
from engine.lifecycle import is_runnable
from engine.model import StatusCode
from engine.store import JobRow

RESYNC_SECONDS = 60.0  # how stale the schedule may get for another engine's changes
_ALWAYS = datetime.min.replace(tzinfo=UTC)  # a started job with no next run: due already


class Scheduling:
    """The started jobs that can run (connectors, schedule not expired) by next-due time."""

    def __init__(self, shared: Shared, connections: Connections) -> None:
        self._shared = shared
        self._connections = connections
        self._warned: set[str] = set()
        #: called when a command makes a job due at once (a Runner wakes up)
        self.due_listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()  # the heap and the bookkeeping beside it
        self._reading = threading.RLock()  # one resync or re-read of due jobs at a time
        self._heap = DueHeap()
        #: every job's (status code, next run) as last seen: what a resync compares
        self._known: dict[str, tuple[StatusCode, datetime | None]] = {}
        #: job id -> the count of rows noted when its own last was: a row read from the store
        #: before that is older than what the schedule holds, and is dropped
        self._noted: dict[str, int] = {}
        self._changes = 0
        #: job id -> when it was last handed out (a count): among jobs due at the same
        #: instant, the one whose turn is oldest goes first
        self._turns: dict[str, int] = {}
        self._handed_out = 0
        self._synced_at: float | None = None
        shared.watchers.append(self.note)

    def now_due(self) -> None:
        """Tell the schedule's listeners (a Runner) that a job became due now."""
        for listener in list(self.due_listeners):
            listener()

    def note(self, job_id: str, row: JobRow | None) -> None:
        """The row this engine has just stored for the job (None: deleted)."""
        due = None if row is None else self._due_time(row)
        with self._lock:
            self._changes += 1
            self._noted[job_id] = self._changes
            self._apply(job_id, row, due)

    def due_jobs(self, limit: int | None = None, skip: Collection[str] = ()) -> list[str]:
        """Due jobs not in ``skip``, earliest due first (the longest waiting first), at most
        ``limit``; each read again from the store first, so none is handed out that another
        engine paused, deleted or ran meanwhile."""
        with self._reading:
            self._resync_if_stale()
            now = self._shared.clock.now()
            chosen: list[str] = []
            checked: set[str] = set()
            while limit is None or len(chosen) < limit:
                want = None if limit is None else limit - len(chosen)
                with self._lock:
                    candidates: list[str] = []
                    for due, job_id in self._heap.ordered():
                        if due > now or (want is not None and len(candidates) >= want):
                            break
                        if job_id not in skip and job_id not in checked:
                            candidates.append(job_id)
                if not candidates:
                    break
                checked.update(candidates)
                self._read(candidates)
                with self._lock:
                    for job_id in candidates:
                        due_at = self._heap.due_of(job_id)
                        if due_at is not None and due_at <= now:
                            chosen.append(job_id)
                            self._handed_out += 1
                            self._turns[job_id] = self._handed_out
            return chosen

    def seconds_until_due(self, running: Collection[str]) -> float | None:
        """Seconds until the first job not in ``running`` is due (0: one is), None if none."""
        with self._reading:
            self._resync_if_stale()
        now = self._shared.clock.now()
        with self._lock:
            for due, job_id in self._heap.ordered():
                if job_id not in running:
                    return max((due - now).total_seconds(), 0.0)
        return None

    def waiting(self, running: Collection[str]) -> dict[str, float]:
        """Seconds each due job not in ``running`` has been due (waiting for a worker, or
        for a runner at all), from what the schedule holds; jobs not due are left out."""
        with self._reading:
            self._resync_if_stale()
        now = self._shared.clock.now()
        waited: dict[str, float] = {}
        with self._lock:
            for due, job_id in self._heap.ordered():
                if due > now:
                    break
                if job_id not in running:
                    waited[job_id] = 0.0 if due == _ALWAYS else (now - due).total_seconds()
        return waited

    def resync(self) -> None:
        """Compare the schedule with the store's status codes and next runs; read again,
        whole, only the jobs that can run and differ from what the schedule saw of them."""
        with self._reading:
            with self._lock:
                mark = self._changes
            stored = self._shared.store.job_schedule()
            ids = {job_id for job_id, _, _ in stored}
            differing: list[str] = []
            with self._lock:
                for job_id, code, next_run in stored:
                    if self._noted.get(job_id, 0) > mark or self._known.get(job_id) == (
                        code,
                        next_run,
                    ):
                        continue
                    if is_runnable(code):
                        differing.append(job_id)
                    else:  # nothing but the code decides: no need to read the job
                        self._known[job_id] = (code, next_run)
                        self._heap.discard(job_id)
                for job_id in [j for j in self._known if j not in ids]:
                    if self._noted.get(job_id, 0) <= mark:
                        self._apply(job_id, None, None)
                for job_id in [j for j, n in self._noted.items() if n <= mark and j not in ids]:
                    del self._noted[job_id]  # gone from the store, and not seen since
            self._read(differing)
            self._synced_at = self._shared.clock.monotonic()

    def _resync_if_stale(self) -> None:
        if self._synced_at is None:
            self.resync()
            return
        elapsed = self._shared.clock.monotonic() - self._synced_at
        if not 0 <= elapsed < RESYNC_SECONDS:  # negative: another clock was set
            self.resync()

    def _read(self, job_ids: Iterable[str]) -> None:
        """Each job's row as stored now; one noted while it was read is newer and kept."""
        for job_id in job_ids:
            with self._lock:
                mark = self._changes
            row = self._shared.store.get_job(job_id)
            due = None if row is None else self._due_time(row)
            with self._lock:
                if self._noted.get(job_id, 0) <= mark:
                    self._apply(job_id, row, due)

    def _apply(self, job_id: str, row: JobRow | None, due: datetime | None) -> None:
        """Under the lock: the schedule holds ``row`` for the job, due at ``due`` (None: not
        scheduled)."""
        if row is None:
            self._known.pop(job_id, None)
            self._turns.pop(job_id, None)
        else:
            self._known[job_id] = (status_of(row).code, row.next_run)
        if due is None:
            self._heap.discard(job_id)
        else:
            self._heap.set(job_id, due, self._turns.get(job_id, 0))

    def _due_time(self, row: JobRow) -> datetime | None:
        """When the job is due, or None if it is not to run: not started, without
        connectors, or its schedule expired."""
        if not is_runnable(status_of(row).code):
            return None
        if not self._connections.buildable(row):
            if row.job.id not in self._warned:
                self._warned.add(row.job.id)
                self._shared.log.warning("job_without_connectors", job_id=row.job.id)
            return None
        schedule = row.job.schedule
        if schedule and schedule.expiration and self._shared.clock.now() > schedule.expiration:
            return None
        return row.next_run or _ALWAYS
