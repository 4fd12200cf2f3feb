"""One cycle of one job: read -> scope -> map -> join -> diff -> export -> checkpoint.

Correctness rests on three rules. A page's watermark is committed only together with the
outcome (link, escrow or staged delete) of every change in it, so a crash replays at most one
page. Replays are harmless because a create is always preceded by a join (link table, then the
target's matching attributes) and deletes succeed on objects already gone. Deletes are staged
durably and applied only after every page has been read, so they can be counted against the
accidental-deletion threshold before any is applied.
"""

from __future__ import annotations

import random as random_module
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs
import structlog

from connectors.base import (
    Attributes,
    Capability,
    Change,
    ObjectError,
    Page,
    Source,
    Target,
    TransientError,
    as_list,
)
from engine.clock import Clock
from engine.errors import MappingError
from engine.expressions import Env
from engine.mapping import CompiledMapping, diff, map_object
from engine.model import QuarantineReason
from engine.settings import JobSettings
from engine.store.base import (
    Checkpoint,
    Escrow,
    Link,
    LogRecord,
    StagedDelete,
    StateStore,
    decode_values,
    encode_values,
)

T = TypeVar("T")


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
    force_deletes: bool = False
    random: random_module.Random = attrs.field(factory=random_module.Random)
    started: datetime = attrs.field(init=False)
    counters: Counters = attrs.field(factory=Counters)
    log: Any = attrs.field(init=False)
    _changes: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.started = self.clock.now()
        self.log = structlog.get_logger("syncjob.cycle").bind(
            job_id=self.job_id, cycle_id=self.cycle_id
        )

    def state_for(
        self,
        mapping: CompiledMapping,
        escrows: Sequence[Escrow],
        staged: Sequence[StagedDelete],
    ) -> _MappingState:
        """Per-mapping state: open escrows and staged deletes, and the evaluation Env."""
        target_type = mapping.target_type

        def is_unique(attribute: str, value: str) -> bool:
            return self.call(self.target.find, target_type, attribute, value) is None

        referenced = any(owner == mapping.key for m in self.mappings for _, owner in m.references)
        return _MappingState(
            escrows={e.anchor: e for e in escrows if e.mapping == mapping.key},
            staged={s.anchor for s in staged if s.mapping == mapping.key},
            env=Env(now=self.clock.now, random=self.random, is_unique=is_unique),
            referenced=referenced,
        )

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
    ) -> None:
        self.log.debug("object_processed", anchor=anchor, action=action, status=status)
        self._changes += 1
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
            )
        )

    def call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a connector, retrying transient failures with backoff on the engine's clock."""
        try:
            return operation(*args, **kwargs)
        except TransientError as exc:
            failure = exc
        for attempt in range(1, self.settings.transient_retries + 1):
            delay = failure.retry_after if failure.retry_after is not None else 0.5 * 2**attempt
            self.clock.sleep(min(delay, 60.0))
            try:
                return operation(*args, **kwargs)
            except TransientError as exc:
                failure = exc
        raise failure


@attrs.define
class _MappingState:
    """Per mapping and cycle: open escrows and staged deletes, and refs joined in this page."""

    escrows: dict[str, Escrow]
    staged: set[str]
    env: Env
    referenced: bool = False  # another mapping's references resolve through these links
    claimed: dict[str, str] = attrs.field(factory=dict)
    failed_now: set[str] = attrs.field(factory=set)  # escrowed in this cycle: not retried in it
    page_links: dict[str, str] = attrs.field(factory=dict)  # links of the page in flight
    unresolved: set[str] = attrs.field(factory=set)  # objects whose references did not resolve
    pending: set[str] = attrs.field(factory=set)  # to process again at the end of the cycle


