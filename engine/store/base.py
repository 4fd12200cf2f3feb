"""What the engine persists, and the protocol every state store implements.

The contract (tested by ``tests/contract/test_store_contract.py`` against every store):
``commit`` applies a whole :class:`Checkpoint` atomically (links, escrows, staged deletes,
provisioning log, the page watermark and the clearing of write-ahead intents) or nothing of
it; ``write_intents`` is durable (on disk, fsynced) when it returns; both refuse a checkpoint
or intents from a runner whose lease was taken over (:class:`LeaseLost`); ``delete_job``
removes every trace of a job; reads never return objects that a later write could mutate.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import attrs
import orjson

from connectors.base import Value
from engine.directory_values import json_default, json_object_hook, last_values
from engine.errors import LeaseLost
from engine.model import Application, StatusCode, SynchronizationJob, SynchronizationStatus


class Link(NamedTuple):
    """A source object joined to a target object, with the values last exported to it.

    A NamedTuple rather than an attrs class: the cycle makes one per exported object.
    """

    mapping: str
    anchor: str
    target_ref: str
    exported: str  # JSON of the exported values (see encode_values)


@attrs.frozen(kw_only=True, slots=True)
class Escrow:
    """A change that failed for one object; retried from ``next_retry`` on, never in a loop."""

    mapping: str
    anchor: str
    attempts: int
    first_failed: datetime
    next_retry: datetime
    error: str
    parked: bool = False  # older than EscrowMaxAge: kept visible, no longer retried


@attrs.frozen(kw_only=True, slots=True)
class StagedDelete:
    """A delete or disable decided by a cycle, held until the accidental-deletion check.

    ``due``: a delete waiting out DeleteGracePeriod (the object is disabled meanwhile where
    the target can disable) is neither applied nor counted before then; None: at once."""

    mapping: str
    anchor: str
    target_type: str
    target_ref: str
    soft: bool
    reason: str
    due: datetime | None = None


@attrs.frozen
class PruneBudget:
    """How much one prune_logs call may drop: ``deletes`` deletes of at most ``rows``
    checkpoint rows and at most ``records`` records each (at least one row: a row holds a
    page of records). A delete costs ~0.1 ms a row on a laptop's SSD (bench/bench_log_size.py),
    so a checkpoint waits ~10 ms behind one at most; ten a cycle work off 1,000 rows (or
    50,000 records), so the backlog of a lowered cap goes over a few cycles."""

    rows: int = 100
    records: int = 5_000
    deletes: int = 10

    def take(self, rows: Iterable[tuple[int, int]], wanted: int) -> list[int]:
        """The seqs of one delete from ``rows`` ((seq, count), oldest first): whole rows,
        at least one, until ``wanted`` records or the budget is reached."""
        taken: list[int] = []
        total = 0
        for seq, count in rows:
            if taken and (total >= wanted or total + count > self.records):
                break
            taken.append(seq)
            total += count
        return taken


class LogRecord(NamedTuple):
    """One provisioning log entry: what happened to one object, named so a person can read it.

    A NamedTuple rather than an attrs class: the cycle makes one per object it touches. The
    names and values are what the cycle already held (the source object as read, the values
    it mapped, the values it last exported): making them costs no target read. ``values``
    are rendered for reading, never raw: credentials and tokens masked, binary values
    summarized, each bounded (engine.cycle._names), so a stored record stays small.
    """

    job_id: str
    cycle_id: str
    change_id: str
    time: datetime
    action: str  # Create, Update, Delete, Disable, StagedDelete, Other
    status: str  # success, failure, skipped
    mapping: str
    anchor: str
    target_ref: str | None = None
    attributes: tuple[str, ...] = ()
    error: str | None = None
    source_name: str | None = None  # the source object's display name
    source_key: str | None = None  # and a readable identifier: its DN, else its uid/userName
    target_name: str | None = None  # the target object's display name, as mapped
    #: the changed attributes' values as shown, in the order of ``attributes`` (the first
    #: MAX_ATTRIBUTES of them): new, and old where the engine knew it, else () (a create, a
    #: join); parallel tuples, not a tuple per attribute: a create makes one, not eleven
    new: tuple[str | None, ...] = ()
    old: tuple[str | None, ...] = ()

    def changes(self) -> list[tuple[str, str | None, str | None]]:
        """(attribute, old, new) of the attributes shown with values; old None if unknown."""
        old = self.old or (None,) * len(self.new)
        return list(zip(self.attributes, old, self.new, strict=False))


class Intent(NamedTuple):
    """A target write about to be made, as read back after a crash.

    ``op`` is ``upsert`` (a create or a join-and-update: the object is found afterwards by its
    ``matching`` values), ``update`` (of the linked ``target_ref``) or ``delete`` (of
    ``target_ref``, whose ``matching`` values tell whether it survived).
    """

    mapping: str
    anchor: str
    op: str
    target_type: str
    target_ref: str | None = None
    matching: tuple[tuple[str, Value], ...] = ()


@attrs.define
class IntentBatch:
    """The writes one batch (a page, an escrow batch, a batch of deletes) is about to send for
    one object mapping, recorded before any is sent.

    Compact on purpose, since an initial cycle records one per object: an upsert carries the
    values of the matching attributes it is sent with (names stored once, in ``matching``
    order), so nothing is built per object but two tuples, and the record that must be fsynced
    before the writes stays small.
    """

    mapping: str
    target_type: str
    matching: tuple[str, ...]
    #: anchors of upserts, and beside each (parallel lists: no tuple per object) the value
    #: of the matching attribute when there is one, else the tuple of their values
    upsert_anchors: list[str] = attrs.field(factory=list)
    upsert_values: list[Any] = attrs.field(factory=list)
    #: (anchor, target ref, matching values as in upsert_values): the values let a write
    #: that renamed the object (an LDAP modrdn moves the DN, the ref) be found again
    updates: list[tuple[str, str, Any]] = attrs.field(factory=list)
    deletes: list[tuple[str, str, str]] = attrs.field(factory=list)  # + last exported values

    def __len__(self) -> int:
        return len(self.upsert_anchors) + len(self.updates) + len(self.deletes)

    def upsert(self, anchor: str, values: Any) -> None:
        self.upsert_anchors.append(anchor)
        self.upsert_values.append(values)

    def intents(self) -> list[Intent]:
        def pairs(values: Any) -> tuple[tuple[str, Value], ...]:
            found = []
            for name, value in zip(self.matching, values, strict=False):
                if value is not None and value != []:
                    found.append((name, value[0] if isinstance(value, list) else value))
            return tuple(found)

        def last(exported: str) -> tuple[tuple[str, Value], ...]:
            values = last_values(exported)
            return pairs([values.get(name) for name in self.matching])

        m, t, single = self.mapping, self.target_type, len(self.matching) == 1
        return [
            *(
                Intent(m, a, "upsert", t, None, pairs((v,) if single else v))
                for a, v in zip(self.upsert_anchors, self.upsert_values, strict=True)
            ),
            *(
                Intent(m, a, "update", t, r, pairs((v,) if single else v))
                for a, r, v in self.updates
            ),
            *(Intent(m, a, "delete", t, r, last(e)) for a, r, e in self.deletes),
        ]


def encode_intents(batches: Sequence[IntentBatch]) -> str:
    return orjson.dumps(
        [
            [
                b.mapping,
                b.target_type,
                b.matching,
                b.upsert_anchors,
                b.upsert_values,
                b.updates,
                b.deletes,
            ]
            for b in batches
        ],
        default=json_default,
    ).decode()


def _none(count: int) -> Any:
    """No matching values (update intents written before they carried them)."""
    return None if count <= 1 else (None,) * count


def decode_intents(text: str) -> list[Intent]:
    def value(v: Any, several: bool) -> Any:
        if isinstance(v, dict):
            return json_object_hook(v)
        if several:
            return tuple(json_object_hook(x) if isinstance(x, dict) else x for x in v)
        return v

    return [
        intent
        for m, t, k, anchors, values, upd, dels in orjson.loads(text)
        for intent in IntentBatch(
            m,
            t,
            tuple(k),
            list(anchors),
            [value(v, len(k) > 1) for v in values],
            [(u[0], u[1], value(u[2], len(k) > 1) if len(u) > 2 else _none(len(k))) for u in upd],
            [(a, r, e) for a, r, e in dels],
        ).intents()
    ]


@attrs.frozen(kw_only=True, slots=True)
class Lease:
    """Who may run a job's cycles until ``expires``; ``token`` fences out earlier holders."""

    job_id: str
    holder: str
    host: str
    pid: int
    token: int
    expires: datetime


