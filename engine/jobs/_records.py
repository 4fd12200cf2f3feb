"""What a job has recorded: its provisioning log, its escrows, and what it still owes the
target (pending changes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

import attrs

from engine.cycle import CycleProgress
from engine.jobs._rows import Shared
from engine.store import Checkpoint, LogRecord
from engine.store.base import Escrow


class Records:
    """Reads of the store for one job at a time (NotFoundError for an unknown job), and the
    one write an operator makes to escrows: send them through again."""

    def __init__(self, shared: Shared, live: Callable[[str], CycleProgress | None]) -> None:
        self._shared = shared
        self._live = live  # where a cycle running in this process stands

    def provisioning_logs(self, job_id: str, cycle_id: str | None, limit: int) -> list[LogRecord]:
        self._shared.row(job_id)
        return self._shared.store.provisioning_logs(job_id, cycle_id, limit)

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        self._shared.row(job_id)
        return self._shared.store.log_batches(job_id)

    def pending_changes(self, job_id: str) -> int:
        self._shared.row(job_id)
        live = self._live(job_id)
        waiting = live.waiting if live is not None else 0
        store = self._shared.store
        now = self._shared.clock.now()
        # a delete waiting out DeleteGracePeriod is scheduled, not owed: counted once due
        deletes = sum(s.due is None or s.due <= now for s in store.staged_deletes(job_id))
        return len(store.get_escrows(job_id)) + deletes + waiting

    def escrows(self, job_id: str) -> list[Escrow]:
        self._shared.row(job_id)
        return self._shared.store.get_escrows(job_id)

    def replay_escrows(self, job_id: str, anchors: Sequence[str] | None) -> int:
        self._shared.row(job_id)
        wanted = None if anchors is None else set(anchors)
        now = self._shared.clock.now()
        chosen = [
            attrs.evolve(e, parked=False, next_retry=now, first_failed=now)
            for e in self._shared.store.get_escrows(job_id)
            if wanted is None or e.anchor in wanted
        ]
        if chosen:
            self._shared.store.commit(job_id, Checkpoint(escrows=chosen))
        return len(chosen)