def run(ctx: CycleContext) -> CycleOutcome:
    """Run every mapping, then the staged deletes; raises connector errors that end the cycle."""
    outcome = CycleOutcome(ctx.counters)
    staged_all = ctx.store.staged_deletes(ctx.job_id)
    escrows_all = ctx.store.get_escrows(ctx.job_id)
    try:
        states = []
        for mapping in ctx.mappings:
            state = ctx.state_for(mapping, escrows_all, staged_all)
            states.append((mapping, state))
            outcome.initial |= _sync_pages(ctx, mapping, state)
            _retry_escrows(ctx, mapping, state)
        for mapping, state in states:  # references to objects exported later in the cycle
            _second_pass(ctx, mapping, state)
        outcome.quarantine = _apply_staged_deletes(ctx)
    except CyclePaused:
        outcome.paused = True
        ctx.log.info("cycle_paused")
        return outcome
    c = ctx.counters
    events = max(c.imported, c.escrowed)
    if (
        outcome.quarantine is None
        and c.escrowed >= ctx.settings.escrow_minimum
        and c.escrowed > 0
        and c.escrowed / max(events, 1) > ctx.settings.escrow_proportion
    ):
        outcome.quarantine = (
            QuarantineReason.ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD,
            f"{c.escrowed} of {events} objects failed in this cycle",
        )
    return outcome


def _pages(ctx: CycleContext, mapping: CompiledMapping, watermark: str | None) -> Iterator[Page]:
    """Pages from the source; a transient failure resumes from the last page handed out."""
    attempts = 0
    while True:
        try:
            for page in ctx.source.read(mapping.source_type, watermark, ctx.settings.page_size):
                attempts = 0
                yield page
                watermark = page.watermark
            return
        except TransientError as exc:
            attempts += 1
            if attempts > ctx.settings.transient_retries:
                raise
            ctx.clock.sleep(exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempts)


def _sync_pages(ctx: CycleContext, mapping: CompiledMapping, state: _MappingState) -> bool:
    watermark = ctx.store.get_watermark(ctx.job_id, mapping.key)
    initial = watermark is None or watermark.startswith("f:")
    # A first full read into an empty link table cannot meet a link: skip the lookups.
    unlinked = watermark is None and not ctx.store.count_links(ctx.job_id).get(mapping.key)
    for page in _pages(ctx, mapping, watermark):
        if ctx.should_stop():
            raise CyclePaused
        work = Checkpoint(mapping=mapping.key, watermark=page.watermark)
        if not initial:
            ctx.counters.imported_deltas += len(page.changes)
        _process(ctx, mapping, state, page.changes, work, unlinked=unlinked)
        ctx.store.commit(ctx.job_id, work)
        ctx.counters.pages += 1
        ctx.log.debug("page_checkpointed", mapping=mapping.key, changes=len(page.changes))
    return initial


def _retry_escrows(ctx: CycleContext, mapping: CompiledMapping, state: _MappingState) -> None:
    tried = state.failed_now
    while True:
        due = [
            e
            for e in ctx.store.due_escrows(
                ctx.job_id, mapping.key, ctx.started, ctx.settings.page_size + len(tried)
            )
            if e.anchor not in tried
        ]
        if not due:
            return
        if ctx.should_stop():
            raise CyclePaused
        changes: list[Change] = []
        for escrow in due:
            tried.add(escrow.anchor)
            attributes = ctx.call(ctx.source.get, mapping.source_type, escrow.anchor)
            if attributes is None:
                changes.append(Change("delete", escrow.anchor))
            else:
                changes.append(Change("upsert", escrow.anchor, attributes))
        work = Checkpoint()
        _process(ctx, mapping, state, changes, work, final_pass=True)
        ctx.store.commit(ctx.job_id, work)


def _second_pass(ctx: CycleContext, mapping: CompiledMapping, state: _MappingState) -> None:
    """Objects whose references pointed at objects not linked yet: once more, at the end."""
    if not state.pending:
        return
    if ctx.should_stop():
        raise CyclePaused
    anchors = sorted(state.pending)
    state.pending.clear()
    changes = []
    for anchor in anchors:
        attributes = ctx.call(ctx.source.get, mapping.source_type, anchor)
        changes.append(Change("delete", anchor) if attributes is None
                       else Change("upsert", anchor, attributes))
    work = Checkpoint()
    _process(ctx, mapping, state, changes, work, final_pass=True)
    ctx.counters.imported -= len(changes)  # the same objects, not new imports
    ctx.store.commit(ctx.job_id, work)