def this_host() -> str:
    return socket.gethostname()


def holder_is_gone(lease: Lease) -> bool:
    """True when the lease's holder was a process on this machine that no longer exists."""
    if lease.host != this_host() or lease.pid == os.getpid():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def may_take(current: Lease | None, holder: str, now: datetime) -> bool:
    """The one rule both stores apply when a runner asks for a job's lease."""
    return (
        current is None
        or current.holder == holder
        or current.expires <= now
        or holder_is_gone(current)
    )


def check_fence(current: Lease | None, lease: Lease | None) -> None:
    if lease is None:
        return
    if current is None or current.token != lease.token or current.holder != lease.holder:
        raise LeaseLost(f"job {lease.job_id}: this runner's lease was taken over by another runner")


@attrs.frozen(kw_only=True, slots=True)
class JobRow:
    """A stored job: its Graph shape plus the engine's private bookkeeping."""

    application_id: str
    job: SynchronizationJob
    next_run: datetime | None = None
    force_deletes: bool = False


@attrs.define(kw_only=True)
class Checkpoint:
    """Everything one page (or one batch of retries or deletes) changed, committed as one."""

    mapping: str | None = None
    watermark: str | None = None  # stored only together with the rest of this checkpoint
    links: list[Link] = attrs.field(factory=list)
    unlinks: list[tuple[str, str]] = attrs.field(factory=list)  # (mapping, anchor)
    escrows: list[Escrow] = attrs.field(factory=list)
    unescrows: list[tuple[str, str]] = attrs.field(factory=list)
    staged: list[StagedDelete] = attrs.field(factory=list)
    unstaged: list[tuple[str, str]] = attrs.field(factory=list)
    logs: list[LogRecord] = attrs.field(factory=list)
    clear_intents: bool = False  # the write-ahead intents this checkpoint resolves
    lease: Lease | None = None  # fencing: refused unless still held; renewed to its expiry
    #: reverse index: (referrer mapping, referrer anchor, its references now as
    #: (owner mapping, referenced source anchor) pairs), replacing what was stored for it
    references: list[tuple[str, str, tuple[tuple[str, str], ...]]] = attrs.field(factory=list)
    #: a reconciling full read of ``mapping``: starts with this checkpoint (forgetting what an
    #: earlier one saw), anchors it saw in this page, ends (what it saw is forgotten)
    sweep_start: bool = False
    seen: list[str] = attrs.field(factory=list)
    sweep_end: bool = False
    #: (mapping, anchor) whose link appeared, went or changed: their referrers must be
    #: evaluated again, so this is durable until a cycle has done it (``clear_events``)
    events: list[tuple[str, str]] = attrs.field(factory=list)
    clear_events: bool = False


