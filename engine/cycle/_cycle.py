"""One cycle of one job: read -> scope -> map -> join -> diff -> export -> checkpoint.

Correctness rests on four rules. A page's watermark is committed only together with the
outcome (link, escrow or staged delete) of every change in it, so a crash replays at most one
page. Every target write is preceded by a durable intent, settled after a crash before the
source is read again (engine/_recovery.py), so a replay is exact even when the source moved
meanwhile. A create is always preceded by a join (link table, then the target's matching
attributes) and deletes succeed on objects already gone. Deletes are staged durably and
applied only after every page has been read, so they can be counted against the
accidental-deletion threshold before any is applied; those an interrupted cycle left are
settled before escrows are retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import attrs

from connectors.base import (
    Attributes,
    Change,
    ObjectError,
    Page,
    ReadsMany,
    TransientError,
    WatermarkExpired,
)
from engine.cycle._context import (
    HELD_PREFIX,
    MAX_RETRIES,
    Counters,
    CycleContext,
    CycleOutcome,
    CyclePaused,
    MappingState,
    ReferenceNotResolved,
    backoff,
)
from engine.cycle._deletes import apply_staged_deletes, delete_intents
from engine.cycle._objects import (
    WAITING_FOR_MATCH,
    Batch,
    deprovision,
    escrow,
    object_failure,
    plan,
    process,
    write,
)
from engine.cycle._recovery import settle_intents
from engine.directory_values import storable_text
from engine.errors import SourceContractError
from engine.mapping import CompiledMapping
from engine.model import QuarantineReason
from engine.store.base import (
    Checkpoint,
    LogRecord,
)

__all__ = [
    "Counters",
    "CycleContext",
    "CycleOutcome",
    "CyclePaused",
    "ReferenceNotResolved",
    "provision_one",
    "run",
]


def run(ctx: CycleContext) -> CycleOutcome:
    """Settle a crash's intents, run every mapping, re-evaluate what refers to links that
    changed, apply the staged deletes; raises connector errors that end the cycle."""
    outcome = CycleOutcome(ctx.counters)
    try:
        in_doubt = settle_intents(ctx)
        for mapping_key, anchor in ctx.store.link_events(ctx.job_id):  # an earlier cycle's
            ctx.link_events.setdefault(mapping_key, set()).add(anchor)
            ctx.events_recorded = True
        staged_all = ctx.store.staged_deletes(ctx.job_id)
        escrows_all = ctx.store.get_escrows(ctx.job_id)
        for mapping in ctx.mappings:
            ctx.states[mapping.key] = ctx.state_for(mapping, escrows_all, staged_all)
        for mapping in ctx.mappings:
            state = ctx.states[mapping.key]
            _reprocess(ctx, mapping, state, in_doubt.get(mapping.key, ()), final_pass=False)
            outcome.initial |= _sync_pages(ctx, mapping, state)
            left = {(s.mapping, s.anchor) for s in staged_all if s.mapping == mapping.key}
            if left:  # an interrupted cycle's deletes go before escrows (a rehire waits not)
                apply_staged_deletes(ctx, only=left)
            _retry_escrows(ctx, mapping, state)
        # objects waiting for a staged delete (a rehire taking over its old match) are linked
        # only after the deletes: whoever refers to them is escrowed only after that
        waiting = any(state.after_deletes for state in ctx.states.values())
        _settle_references(ctx, final=not waiting)
        outcome.quarantine = apply_staged_deletes(ctx)
        ctx.deletes_applied = True
        for mapping in ctx.mappings:  # objects that take over a deleted object's match
            state = ctx.states[mapping.key]
            _reprocess(ctx, mapping, state, sorted(state.after_deletes), final_pass=True)
        if _settle_references(ctx) and ctx.events_recorded:
            ctx.commit(Checkpoint(clear_events=True))
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
        message = f"{c.escrowed} of {events} objects failed in this cycle"
        common = c.most_common_failure()
        if common is not None:
            message += f"; {common[0]} of them with {common[1]}"
        outcome.quarantine = (QuarantineReason.ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD, message)
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
            if attempts > min(ctx.settings.transient_retries, MAX_RETRIES):
                raise
            ctx.wait(backoff(attempts, exc.retry_after))


def _is_full(watermark: str | None) -> bool:
    return watermark is None or watermark.startswith("f:")


def _sync_pages(ctx: CycleContext, mapping: CompiledMapping, state: MappingState) -> bool:
    """Read the mapping's changes; returns whether it was a full (initial) read."""
    watermark = ctx.store.get_watermark(ctx.job_id, mapping.key)
    sweeping = ctx.store.sweeping(ctx.job_id, mapping.key)
    if sweeping and not _is_full(watermark):  # a full read ended, its reconciliation did not
        _reconcile(ctx, mapping, state)
        sweeping = False
    try:
        return _read(ctx, mapping, state, watermark, sweeping)
    except WatermarkExpired as exc:
        if watermark is None:
            raise
        ctx.log.warning("watermark_expired", mapping=mapping.key, error=str(exc))
        return _read(ctx, mapping, state, None, sweeping=False)