def _process(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: _MappingState,
    changes: Sequence[Change],
    work: Checkpoint,
    *,
    unlinked: bool = False,
    final_pass: bool = False,
) -> None:
    """Handle a batch of changes; ``final_pass`` escrows unresolved references at once
    instead of deferring them to the end of the cycle."""
    anchors = [c.anchor for c in changes]
    links = {} if unlinked else ctx.store.get_links(ctx.job_id, mapping.key, anchors)
    state.claimed.clear()
    state.page_links.clear()
    ctx.counters.imported += len(changes)
    for change in changes:
        link = links.get(change.anchor)
        try:
            if change.kind == "delete" or change.attributes is None:
                _deprovision(
                    ctx,
                    mapping,
                    state,
                    change.anchor,
                    link,
                    work,
                    soft=not ctx.settings.hard_deletes,
                    reason="deleted in source",
                )
            elif not mapping.in_scope(change.attributes):
                if link is not None and not ctx.settings.skip_out_of_scope_deletions:
                    _deprovision(
                        ctx,
                        mapping,
                        state,
                        change.anchor,
                        link,
                        work,
                        soft=True,
                        reason="out of scope",
                    )
                else:
                    ctx.record(
                        work,
                        mapping,
                        change.anchor,
                        "Other",
                        "skipped",
                        error="not in scope of the scoping filter",
                    )
            else:
                ctx.counters.entitled += 1
                _export(ctx, mapping, state, change.anchor, change.attributes, link, work)
        except (ObjectError, TransientError, MappingError) as exc:
            _escrow(ctx, mapping, state, change.anchor, exc, work)
            continue
        if change.anchor in state.unresolved:
            state.unresolved.discard(change.anchor)
            if final_pass:
                _escrow(ctx, mapping, state, change.anchor,
                        ReferenceNotResolved("a referenced object is not provisioned yet"),
                        work, counted=False)
                continue
            state.pending.add(change.anchor)
        if state.escrows.pop(change.anchor, None) is not None:
            work.unescrows.append((mapping.key, change.anchor))


def _desired(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: _MappingState,
    anchor: str,
    attributes: Attributes,
    *,
    creating: bool,
    previous: str | None = None,
) -> dict[str, Any]:
    """Mapped values, with dropped (IgnoreFlowIfNullOrEmpty) attributes kept as they were and
    references translated to target refs; notes the anchor when a reference is unresolved."""
    ignored: list[str] | None = [] if mapping.may_ignore else None
    desired = map_object(mapping, attributes, state.env, creating=creating, ignored=ignored)
    if ignored and previous is not None:
        before = decode_values(previous)
        for name in ignored:
            if name in before:
                desired[name] = before[name]
    if mapping.references and not _resolve_references(ctx, mapping, state, desired):
        state.unresolved.add(anchor)
    return desired


def _resolve_references(
    ctx: CycleContext, mapping: CompiledMapping, state: _MappingState, desired: dict[str, Any]
) -> bool:
    """Source anchors in Reference attributes become target refs through the link table."""
    complete = True
    for attribute, owner in mapping.references:
        value = desired.get(attribute)
        if value is None:
            continue  # most objects: no manager, no members
        anchors = [str(v) for v in as_list(value)]
        found = {a: state.page_links[a] for a in anchors if owner == mapping.key
                 and a in state.page_links}
        missing = [a for a in anchors if a not in found]
        if missing:
            found.update((a, link.target_ref) for a, link in
                         ctx.store.get_links(ctx.job_id, owner, missing).items())
        resolved = [found[a] for a in anchors if a in found]
        if len(resolved) < len(anchors):
            complete = False
        if isinstance(value, list):
            desired[attribute] = resolved
        elif resolved:
            desired[attribute] = resolved[0]
        else:
            del desired[attribute]
    return complete


