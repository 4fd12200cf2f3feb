"""Restore: the operator's undo of a staged delete (DeleteGracePeriod), run under the job's
lease with the job's connectors, as provision on demand is; the work is engine.cycle's."""

from __future__ import annotations

from engine import cycle as cycle_module
from engine.cycle import Restored
from engine.jobs._execution import Execution


class Restores:
    """Takes back one object's staged delete: cancelled, the object enabled if it was
    disabled (engine.cycle._restore says what happens to its link, and why)."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution  # its lease: never while a cycle of the job runs

    def restore(self, job_id: str, key: str) -> Restored:
        job = self._execution.one_object(job_id)
        with self._execution.leased_context(job, "restore", job.mappings) as ctx:
            return cycle_module.restore_one(ctx, key)