def _read(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    watermark: str | None,
    sweeping: bool,
) -> bool:
    """Pages from ``watermark`` on. A full read over existing links reconciles: it records
    what it saw, and once it has completed, deprovisions the links it did not see."""
    initial = _is_full(watermark)
    linked = bool(ctx.store.count_links(ctx.job_id).get(mapping.key))
    # A first full read into an empty link table cannot meet a link: skip the lookups.
    unlinked = watermark is None and not linked
    start = watermark is None and linked
    sweep = sweeping or start
    window = Window(ctx, distinct=initial)
    ctx.begin_read(mapping.source_type)
    for page in _pages(ctx, mapping, watermark):
        if ctx.should_stop():
            window.flush(stoppable=False)  # what was read is written: the next checkpoint
            raise CyclePaused
        if not storable_text(page.watermark):
            raise SourceContractError(
                f"the {mapping.source_type} source gave a watermark that is not storable text"
            )
        window.make_room(page.changes)
        work = Checkpoint(mapping=mapping.key, watermark=page.watermark)
        if sweep:
            work.sweep_start, start = start, False
            work.seen = [
                c.anchor for c in page.changes if c.kind == "upsert" and storable_text(c.anchor)
            ]
        if not initial:
            ctx.counters.imported_deltas += len(page.changes)
        ctx.page_read(len(page.changes), page.remaining)
        if page.inferred_deletes:
            _judge_inferred(ctx, mapping, state, page.changes)
        window.add(
            plan(ctx, mapping, state, page.changes, work, unlinked=unlinked), len(page.changes)
        )
    window.flush()
    if sweep:
        _reconcile(ctx, mapping, state)
    return initial


class Window:
    """Pages decided ahead and written together under one write-ahead record.

    The fsynced intent record is the costly commit of a page; a window of a few pages shares
    one. A page's checkpoint still commits its own watermark with its own outcome; the
    window's last checkpoint clears the record (a crash in between settles the whole window,
    which is harmless for the pages already checkpointed). A page that names an anchor the
    window already holds closes the window first, so no change is decided on a link that an
    earlier page of the window is about to write.
    """

    OBJECTS = 500  # per window: the default page; many pages of a small PageSize

    def __init__(self, ctx: CycleContext, *, distinct: bool) -> None:
        self.ctx = ctx
        self.distinct = distinct  # a full read names each anchor once: nothing to check
        self.batches: list[Batch] = []
        self.sizes: list[int] = []  # each batch's changes as the source gave them
        self.anchors: set[str] = set()
        self.size = 0

    def make_room(self, changes: Sequence[Change]) -> None:
        if not self.distinct:
            anchors = {c.anchor for c in changes}
            if self.batches and not anchors.isdisjoint(self.anchors):
                self.flush()
            self.anchors |= anchors
        self.size += len(changes)

    def add(self, batch: Batch, changes: int) -> None:
        self.batches.append(batch)
        self.sizes.append(changes)
        if self.size >= self.OBJECTS:
            self.flush()

    def flush(self, *, stoppable: bool = True) -> None:
        ctx, batches, sizes = self.ctx, self.batches, self.sizes
        self.batches, self.sizes, self.anchors, self.size = [], [], set(), 0
        if not batches:
            return
        records = [b.intents for b in batches if b.anchors]
        if records:
            ctx.write_intents(records)
        for n, batch in enumerate(batches):
            if n and stoppable and ctx.should_stop():  # the rest was never written, nor goes
                ctx.commit(Checkpoint(clear_intents=bool(records)))
                raise CyclePaused
            write(ctx, batch)
            batch.work.clear_intents = bool(records) and n == len(batches) - 1
            ctx.commit(batch.work)
            ctx.counters.pages += 1
            ctx.log.debug(
                "page_checkpointed", mapping=batch.mapping.key, changes=len(batch.anchors)
            )
            ctx.page_done(sizes[n])