class StateStore(Protocol):
    """Durable state of every job; the SQLite store is the embedded default."""

    def save_application(self, application: Application) -> None: ...
    def get_application(self, application_id: str) -> Application | None: ...
    def list_applications(self) -> list[Application]: ...
    def delete_application(self, application_id: str) -> None:
        """Forget the application and its secrets (its jobs are deleted first, one by one)."""
        ...

    def save_secrets(self, application_id: str, secrets: Mapping[str, str]) -> None: ...
    def get_secrets(self, application_id: str) -> dict[str, str]: ...

    def save_job(self, row: JobRow) -> None: ...
    def get_job(self, job_id: str) -> JobRow | None: ...
    def list_jobs(self, application_id: str | None = None) -> list[JobRow]: ...
    def update_job(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow | None:
        """Read the job's row, store ``change(row)``, atomically: no other writer (thread or
        process) saves the row in between. None if there is no such job. ``change`` only
        computes (it may read the store, never write it); what it raises aborts the update."""
        ...

    def job_code(self, job_id: str) -> StatusCode | None: ...
    def job_schedule(self) -> list[tuple[str, StatusCode, datetime | None]]:
        """(job id, status code, next run) of every job, by id, without reading any job
        whole: what a scheduler's resync compares with what it holds."""
        ...

    def job_statuses(self) -> list[tuple[str, str, SynchronizationStatus | None]]:
        """(job id, template id, status) of every job, by id, without reading schemas or
        settings: what a metrics scrape reads in one go."""
        ...

    def held_counts(self, now: datetime) -> dict[str, int]:
        """Per job that has any: its escrows (parked ones included) plus its staged deletes
        due by ``now`` (not those waiting out DeleteGracePeriod), in one read."""
        ...

    def delete_job(self, job_id: str) -> None: ...

    def get_watermark(self, job_id: str, mapping: str) -> str | None: ...
    def get_links(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, Link]: ...
    def get_refs(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, str]:
        """Target refs of linked anchors: what references resolve through (a large group's
        members), without reading each link's exported values."""
        ...

    def anchor_for_ref(self, job_id: str, mapping: str, target_ref: str) -> str | None: ...
    def count_links(self, job_id: str) -> dict[str, int]: ...
    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]: ...
    def get_escrows(self, job_id: str) -> list[Escrow]: ...
    def staged_deletes(self, job_id: str) -> list[StagedDelete]: ...
    def commit(self, job_id: str, checkpoint: Checkpoint) -> None: ...
    def reset(self, job_id: str, *, watermarks: bool, escrows: bool, links: bool) -> None:
        """Forget what the flags name; also revokes the job's lease, so a cycle running
        meanwhile is refused its next commit instead of writing stale state back."""
        ...

    def referrers(self, job_id: str, owner: str, anchors: Iterable[str]) -> list[tuple[str, str]]:
        """(mapping, anchor) of every object whose references name one of ``anchors`` of the
        ``owner`` mapping (resolved or not): what to re-evaluate when their links change."""
        ...

    def referenced_from(self, job_id: str, owner: str, prefix: str) -> list[str]:
        """The referenced values of the ``owner`` mapping in the reverse index that start
        with ``prefix``, once each, sorted (the cycle asks for its dangling reference names)."""
        ...

    def sweeping(self, job_id: str, mapping: str) -> bool:
        """Whether a reconciling full read of ``mapping`` has started and not ended."""
        ...

    def link_events(self, job_id: str) -> list[tuple[str, str]]:
        """Link changes whose referrers have not been evaluated again yet (see Checkpoint)."""
        ...

    def unseen_links(self, job_id: str, mapping: str, after: str, limit: int) -> list[Link]:
        """Links of ``mapping`` (anchor > ``after``, in anchor order) that the reconciling
        full read did not see."""
        ...

    def write_intents(
        self, job_id: str, batches: Sequence[IntentBatch], lease: Lease | None
    ) -> None:
        """Record writes about to be sent; on disk when this returns (power loss included)."""
        ...

    def pending_intents(self, job_id: str) -> list[Intent]: ...

    def acquire_lease(
        self, job_id: str, holder: str, now: datetime, expires: datetime
    ) -> Lease | None:
        """The job's lease for ``holder`` with a new fencing token, or None while another
        live runner holds it (a holder past ``expires``, or a dead process on this host, is
        taken over at once)."""
        ...

    def release_lease(self, lease: Lease) -> None: ...
    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]: ...
    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        """The job's provisioning log in batches, read lazily, the newest first: each batch
        comes with a bound no older than any of its records and no newer than the previous
        batch's bound (None, for batches whose bound is unknown, only at the start). What
        lets a reader that wants the newest N records stop early."""
        ...

    def prune_logs(self, job_id: str, before: datetime, keep: int | None = None) -> int:
        """Drop the job's provisioning log checkpoints (whole ones) older than ``before``,
        then the oldest while more than ``keep`` records remain; returns the records dropped.
        One call does a bounded amount (:class:`PruneBudget`), each delete its own short
        transaction: a backlog is worked off over several calls, and a checkpoint waits
        behind one small delete at most, never behind a long one."""
        ...

    def count_logs(self, job_id: str) -> int:
        """The job's provisioning log records, read cheaply (no sum over the log)."""
        ...

    def value_key(self) -> bytes:
        """This store's own random key, the same for as long as the store lives (for a file,
        kept in it): passwords are kept as digests under it (engine.password_values)."""
        ...

    def close(self) -> None: ...


def chunked(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