def _export(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: _MappingState,
    anchor: str,
    attributes: Attributes,
    link: Link | None,
    work: Checkpoint,
) -> None:
    if anchor in state.staged:
        state.staged.discard(anchor)
        work.unstaged.append((mapping.key, anchor))
    target_type = mapping.target_type
    if link is not None:
        desired = _desired(ctx, mapping, state, anchor, attributes, creating=False,
                           previous=link.exported)
        exported = encode_values(desired)
        delta = (
            {}
            if exported == link.exported
            else diff(mapping, desired, decode_values(link.exported))
        )
        if delta and "update" in mapping.flows:
            ctx.counters.exports += 1
            ctx.call(ctx.target.update, target_type, link.target_ref, delta)
            ctx.counters.exported += 1
            ctx.record(
                work, mapping, anchor, "Update", target_ref=link.target_ref, names=sorted(delta)
            )
        else:
            ctx.record(
                work,
                mapping,
                anchor,
                "Other",
                "skipped",
                target_ref=link.target_ref,
                error="RedundantExport" if not delta else "Update is not in flowTypes",
            )
            if exported == link.exported:
                return
        _link(state, work, link._replace(exported=exported))
        return
    # inline: this is the per-object hot path of every initial cycle
    desired = map_object(mapping, attributes, state.env, creating=not mapping.has_create_only,
                         ignored=[] if mapping.may_ignore else None)
    if mapping.references and not _resolve_references(ctx, mapping, state, desired):
        state.unresolved.add(anchor)
    ref = None
    matchable = False
    for name in mapping.matching:
        value = desired.get(name)
        if value is None:
            continue
        matchable = True
        ref = ctx.call(ctx.target.find, target_type, name, as_list(value)[0])
        if ref is not None:
            break
    if not matchable:
        raise ObjectError(
            f"no value for any matching attribute ({', '.join(mapping.matching)}): "
            "the object cannot be matched safely"
        )
    ctx.counters.exports += 1
    if ref is not None:
        owner = state.claimed.get(ref) or ctx.store.anchor_for_ref(ctx.job_id, mapping.key, ref)
        if owner is not None and owner != anchor:
            raise ObjectError(f"the matching target object {ref} is already joined to {owner}")
        delta = diff(mapping, desired, None)
        if delta and "update" in mapping.flows:
            ctx.call(ctx.target.update, target_type, ref, delta)
        ctx.record(work, mapping, anchor, "Update", target_ref=ref, names=sorted(delta))
    elif "add" in mapping.flows:
        if mapping.has_create_only:
            desired = _desired(ctx, mapping, state, anchor, attributes, creating=True)
        ref = ctx.call(ctx.target.create, target_type, desired)
        ctx.record(work, mapping, anchor, "Create", target_ref=ref, names=tuple(desired))
    else:
        ctx.counters.exports -= 1
        ctx.record(work, mapping, anchor, "Other", "skipped", error="Add is not in flowTypes")
        return
    ctx.counters.exported += 1
    state.claimed[ref] = anchor
    work.links.append(Link(mapping.key, anchor, ref, encode_values(desired)))
    if state.referenced:
        state.page_links[anchor] = ref


def _link(state: _MappingState, work: Checkpoint, link: Link) -> None:
    work.links.append(link)
    if state.referenced:
        state.page_links[link.anchor] = link.target_ref


def _deprovision(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: _MappingState,
    anchor: str,
    link: Link | None,
    work: Checkpoint,
    *,
    soft: bool,
    reason: str,
) -> None:
    if link is None:
        return
    if "delete" not in mapping.flows:
        ctx.record(
            work,
            mapping,
            anchor,
            "Other",
            "skipped",
            target_ref=link.target_ref,
            error=f"{reason}, but Delete is not in flowTypes",
        )
        return
    capabilities = ctx.target.capabilities
    if soft and Capability.SOFT_DELETE not in capabilities:
        soft = False
    elif not soft and Capability.DELETE not in capabilities:
        soft = True
    state.staged.add(anchor)
    work.staged.append(
        StagedDelete(
            mapping=mapping.key,
            anchor=anchor,
            target_type=mapping.target_type,
            target_ref=link.target_ref,
            soft=soft,
            reason=reason,
        )
    )


def _escrow(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: _MappingState,
    anchor: str,
    exc: Exception,
    work: Checkpoint,
    *,
    counted: bool = True,
) -> None:
    """Escrow one object; reference failures are ``counted=False``: like Entra, they do not
    count toward the escrow-share quarantine."""
    now = ctx.clock.now()
    previous = state.escrows.get(anchor)
    attempts = (previous.attempts if previous else 0) + 1
    first = previous.first_failed if previous else now
    escrow = Escrow(
        mapping=mapping.key,
        anchor=anchor,
        attempts=attempts,
        first_failed=first,
        next_retry=now + ctx.settings.escrow_delay(attempts),
        error=f"{type(exc).__name__}: {exc}",
        parked=now - first > ctx.settings.escrow_max_age,
    )
    state.escrows[anchor] = escrow
    state.failed_now.add(anchor)
    work.escrows.append(escrow)
    if counted:
        ctx.counters.escrowed += 1
    else:
        ctx.counters.unresolved += 1
    ctx.record(work, mapping, anchor, "Other", "failure", error=escrow.error)
    ctx.log.warning(
        "object_escrowed", anchor=anchor, attempts=attempts, error_type=type(exc).__name__
    )