#: why a reconciliation stages a delete: only the completed full read says the object went
NOT_SEEN = "not in the full read"


def _reconcile(ctx: CycleContext, mapping: CompiledMapping, state: MappingState) -> None:
    """Stage the deprovisioning of every linked object the completed full read did not see:
    deletes like any other, counted against the threshold with the rest of the cycle's.

    The verdict on the read (trusted, or too few seen: SourceShrinkThreshold) is committed
    with the sweep's end, on the staged deletes themselves: held ones stay held in later
    cycles until ForceDeletes or a trusted full read, and a crash cannot lose the verdict
    (an unfinished reconciliation is run again, counting what it staged before)."""
    soft = not ctx.settings.hard_deletes
    # what an earlier cycle staged: the source said those objects went (a delete, out of
    # scope), or an earlier pass of this reconciliation inferred it (NOT_SEEN, held)
    reasons = {
        staged.anchor: staged.reason
        for staged in ctx.store.staged_deletes(ctx.job_id)
        if staged.mapping == mapping.key
    }
    after, count, missed, gone = "", 0, 0, 0
    while True:
        if ctx.should_stop():
            raise CyclePaused
        unseen = ctx.store.unseen_links(ctx.job_id, mapping.key, after, ctx.settings.page_size)
        if not unseen:
            break
        work = Checkpoint()
        for link in unseen:
            reason = reasons.get(link.anchor)
            if link.anchor in state.waiting:  # its delete waits out DeleteGracePeriod
                gone += 1
            elif reason is None or reason == NOT_SEEN or reason.startswith(HELD_PREFIX):
                missed += 1  # only this read says it is gone: the read is judged by these
            else:
                gone += 1
            if link.anchor not in state.staged:
                count += 1
                deprovision(ctx, mapping, state, link.anchor, link, work, soft, NOT_SEEN)
        ctx.commit(work)
        after = unseen[-1].anchor
    # an object re-added under a new anchor (LDAP: deleted and added again under its DN)
    # waits for the target object its old, unseen anchor holds: re-anchored, not missing
    rehired = min(missed, _waiting_for_a_match(state))
    missed, gone = missed - rehired, gone + rehired
    shrunk = _shrink(ctx, mapping, missed, gone) if missed else None
    end = Checkpoint(mapping=mapping.key, sweep_end=True)
    for staged in ctx.store.staged_deletes(ctx.job_id):
        if staged.mapping != mapping.key:
            continue
        held = staged.reason.startswith(HELD_PREFIX)
        if shrunk is not None:
            reason = HELD_PREFIX + shrunk
            state.held[staged.anchor] = reason
        elif held:  # a trusted full read still misses it: an ordinary delete now
            reason = NOT_SEEN
            state.held.pop(staged.anchor, None)
        else:
            continue
        end.staged.append(attrs.evolve(staged, reason=reason))
    ctx.commit(end)
    ctx.log.info("full_read_reconciled", mapping=mapping.key, deprovisioned=count)
    if shrunk is not None:
        ctx.log.warning("full_read_untrusted", mapping=mapping.key, reason=shrunk)


