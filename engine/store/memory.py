"""A state store in dicts: for unit tests and embedding where nothing must outlive the process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

import attrs

from engine.model import Application, StatusCode, SynchronizationStatus
from engine.store.base import (
    Checkpoint,
    Escrow,
    Intent,
    IntentBatch,
    JobRow,
    Lease,
    Link,
    LogRecord,
    PruneBudget,
    StagedDelete,
    check_fence,
    may_take,
    this_host,
)

Key = tuple[str, str]  # (mapping, anchor)


class _JobState:
    def __init__(self) -> None:
        self.watermarks: dict[str, str] = {}
        self.links: dict[Key, Link] = {}
        self.refs: dict[tuple[str, str], str] = {}  # (mapping, target_ref) -> anchor
        self.counts: dict[str, int] = {}  # links per mapping, kept as links come and go
        self.escrows: dict[Key, Escrow] = {}
        self.staged: dict[Key, StagedDelete] = {}
        self.logs: list[list[LogRecord]] = []  # one list per checkpoint, as SQLite's rows
        self.intents: list[IntentBatch] = []
        self.references: dict[Key, tuple[tuple[str, str], ...]] = {}  # referrer -> referenced
        self.referrers: dict[Key, set[Key]] = {}  # (owner, referenced anchor) -> referrers
        self.sweeps: dict[str, set[str]] = {}  # mapping -> anchors seen by its full read
        self.events: dict[Key, None] = {}  # link changes not yet followed to their referrers


class MemoryStateStore:
    """Same contract as the SQLite store; a commit applies under one lock, all or nothing."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._applications: dict[str, Application] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._jobs: dict[str, JobRow] = {}
        self._state: dict[str, _JobState] = {}
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}
        self._value_key = os.urandom(32)

    def value_key(self) -> bytes:
        return self._value_key

    def save_application(self, application: Application) -> None:
        with self._lock:
            self._applications[application.id] = application

    def get_application(self, application_id: str) -> Application | None:
        return self._applications.get(application_id)

    def list_applications(self) -> list[Application]:
        return sorted(self._applications.values(), key=lambda a: a.id)

    def delete_application(self, application_id: str) -> None:
        with self._lock:
            self._applications.pop(application_id, None)
            self._secrets.pop(application_id, None)

    def save_secrets(self, application_id: str, secrets: Mapping[str, str]) -> None:
        with self._lock:
            self._secrets[application_id] = dict(secrets)

    def get_secrets(self, application_id: str) -> dict[str, str]:
        return dict(self._secrets.get(application_id, {}))

    def save_job(self, row: JobRow) -> None:
        with self._lock:
            self._jobs[row.job.id] = row
            self._state.setdefault(row.job.id, _JobState())

    def get_job(self, job_id: str) -> JobRow | None:
        return self._jobs.get(job_id)

    def update_job(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow | None:
        with self._lock:
            row = self._jobs.get(job_id)
            if row is None:
                return None
            new = change(row)
            self._jobs[job_id] = new
            return new

    def list_jobs(self, application_id: str | None = None) -> list[JobRow]:
        rows = sorted(self._jobs.values(), key=lambda r: r.job.id)
        return [r for r in rows if application_id in (None, r.application_id)]

    def job_code(self, job_id: str) -> StatusCode | None:
        row = self._jobs.get(job_id)
        return None if row is None or row.job.status is None else row.job.status.code

    def job_schedule(self) -> list[tuple[str, StatusCode, datetime | None]]:
        return [
            (
                row.job.id,
                row.job.status.code if row.job.status else StatusCode.NOT_CONFIGURED,
                row.next_run,
            )
            for row in self.list_jobs()
        ]

    def job_statuses(self) -> list[tuple[str, str, SynchronizationStatus | None]]:
        return [(row.job.id, row.job.template_id, row.job.status) for row in self.list_jobs()]

    def held_counts(self, now: datetime) -> dict[str, int]:
        with self._lock:
            counts = {
                job_id: len(state.escrows)
                + sum(s.due is None or s.due <= now for s in state.staged.values())
                for job_id, state in self._state.items()
            }
        return {job_id: count for job_id, count in counts.items() if count}

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            self._state.pop(job_id, None)
            self._leases.pop(job_id, None)

    def _job(self, job_id: str) -> _JobState:
        return self._state.setdefault(job_id, _JobState())

    def get_watermark(self, job_id: str, mapping: str) -> str | None:
        return self._job(job_id).watermarks.get(mapping)

    def get_links(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, Link]:
        links = self._job(job_id).links
        found = {}
        for anchor in anchors:
            link = links.get((mapping, anchor))
            if link is not None:
                found[anchor] = link
        return found

    def get_refs(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, str]:
        return {a: link.target_ref for a, link in self.get_links(job_id, mapping, anchors).items()}

    def anchor_for_ref(self, job_id: str, mapping: str, target_ref: str) -> str | None:
        return self._job(job_id).refs.get((mapping, target_ref))

    def count_links(self, job_id: str) -> dict[str, int]:
        return {m: n for m, n in self._job(job_id).counts.items() if n}

    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]:
        due = [
            e
            for e in self._job(job_id).escrows.values()
            if e.mapping == mapping and not e.parked and e.next_retry <= now
        ]
        return sorted(due, key=lambda e: (e.next_retry, e.anchor))[:limit]

    def get_escrows(self, job_id: str) -> list[Escrow]:
        return sorted(self._job(job_id).escrows.values(), key=lambda e: (e.mapping, e.anchor))

    def staged_deletes(self, job_id: str) -> list[StagedDelete]:
        return sorted(self._job(job_id).staged.values(), key=lambda s: (s.mapping, s.anchor))

    def commit(self, job_id: str, checkpoint: Checkpoint) -> None:
        with self._lock:
            check_fence(self._leases.get(job_id), checkpoint.lease)
            state = self._job(job_id)
            for key in checkpoint.unlinks:
                _set_references(state, key, ())
                old = state.links.pop(key, None)
                if old is not None:
                    state.refs.pop((old.mapping, old.target_ref), None)
                    state.counts[old.mapping] -= 1
            for link in checkpoint.links:
                old = state.links.get((link.mapping, link.anchor))
                if old is not None:
                    state.refs.pop((old.mapping, old.target_ref), None)
                else:
                    state.counts[link.mapping] = state.counts.get(link.mapping, 0) + 1
                state.links[(link.mapping, link.anchor)] = link
                state.refs[(link.mapping, link.target_ref)] = link.anchor
            for key in checkpoint.unescrows:
                state.escrows.pop(key, None)
            for escrow in checkpoint.escrows:
                state.escrows[(escrow.mapping, escrow.anchor)] = escrow
            for key in checkpoint.unstaged:
                state.staged.pop(key, None)
            for staged in checkpoint.staged:
                state.staged[(staged.mapping, staged.anchor)] = staged
            for mapping, anchor, references in checkpoint.references:
                _set_references(state, (mapping, anchor), references)
            if checkpoint.mapping is not None:
                if checkpoint.sweep_start:
                    state.sweeps[checkpoint.mapping] = set()
                if checkpoint.seen and checkpoint.mapping in state.sweeps:
                    state.sweeps[checkpoint.mapping].update(checkpoint.seen)
                if checkpoint.sweep_end:
                    state.sweeps.pop(checkpoint.mapping, None)
            if checkpoint.clear_events:
                state.events.clear()
            state.events.update(dict.fromkeys(checkpoint.events))
            if checkpoint.logs:
                state.logs.append(list(checkpoint.logs))
            if checkpoint.clear_intents:
                state.intents = []
            if checkpoint.lease is not None:
                self._leases[job_id] = checkpoint.lease
            if checkpoint.mapping is not None and checkpoint.watermark is not None:
                state.watermarks[checkpoint.mapping] = checkpoint.watermark

    def reset(self, job_id: str, *, watermarks: bool, escrows: bool, links: bool) -> None:
        with self._lock:
            self._leases.pop(job_id, None)  # a runner mid-cycle loses the job: see SQLite
            state = self._job(job_id)
            if watermarks:
                state.watermarks.clear()
            if escrows:
                state.escrows.clear()
            if links:
                state.links.clear()
                state.refs.clear()
                state.counts.clear()
                state.staged.clear()
                state.intents = []
                state.references.clear()
                state.referrers.clear()
                state.sweeps.clear()
                state.events.clear()

    def link_events(self, job_id: str) -> list[tuple[str, str]]:
        return list(self._job(job_id).events)

    def referrers(self, job_id: str, owner: str, anchors: Iterable[str]) -> list[tuple[str, str]]:
        index = self._job(job_id).referrers
        found: dict[Key, None] = {}
        for anchor in anchors:
            for referrer in sorted(index.get((owner, anchor), ())):
                found[referrer] = None
        return list(found)

    def referenced_from(self, job_id: str, owner: str, prefix: str) -> list[str]:
        index = self._job(job_id).referrers
        held = (a for (o, a), holders in index.items() if o == owner and holders)
        return sorted({a for a in held if a.startswith(prefix)})

    def sweeping(self, job_id: str, mapping: str) -> bool:
        return mapping in self._job(job_id).sweeps

    def unseen_links(self, job_id: str, mapping: str, after: str, limit: int) -> list[Link]:
        state = self._job(job_id)
        seen = state.sweeps.get(mapping, set())
        unseen = sorted(
            (
                link
                for (m, a), link in state.links.items()
                if m == mapping and a > after and a not in seen
            ),
            key=lambda link: link.anchor,
        )
        return unseen[:limit]

    def write_intents(
        self, job_id: str, batches: Sequence[IntentBatch], lease: Lease | None
    ) -> None:
        with self._lock:
            check_fence(self._leases.get(job_id), lease)
            self._job(job_id).intents.extend(attrs.evolve(b) for b in batches)
            if lease is not None:
                self._leases[job_id] = lease

    def pending_intents(self, job_id: str) -> list[Intent]:
        return [i for batch in self._job(job_id).intents for i in batch.intents()]

    def acquire_lease(
        self, job_id: str, holder: str, now: datetime, expires: datetime
    ) -> Lease | None:
        with self._lock:
            if not may_take(self._leases.get(job_id), holder, now):
                return None
            token = self._tokens.get(job_id, 0) + 1
            self._tokens[job_id] = token
            lease = Lease(
                job_id=job_id,
                holder=holder,
                host=this_host(),
                pid=os.getpid(),
                token=token,
                expires=expires,
            )
            self._leases[job_id] = lease
            return lease

    def release_lease(self, lease: Lease) -> None:
        with self._lock:
            current = self._leases.get(lease.job_id)
            if current is not None and current.token == lease.token:
                del self._leases[lease.job_id]

    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]:
        rows = self._job(job_id).logs
        logs = [r for row in rows for r in row if cycle_id in (None, r.cycle_id)]
        return logs[-limit:]

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        with self._lock:
            rows = self._job(job_id).logs
            logs = sorted((r for row in rows for r in row), key=lambda r: r.time, reverse=True)
        for record in logs:
            yield record.time, [record]

    #: how much one prune_logs call may drop (base.PruneBudget), as the SQLite store
    prune_budget = PruneBudget()

    def prune_logs(self, job_id: str, before: datetime, keep: int | None = None) -> int:
        """Whole checkpoints, as SQLite drops its rows: those whose newest record is older
        than ``before``, then the oldest (by that time) while more than ``keep`` records
        remain; within budget."""
        budget = self.prune_budget
        with self._lock:
            state = self._job(job_id)
            dropped = 0
            for _ in range(budget.deletes):
                old = sorted((max(r.time for r in row), n) for n, row in enumerate(state.logs))
                rows = [(n, len(state.logs[n])) for t, n in old if t < before][: budget.rows]
                gone = set(budget.take(rows, 2**62))
                if not gone and keep is not None:
                    excess = sum(map(len, state.logs)) - keep
                    if excess > 0:
                        oldest = [(n, len(state.logs[n])) for _, n in old][: budget.rows]
                        gone = set(budget.take(oldest, excess))
                if not gone:
                    break
                dropped += sum(len(state.logs[n]) for n in gone)
                state.logs = [row for n, row in enumerate(state.logs) if n not in gone]
            return dropped

    def count_logs(self, job_id: str) -> int:
        with self._lock:
            return sum(map(len, self._job(job_id).logs))

    def close(self) -> None:
        """Nothing to release."""


def _set_references(
    state: _JobState, referrer: Key, references: tuple[tuple[str, str], ...]
) -> None:
    for old in state.references.pop(referrer, ()):
        holders = state.referrers.get(old)
        if holders is not None:
            holders.discard(referrer)
            if not holders:
                del state.referrers[old]
    if references:
        state.references[referrer] = references
        for new in references:
            state.referrers.setdefault(new, set()).add(referrer)