def _apply_staged_deletes(ctx: CycleContext) -> tuple[QuarantineReason, str] | None:
    staged = ctx.store.staged_deletes(ctx.job_id)
    if not staged:
        return None
    by_key = {m.key: m for m in ctx.mappings}
    limit = ctx.settings.delete_threshold
    linked = sum(ctx.store.count_links(ctx.job_id).values())
    over = limit is not None and len(staged) > limit
    percent = ctx.settings.delete_threshold_percent
    if percent is not None and len(staged) > linked * percent / 100:
        over = True
    if over and not ctx.force_deletes:
        work = Checkpoint()
        for s in staged:
            if s.mapping in by_key:
                ctx.record(
                    work,
                    by_key[s.mapping],
                    s.anchor,
                    "StagedDelete",
                    "skipped",
                    target_ref=s.target_ref,
                    error=s.reason,
                )
        ctx.store.commit(ctx.job_id, work)
        ctx.log.warning("deletes_held", staged=len(staged), threshold=limit)
        return (
            QuarantineReason.TOO_MANY_DELETES,
            f"{len(staged)} deletes exceed the accidental-deletion threshold ({limit}); "
            "restart with ForceDeletes to apply them",
        )
    page = max(ctx.settings.page_size, 1)
    for start in range(0, len(staged), page):
        if ctx.should_stop():
            raise CyclePaused
        work = Checkpoint()
        for s in staged[start : start + page]:
            mapping = by_key.get(s.mapping)
            if mapping is None:  # its mapping left the schema: drop the stale intent
                work.unstaged.append((s.mapping, s.anchor))
                continue
            ctx.counters.exports += 1
            try:
                ctx.call(ctx.target.delete, s.target_type, s.target_ref, soft=s.soft)
            except (ObjectError, TransientError) as exc:
                ctx.counters.escrowed += 1
                ctx.record(
                    work,
                    mapping,
                    s.anchor,
                    "Disable" if s.soft else "Delete",
                    "failure",
                    target_ref=s.target_ref,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            ctx.counters.exported += 1
            ctx.counters.deleted += 1
            work.unstaged.append((s.mapping, s.anchor))
            work.unlinks.append((s.mapping, s.anchor))
            ctx.record(
                work,
                mapping,
                s.anchor,
                "Disable" if s.soft else "Delete",
                target_ref=s.target_ref,
                error=None,
            )
        ctx.store.commit(ctx.job_id, work)
    return None


def provision_one(ctx: CycleContext, anchor: str) -> list[LogRecord]:
    """Run one object through every mapping of ``ctx`` now, deletes applied at once."""
    records: list[LogRecord] = []
    escrows = ctx.store.get_escrows(ctx.job_id)
    staged = ctx.store.staged_deletes(ctx.job_id)
    for mapping in ctx.mappings:
        state = ctx.state_for(mapping, escrows, staged)
        attributes = ctx.call(ctx.source.get, mapping.source_type, anchor)
        change = (
            Change("delete", anchor) if attributes is None
            else Change("upsert", anchor, attributes)
        )
        work = Checkpoint()
        _process(ctx, mapping, state, [change], work, final_pass=True)
        for item in work.staged:
            try:
                ctx.call(ctx.target.delete, item.target_type, item.target_ref, soft=item.soft)
            except (ObjectError, TransientError) as exc:
                ctx.record(work, mapping, anchor, "Delete", "failure",
                           target_ref=item.target_ref, error=f"{type(exc).__name__}: {exc}")
                continue
            work.unstaged.append((mapping.key, anchor))
            work.unlinks.append((mapping.key, anchor))
            ctx.record(work, mapping, anchor, "Disable" if item.soft else "Delete",
                       target_ref=item.target_ref)
        work.staged = [s for s in work.staged if (s.mapping, s.anchor) not in work.unstaged]
        ctx.store.commit(ctx.job_id, work)
        records.extend(work.logs)
    return records