def _waiting_for_a_match(state: MappingState) -> int:
    """Objects read that wait for a matching target object another anchor still holds: in
    this cycle (``after_deletes``), or held so by an earlier, interrupted one."""
    held = {a for a, e in state.escrows.items() if e.error.startswith(WAITING_FOR_MATCH)}
    return len(held | state.after_deletes)


def _judge_inferred(
    ctx: CycleContext, mapping: CompiledMapping, state: MappingState, changes: Sequence[Change]
) -> None:
    """Deletes a source inferred from absence are a full read's verdict in disguise: too many
    at once and they are staged held (their reason kept by ``deprovision``), as the
    reconciliation of an untrusted full read would hold them."""
    gone = [c.anchor for c in changes if c.kind == "delete"]
    waiting = sum(anchor in state.waiting for anchor in gone)
    missed = len(gone) - waiting
    shrunk = _shrink(ctx, mapping, missed, waiting) if missed else None
    if shrunk is None:
        return
    reason = HELD_PREFIX + shrunk.replace("the full read of", "the listing of", 1)
    for anchor in gone:
        state.held[anchor] = reason
    ctx.log.warning("inferred_deletes_untrusted", mapping=mapping.key, reason=reason)


def _shrink(ctx: CycleContext, mapping: CompiledMapping, missed: int, gone: int) -> str | None:
    """A full read that saw none, or too few, of the objects the job has linked is more
    likely a wrong base DN, a filter or a permission than a directory emptied overnight:
    its deletes are held with the rest of the cycle's, and the quarantine says what was
    seen (SourceShrinkThreshold; ForceDeletes applies them). ``missed``: linked objects only
    this read says are gone; ``gone``: linked objects known to be going (the source said so,
    or their delete waits out the grace period), which the read is right not to see."""
    linked = ctx.store.count_links(ctx.job_id).get(mapping.key, 0) - gone
    if linked <= 0:
        return None
    threshold = ctx.settings.source_shrink_threshold
    if missed < linked and missed * 100 <= threshold * linked:
        return None
    return (
        f"the full read of {mapping.source_type} saw {linked - missed} of the {linked} "
        f"objects the job has linked (SourceShrinkThreshold {threshold:g}%)"
    )


def _retry_escrows(ctx: CycleContext, mapping: CompiledMapping, state: MappingState) -> None:
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
        tried.update(e.anchor for e in due)
        _reprocess(ctx, mapping, state, [e.anchor for e in due], final_pass=True, counted=True)


def _second_pass(
    ctx: CycleContext, mapping: CompiledMapping, state: MappingState, *, final: bool = True
) -> None:
    """Objects whose references pointed at objects not linked yet: once more, at the end."""
    if not state.pending:
        return
    anchors = sorted(state.pending)
    state.pending.clear()
    _reprocess(ctx, mapping, state, anchors, final_pass=final)


def _settle_references(ctx: CycleContext, *, final: bool = True) -> bool:
    """Evaluate again every object that refers to a link that appeared, went or changed in
    this cycle (found through the reverse index), together with the objects whose references
    did not resolve earlier in the cycle; a few rounds, since a re-evaluated object may get a
    link of its own. What still does not resolve is escrowed as ReferenceNotResolved, or,
    not ``final``, kept pending for a later settle once no new link turns up.
    Returns whether every link event was followed (then the stored events can go)."""
    for _ in range(4):
        events, ctx.link_events = ctx.link_events, {}
        for owner, anchors in events.items():
            for referrer_mapping, referrer in ctx.store.referrers(ctx.job_id, owner, anchors):
                state = ctx.states.get(referrer_mapping)
                if state is not None:
                    state.pending.add(referrer)
        if not any(state.pending for state in ctx.states.values()):
            return not ctx.link_events
        if not final and not events:
            return False  # what is left waits for links made after the deletes
        for mapping in ctx.mappings:
            _second_pass(ctx, mapping, ctx.states[mapping.key], final=final)
    return not ctx.link_events


