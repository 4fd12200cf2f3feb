"""What one cycle carries: its context (store, connectors, clock, settings, counters), the
per-mapping state, and the signals it raises. Built by the engine, discarded after the cycle."""

from __future__ import annotations

import math
import random as random_module
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
import structlog

from connectors.base import (
    Capability,
    ObjectError,
    Source,
    Target,
    TransientError,
)
from engine.clock import Clock
from engine.cycle._names import NO_IDENTITY, NO_VALUES, Identity, Naming, Values, naming_of
from engine.errors import LeaseLost
from engine.expressions import Env
from engine.mapping import CompiledMapping
from engine.model import QuarantineReason
from engine.password_values import Passwords, passwords_for
from engine.settings import JobSettings
from engine.store.base import (
    Checkpoint,
    Escrow,
    IntentBatch,
    Lease,
    LogRecord,
    StagedDelete,
    StateStore,
)

T = TypeVar("T")

#: Bounds on in-cycle retries of transient failures, whatever settings or servers say.
MAX_RETRIES = 10
DEFAULT_CONCURRENCY = 4  # ExportConcurrency's default for remote targets (issue #10)
MAX_RETRY_SLEEP = 60.0
#: the reason of a staged delete held by a full read that saw too few objects
HELD_PREFIX = "held: "
#: how the reverse index keeps a reference name (connectors.base.REFERENCE_NAME), apart from
#: anchors (see engine.cycle._references)
NAME_PREFIX = "\x1fname:"
LABELS_KEPT = 10_000  # names kept for the records of staged deletes, at most, per cycle
HALT_SLICE = 0.25  # seconds a retry's wait sleeps between looks at the runner's stop flag


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry ``attempt``: the server's Retry-After when sane, else
    0.5 s doubling; never negative, never more than MAX_RETRY_SLEEP."""
    if retry_after is not None and math.isfinite(retry_after):
        return min(max(retry_after, 0.0), MAX_RETRY_SLEEP)
    return min(0.5 * 2.0 ** min(attempt, 16), MAX_RETRY_SLEEP)


class CyclePaused(Exception):
    """The job was paused; the cycle stopped at a checkpoint."""


class ReferenceNotResolved(ObjectError):
    """A reference attribute points at an object that is not linked in the target yet."""


@attrs.define
class Counters:
    imported: int = 0
    imported_deltas: int = 0
    entitled: int = 0
    exports: int = 0
    exported: int = 0
    escrowed: int = 0
    deleted: int = 0
    pages: int = 0
    unresolved: int = 0  # objects escrowed for references that did not resolve
    ambiguous: int = 0  # objects escrowed because the target holds several matches
    ambiguity: str | None = None  # the first such escrow's reason, for the status
    #: escrows of this cycle by error type, and each type's first message: the status names
    #: the most common when most objects fail (a wrong URL fails them all alike)
    failures: dict[str, int] = attrs.field(factory=dict)
    failure_example: dict[str, str] = attrs.field(factory=dict)

    def escrowed_with(self, error: str) -> None:
        """Count an object that failed in this cycle, with its error ("Type: message")."""
        self.escrowed += 1
        kind = error.partition(":")[0][:80]
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.failure_example.setdefault(kind, error[:300])

    def most_common_failure(self) -> tuple[int, str] | None:
        if not self.failures:
            return None
        kind = max(self.failures, key=lambda k: (self.failures[k], k))
        return self.failures[kind], self.failure_example[kind]


@attrs.frozen
class CycleProgress:
    """Where a running cycle stands, reported after every page checkpoint: what a progress
    bar, Graph's ``synchronizationProgress`` and the lag metric are made of.

    ``read`` counts the changes the source has handed out in the current read of
    ``object_type``, ``done`` those of them checkpointed (exported, escrowed or left as they
    were); ``total`` is what the source said that read holds, when it could tell cheaply (a
    full read's count), else None. A hint: a source whose objects change under the read makes
    it approximate, and nothing but reports relies on it.
    """

    object_type: str
    read: int
    done: int
    total: int | None
    pages: int  # checkpointed in this cycle, all object types
    exported: int
    escrowed: int

    @property
    def waiting(self) -> int:
        """Changes the source showed or announced in this read that are not settled yet."""
        ahead = max(self.total - self.read, 0) if self.total is not None else 0
        return self.read - self.done + ahead


@attrs.define
class CycleOutcome:
    counters: Counters
    initial: bool = False
    paused: bool = False
    quarantine: tuple[QuarantineReason, str] | None = None


@attrs.define
class CycleContext:
    """What one cycle needs; built by the engine, discarded after the cycle."""

    job_id: str
    cycle_id: str
    store: StateStore
    source: Source
    target: Target
    clock: Clock
    settings: JobSettings
    mappings: Sequence[CompiledMapping]
    should_stop: Callable[[], bool]
    #: the runner's shutdown (or Ctrl-C) only, without the store: checked in retry waits
    halted: Callable[[], bool] = lambda: False
    force_deletes: bool = False
    random: random_module.Random = attrs.field(factory=random_module.Random)
    lease: Lease | None = None  # held for the whole cycle; renewed by every commit
    lease_duration: timedelta = timedelta(minutes=5)
    lease_deadline: float = math.inf  # clock.monotonic() past which this runner stops writing
    #: log an object read again whose target already holds its values (RedundantExport): a
    #: plan or provisioning on demand says so; a scheduled cycle does not, or every re-read
    #: (a timestamp overlap, a delete scan's full read) writes a record for nothing done
    log_unchanged: bool = True
    started: datetime = attrs.field(init=False)
    counters: Counters = attrs.field(factory=Counters)
    #: per object mapping key, set up by cycle.run
    states: dict[str, MappingState] = attrs.field(factory=dict)
    #: (owner mapping -> anchors) whose link appeared, went or changed in this cycle: their
    #: referrers are evaluated again before the cycle ends
    link_events: dict[str, set[str]] = attrs.field(factory=dict)
    #: (mapping, anchor) -> names of objects whose delete this cycle staged (see label)
    labels: dict[tuple[str, str], Identity] = attrs.field(factory=dict)
    deletes_applied: bool = False
    events_recorded: bool = False  # link events are stored: clear them once followed
    log: Any = attrs.field(init=False)
    #: the target takes ValueDelta for multi-valued attributes (Capability.VALUE_DELTAS)
    value_deltas: bool = attrs.field(init=False, default=False)
    #: target writes of a page in flight at once: ExportConcurrency, else DEFAULT_CONCURRENCY
    #: for a target whose calls wait on a remote server (PARALLEL_WRITES), else one
    export_concurrency: int = attrs.field(init=False, default=1)
    #: told where the cycle stands after every page checkpoint (CycleProgress)
    on_progress: Callable[[CycleProgress], None] | None = None
    #: clock.monotonic() before which the target asked to be left alone (Retry-After): the
    #: back-off gate every export worker waits at, without the engine lock
    throttled_until: float = attrs.field(init=False, default=0.0)
    _reading: str = attrs.field(init=False, default="")
    _read: int = attrs.field(init=False, default=0)
    _done: int = attrs.field(init=False, default=0)
    _total: int | None = attrs.field(init=False, default=None)
    _changes: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.started = self.clock.now()
        self.value_deltas = Capability.VALUE_DELTAS in self.target.capabilities
        parallel = Capability.PARALLEL_WRITES in self.target.capabilities
        chosen = self.settings.export_concurrency
        self.export_concurrency = chosen or (DEFAULT_CONCURRENCY if parallel else 1)
        if self.lease is not None:
            remaining = (self.lease.expires - self.started).total_seconds()
            self.lease_deadline = self.clock.monotonic() + remaining
        self.log = structlog.get_logger("syncjob.cycle").bind(
            job_id=self.job_id, cycle_id=self.cycle_id
        )

    def commit(self, work: Checkpoint) -> None:
        """Commit a checkpoint under this cycle's lease (refused if another runner took it)."""
        work.lease = self._renewed()
        self.store.commit(self.job_id, work)

    def begin_read(self, object_type: str) -> None:
        self._reading, self._read, self._done, self._total = object_type, 0, 0, None

    def page_read(self, changes: int, remaining: int | None) -> None:
        if remaining is not None:
            self._total = self._read + max(remaining, changes)
        elif self._total is not None and self._read + changes > self._total:
            self._total = None  # the count no longer holds
        self._read += changes

    def page_done(self, changes: int) -> None:
        self._done += changes
        if self.on_progress is not None:
            c = self.counters
            self.on_progress(
                CycleProgress(
                    object_type=self._reading,
                    read=self._read,
                    done=self._done,
                    total=self._total,
                    pages=c.pages,
                    exported=c.exported,
                    escrowed=c.escrowed,
                )
            )

    def write_intents(self, batches: Sequence[IntentBatch]) -> None:
        """Durably record the writes about to be sent, before any of them is."""
        self.store.write_intents(self.job_id, batches, self._renewed())

    def check_lease(self) -> None:
        """Refuse to write once the lease may have passed to another runner (a monotonic
        reading: this runs before every target write)."""
        if self.clock.monotonic() >= self.lease_deadline:
            raise LeaseLost(f"job {self.job_id}: the lease expired during the cycle")

    def _renewed(self) -> Lease | None:
        if self.lease is not None:
            self.lease = attrs.evolve(self.lease, expires=self.clock.now() + self.lease_duration)
            self.lease_deadline = self.clock.monotonic() + self.lease_duration.total_seconds()
        return self.lease

    def wait(self, seconds: float) -> None:
        """Sleep before a retry, renewing the lease first when the sleep would outlast it
        (an empty, fenced commit), so that waiting for a busy server never loses the job."""
        left = max(seconds, 0.0)
        while True:  # in slices: a shutdown does not wait for a long Retry-After
            self.check_halted()
            if left <= 0:
                return
            step = min(left, HALT_SLICE)
            if self.lease is not None and self.clock.monotonic() + step + 30 >= self.lease_deadline:
                self.commit(Checkpoint())  # renewed as often as a lease shorter than the wait needs
            outside_lock = getattr(self.target, "outside_lock", None)  # concurrent export
            if outside_lock is not None:
                outside_lock(self.clock.sleep, step)  # the other workers go on meanwhile
            else:
                self.clock.sleep(step)
            left -= step

    def hold_off(self) -> None:
        """Wait at the back-off gate: while a Retry-After the target gave is running, no
        worker sends it anything (called without the engine lock, before each target call of
        a concurrent export), so one throttled answer is waited out once, by everybody."""
        while True:
            self.check_halted()
            left = self.throttled_until - self.clock.monotonic()
            if left <= 0:
                self.check_lease()  # the waiting worker renews it; none writes past it
                return
            self.clock.sleep(min(left, HALT_SLICE))

    def check_halted(self) -> None:
        """Stop here (CyclePaused) if the runner is shutting down. A shutdown lets the batch
        in flight finish (its checkpoint), but not wait out a failing target's retries: then
        it stops between two attempts, and the batch's write-ahead record is settled by the
        next cycle, as after a crash."""
        if self.halted():
            raise CyclePaused

    def link_changed(self, mapping: str, anchor: str, work: Checkpoint) -> None:
        """Note that a link appeared, went or changed; durable with ``work``, so a cycle
        that stops before it evaluates the referrers again leaves the next one to do it."""
        self.link_events.setdefault(mapping, set()).add(anchor)
        self.events_recorded = True
        work.events.append((mapping, anchor))

    def state_for(
        self,
        mapping: CompiledMapping,
        escrows: Sequence[Escrow],
        staged: Sequence[StagedDelete],
    ) -> MappingState:
        """Per-mapping state: open escrows and staged deletes, and the evaluation Env."""
        target_type = mapping.target_type

        def is_unique(attribute: str, value: str) -> bool:
            return self.call(self.target.find, target_type, attribute, value) is None

        referenced = any(owner == mapping.key for m in self.mappings for _, owner in m.references)
        return MappingState(
            escrows={e.anchor: e for e in escrows if e.mapping == mapping.key},
            staged={s.anchor for s in staged if s.mapping == mapping.key},
            held={
                s.anchor: s.reason
                for s in staged
                if s.mapping == mapping.key and s.reason.startswith(HELD_PREFIX)
            },
            waiting={
                s.anchor: s.due for s in staged if s.mapping == mapping.key and s.due is not None
            },
            env=Env(
                now=self.clock.now,
                random=self.random,
                is_unique=is_unique,
                regex_timeout=self.settings.regex_timeout.total_seconds(),
            ),
            referenced=referenced,
            dangling_names=self.dangling_names(mapping) if referenced else frozenset(),
            naming=naming_of(mapping),
            passwords=passwords_for(mapping, self.store.value_key),
        )

    def dangling_names(self, mapping: CompiledMapping) -> frozenset[str]:
        """The reference names held dangling by referrers of ``mapping``'s objects."""
        prefix = NAME_PREFIX
        held = self.store.referenced_from(self.job_id, mapping.key, prefix)
        return frozenset(name[len(prefix) :] for name in held)

    def record(
        self,
        work: Checkpoint,
        mapping: CompiledMapping,
        anchor: str,
        action: str,
        status: str = "success",
        *,
        target_ref: str | None = None,
        names: Sequence[str] = (),
        error: str | None = None,
        who: Identity = NO_IDENTITY,
        values: Values = NO_VALUES,
    ) -> None:
        """Log what happened to one object; ``who`` names it (engine.cycle._names), else the
        names noted when its delete was staged in this cycle, if any."""
        self.log.debug("object_processed", anchor=anchor, action=action, status=status)
        self._changes += 1
        if who is NO_IDENTITY and self.labels:
            who = self.labels.get((mapping.key, anchor), who)
        work.logs.append(
            LogRecord(
                self.job_id,
                self.cycle_id,
                f"{self.cycle_id}.{self._changes}",
                self.clock.now(),
                action,
                status,
                mapping.key,
                anchor,
                target_ref,
                tuple(names),
                error,
                *who,
                *values,
            )
        )

    def skip(
        self,
        work: Checkpoint,
        mapping: CompiledMapping,
        anchor: str,
        reason: str,
        target_ref: str | None = None,
        who: Identity = NO_IDENTITY,
    ) -> None:
        """Log that an object needed no write ("Other", skipped), and why."""
        self.record(
            work, mapping, anchor, "Other", "skipped", target_ref=target_ref, error=reason, who=who
        )

    def label(self, mapping: CompiledMapping, anchor: str, who: Identity) -> None:
        """Keep an object's names for the records of its staged delete, which is applied
        when its values are no longer at hand (bounded: a sweep may stage a directory)."""
        if len(self.labels) < LABELS_KEPT and who != NO_IDENTITY:
            self.labels[(mapping.key, anchor)] = who

    def call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a connector, retrying transient failures with backoff on the engine's clock."""
        try:
            return operation(*args, **kwargs)
        except TransientError as exc:
            return self.retry(exc, operation, *args, **kwargs)

    def retry(
        self, failure: TransientError, operation: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Go on after a first transient failure (hot paths make the first call themselves).

        A throttled answer (one that says when to come back: 429 or 503 with Retry-After)
        is waited out without spending the TransientRetries budget, as Entra slows down
        rather than fails an object its target asks to wait; MAX_RETRIES bounds both.
        """
        budget = min(self.settings.transient_retries, MAX_RETRIES)
        spent = 0
        for attempt in range(1, MAX_RETRIES + 1):
            throttled = (failure.retry_after or 0.0) > 0
            if not throttled:
                spent += 1
                if spent > budget:
                    break
            pause = backoff(attempt, failure.retry_after)
            if throttled:  # the target's own word: hold every writer until then, not just us
                until = self.clock.monotonic() + pause
                self.throttled_until = max(self.throttled_until, until)
                pause = max(self.throttled_until - self.clock.monotonic(), 0.0)
            self.wait(pause)
            try:
                return operation(*args, **kwargs)
            except TransientError as exc:
                failure = exc
        raise failure


@attrs.define
class MappingState:
    """Per mapping and cycle: open escrows and staged deletes, and refs joined in this page."""

    escrows: dict[str, Escrow]
    staged: set[str]
    env: Env
    naming: Naming  # where the provisioning log finds an object's names
    #: the mapping's password attributes, kept as digests (None: it writes none)
    passwords: Passwords | None = None
    #: staged deletes a full read that could not be trusted left held, by anchor: their
    #: reason (HELD_PREFIX ...) is kept when they are staged again, so the hold outlives the
    #: cycle and a quarantine-only restart (ForceDeletes or a trusted full read release it)
    held: dict[str, str] = attrs.field(factory=dict)
    #: deletes waiting out DeleteGracePeriod, by anchor: their due time, kept when the same
    #: delete is staged again (a crash's replay, another out-of-scope change)
    waiting: dict[str, datetime] = attrs.field(factory=dict)
    referenced: bool = False  # another mapping's references resolve through these links
    claimed: dict[str, str] = attrs.field(factory=dict)
    failed_now: set[str] = attrs.field(factory=set)  # escrowed in this cycle: not retried in it
    page_links: dict[str, str] = attrs.field(factory=dict)  # links of the page in flight
    unresolved: set[str] = attrs.field(factory=set)  # objects whose references did not resolve
    pending: set[str] = attrs.field(factory=set)  # to process again at the end of the cycle
    #: objects whose matching target object is still joined to an object whose delete is
    #: staged: processed again once the cycle's deletes are applied
    after_deletes: set[str] = attrs.field(factory=set)
    quiet_links: bool = False  # a first full read into no links: nobody can refer to them yet
    #: reference names (connectors.base.REFERENCE_NAME) that objects held dangling when the
    #: cycle began: an object read under one wakes them (read once a cycle: there are few)
    dangling_names: frozenset[str] = frozenset()
    #: reference names an object held that named no object (DANGLING_REFERENCES), until its
    #: references are indexed
    dangling: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
