"""Which started jobs are due, and how long until the next one is: what a Runner (or a
test calling run_pending) asks before it runs cycles."""

from __future__ import annotations

from collections.abc import Callable, Collection

from engine.jobs._connections import Connections
from engine.jobs._rows import Shared, status_of
from engine.lifecycle import is_runnable


class Scheduling:
    """Reads the schedule from the stored rows; keeps nothing but the listeners to wake."""

    def __init__(self, shared: Shared, connections: Connections) -> None:
        self._shared = shared
        self._connections = connections
        self._warned: set[str] = set()
        #: called when a command makes a job due at once (a Runner wakes up)
        self.due_listeners: list[Callable[[], None]] = []

    def now_due(self) -> None:
        """Tell the schedule's listeners (a Runner) that a job became due now."""
        for listener in list(self.due_listeners):
            listener()

    def due_jobs(self) -> list[str]:
        return self._schedule(())[0]

    def seconds_until_due(self, running: Collection[str]) -> float | None:
        return self._schedule(running)[1]

    def _schedule(self, running: Collection[str]) -> tuple[list[str], float | None]:
        now = self._shared.clock.now()
        due: list[str] = []
        wait: float | None = None
        for row in self._shared.store.list_jobs():
            status = status_of(row)
            if not is_runnable(status.code):
                continue
            if not self._connections.buildable(row):
                if row.job.id not in self._warned:
                    self._warned.add(row.job.id)
                    self._shared.log.warning("job_without_connectors", job_id=row.job.id)
                continue
            schedule = row.job.schedule
            if schedule and schedule.expiration and now > schedule.expiration:
                continue
            if row.next_run is None or row.next_run <= now:
                due.append(row.job.id)
            if row.job.id in running:
                continue
            left = 0.0 if row.next_run is None else max((row.next_run - now).total_seconds(), 0)
            wait = left if wait is None else min(wait, left)
        return due, wait
