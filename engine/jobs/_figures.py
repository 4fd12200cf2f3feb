"""Every job's figures at once, for a metrics scrape: what it costs does not grow with the
jobs' schemas, nor by a query per job (a thousand jobs were 11-16 s a scrape, past
Prometheus' timeout). Statuses come from one read, escrows and staged deletes counted by
another; cycles run, live progress and waiting times from memory."""

from __future__ import annotations

import attrs

from engine.jobs._execution import Execution
from engine.jobs._rows import Shared
from engine.jobs._scheduling import Scheduling
from engine.model import SynchronizationStatus


@attrs.frozen(kw_only=True)
class JobFigures:
    """One job as /metrics shows it."""

    job_id: str
    template_id: str
    status: SynchronizationStatus | None
    #: changes seen but not in the target yet, as SyncEngine.pending_changes counts them
    pending: int
    #: cycles this engine ran of the job since it started
    cycles_run: int
    #: seconds the job has been due without a cycle of it running here (0: not due)
    waiting_seconds: float


class Figures:
    """Reads every job's figures at once."""

    def __init__(self, shared: Shared, execution: Execution, scheduling: Scheduling) -> None:
        self._shared = shared
        self._execution = execution
        self._scheduling = scheduling

    def all(self) -> list[JobFigures]:
        """The figures of every job, by id."""
        store = self._shared.store
        execution = self._execution
        live, cycles_run = dict(execution.live), execution.cycles_run
        waiting = self._scheduling.waiting(execution.running_jobs())
        held = store.held_counts(self._shared.clock.now())
        figures = []
        for job_id, template_id, status in store.job_statuses():
            progress = live.get(job_id)
            figures.append(
                JobFigures(
                    job_id=job_id,
                    template_id=template_id,
                    status=status,
                    pending=held.get(job_id, 0) + (progress.waiting if progress else 0),
                    cycles_run=cycles_run.get(job_id, 0),
                    waiting_seconds=waiting.get(job_id, 0.0),
                )
            )
        return figures