def _reprocess(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchors: Sequence[str],
    *,
    final_pass: bool,
    counted: bool = False,
) -> None:
    """Process objects again as the source has them now, a page at a time; ``counted`` says
    whether they count as imports (escrow retries do, second passes and recovery do not)."""
    page = max(ctx.settings.page_size, 1)
    for start in range(0, len(anchors), page):
        if ctx.should_stop():
            raise CyclePaused
        changes = []
        work = Checkpoint()
        chunk = anchors[start : start + page]
        read = _read_many(ctx, mapping, chunk)
        for anchor in chunk:
            try:
                attributes = (
                    read[anchor]
                    if anchor in read
                    else ctx.call(ctx.source.get, mapping.source_type, anchor)
                )
            except Exception as exc:  # this one object cannot be read now: escrow it
                escrow(ctx, mapping, state, anchor, object_failure(exc), work)
                continue
            changes.append(
                Change("delete", anchor)
                if attributes is None
                else Change("upsert", anchor, attributes)
            )
        process(ctx, mapping, state, changes, work, final_pass=final_pass)
        if not counted:
            ctx.counters.imported -= len(changes)  # the same objects, not new imports
        ctx.commit(work)


def _read_many(
    ctx: CycleContext, mapping: CompiledMapping, anchors: Sequence[str]
) -> Mapping[str, Attributes | None]:
    """The objects as the source has them now, in one call where the source reads many at once
    (ReadsMany); empty when it cannot, or when that call fails: the objects are then read one
    by one, so that only one that cannot be read is escrowed."""
    if len(anchors) < 2 or not isinstance(ctx.source, ReadsMany):
        return {}
    try:
        return ctx.call(ctx.source.get_many, mapping.source_type, anchors)
    except Exception:  # each object's own read says what is wrong, as without get_many
        return {}


def provision_one(ctx: CycleContext, anchor: str) -> list[LogRecord]:
    """Run one object through every mapping of ``ctx`` now, deletes applied at once."""
    records: list[LogRecord] = []
    escrows = ctx.store.get_escrows(ctx.job_id)
    staged = ctx.store.staged_deletes(ctx.job_id)
    for mapping in ctx.mappings:
        ctx.states[mapping.key] = ctx.state_for(mapping, escrows, staged)
    for mapping in ctx.mappings:
        state = ctx.states[mapping.key]
        attributes = ctx.call(ctx.source.get, mapping.source_type, anchor)
        change = (
            Change("delete", anchor) if attributes is None else Change("upsert", anchor, attributes)
        )
        work = Checkpoint()
        process(ctx, mapping, state, [change], work, final_pass=True)
        # a delete an untrusted full read holds is not this source's word either: the same
        # read (a wrong base DN, filter or permission) that missed it misses it here
        held = [s for s in work.staged if s.reason.startswith(HELD_PREFIX)]
        sending = [s for s in work.staged if ctx.force_deletes or s not in held]
        for item in held if not ctx.force_deletes else ():
            ctx.record(
                work,
                mapping,
                anchor,
                "StagedDelete",
                "skipped",
                target_ref=item.target_ref,
                error=item.reason,
            )
        if sending:
            ctx.write_intents(delete_intents(ctx, sending))
            work.clear_intents = True
        for item in sending:
            try:
                ctx.call(ctx.target.delete, item.target_type, item.target_ref, soft=item.soft)
            except (ObjectError, TransientError) as exc:
                ctx.record(
                    work,
                    mapping,
                    anchor,
                    "Delete",
                    "failure",
                    target_ref=item.target_ref,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            work.unstaged.append((mapping.key, anchor))
            work.unlinks.append((mapping.key, anchor))
            ctx.record(
                work,
                mapping,
                anchor,
                "Disable" if item.soft else "Delete",
                target_ref=item.target_ref,
            )
        work.staged = [s for s in work.staged if (s.mapping, s.anchor) not in work.unstaged]
        ctx.commit(work)
        records.extend(work.logs)
    return records
