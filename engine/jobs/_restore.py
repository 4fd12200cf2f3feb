"""Restore: the operator's undo of a staged delete (DeleteGracePeriod), run under the job's
lease with the job's connectors, as provision on demand is; the work is engine.cycle's."""

from __future__ import annotations

import uuid

from engine import cycle as cycle_module
from engine.cycle import Restored
from engine.errors import TransitionError
from engine.jobs._connections import Connections
from engine.jobs._execution import Execution
from engine.jobs._mappings import CompiledMappings
from engine.jobs._rows import Shared, status_of
from engine.model import StatusCode
from engine.settings import JobSettings


class Restores:
    """Takes back one object's staged delete: cancelled, the object enabled if it was
    disabled (engine.cycle._restore says what happens to its link, and why)."""

    def __init__(
        self,
        shared: Shared,
        connections: Connections,
        mappings: CompiledMappings,
        execution: Execution,
    ) -> None:
        self._shared = shared
        self._connections = connections
        self._mappings = mappings
        self._execution = execution  # its lease: never while a cycle of the job runs

    def restore(self, job_id: str, key: str) -> Restored:
        shared = self._shared
        row = shared.row(job_id)  # NotFoundError for an unknown job
        if status_of(row).code is StatusCode.NOT_CONFIGURED:
            raise TransitionError("the job is not configured: its required secrets are missing")
        source, target = self._connections.for_row(row)
        settings = JobSettings.parse(
            row.job.synchronization_job_settings, shared.store.get_secrets(row.application_id)
        )
        ctx = cycle_module.CycleContext(
            job_id=job_id,
            cycle_id=f"restore-{uuid.uuid4().hex}",
            store=shared.store,
            source=source,
            target=target,
            clock=shared.clock,
            settings=settings,
            mappings=self._mappings.of(row, settings),
            should_stop=lambda: False,
            random=shared.random,
            lease=self._execution.acquire(job_id),
            lease_duration=self._execution.lease_duration,
        )
        try:
            return cycle_module.restore_one(ctx, key)
        finally:
            assert ctx.lease is not None
            shared.store.release_lease(ctx.lease)
