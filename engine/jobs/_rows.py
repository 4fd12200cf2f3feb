"""What every part of the engine shares: the store, the clock, the templates, and a job's
stored row (read it, its status, change it as one atomic step)."""

from __future__ import annotations

import random as random_module
from collections.abc import Callable
from typing import Any

import attrs
import structlog

from engine.clock import Clock
from engine.errors import NotFoundError
from engine.lifecycle import SCHEDULE_STATE
from engine.masking import credential_values
from engine.model import SynchronizationSchedule, SynchronizationStatus
from engine.settings import DEFAULT_INTERVAL
from engine.store import JobRow, StateStore
from engine.templates import Template


@attrs.define
class Shared:
    """The engine's collaborators, one object for all its parts: an embedder (or a test)
    that swaps the clock on the facade swaps it for every part."""

    store: StateStore
    clock: Clock
    templates: dict[str, Template]
    random: random_module.Random
    log: Any = attrs.field(factory=lambda: structlog.get_logger("syncjob.engine"))
    #: told of every job row this engine stores or deletes (None), after the store has it:
    #: the in-memory schedule follows commands and cycle ends without reading every job
    watchers: list[Callable[[str, JobRow | None], None]] = attrs.field(factory=list)

    def row(self, job_id: str) -> JobRow:
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return row

    def update(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow:
        """``change`` applied to the job's stored row as one atomic step (StateStore.
        update_job): a command, a schema save and a cycle's end never undo one another."""
        new = self.store.update_job(job_id, change)
        if new is None:
            raise NotFoundError(f"no job {job_id!r}")
        self.changed(job_id, new)
        return new

    def changed(self, job_id: str, row: JobRow | None) -> None:
        """Tell the watchers the job's row is now ``row`` (None: the job is gone)."""
        for watcher in list(self.watchers):
            watcher(job_id, row)

    def template_of(self, row: JobRow) -> Template | None:
        return self.templates.get(row.job.template_id)

    def secret_values(self, row: JobRow) -> list[str]:
        """The secret values messages must not show (credentials: see engine.masking)."""
        return credential_values(self.store.get_secrets(row.application_id))


def status_of(row: JobRow) -> SynchronizationStatus:
    return row.job.status or SynchronizationStatus()


def with_status(
    row: JobRow,
    status: SynchronizationStatus,
    *,
    next_run: Any = None,
    force_deletes: bool | None = None,
) -> JobRow:
    """The row with a new status, its schedule's state following the status code."""
    schedule = row.job.schedule or SynchronizationSchedule(interval=DEFAULT_INTERVAL)
    schedule = attrs.evolve(schedule, state=SCHEDULE_STATE[status.code])
    job = attrs.evolve(row.job, status=status, schedule=schedule)
    return JobRow(
        application_id=row.application_id,
        job=job,
        next_run=next_run if next_run is not None else row.next_run,
        force_deletes=row.force_deletes if force_deletes is None else force_deletes,
    )
