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

from collections.abc import Iterator, Sequence

from connectors.base import (
    Change,
    ObjectError,
    Page,
    TransientError,
)
from engine._context import (
    MAX_RETRIES,
    Counters,
    CycleContext,
    CycleOutcome,
    CyclePaused,
    MappingState,
    ReferenceNotResolved,
    backoff,
)
from engine._contract import SourceContractError, storable_text
from engine._deletes import apply_staged_deletes, delete_intents
from engine._objects import process
from engine._recovery import settle_intents
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
    """Settle a crash's intents, run every mapping, then the staged deletes; raises connector
    errors that end the cycle."""
    outcome = CycleOutcome(ctx.counters)
    try:
        in_doubt = settle_intents(ctx)
        staged_all = ctx.store.staged_deletes(ctx.job_id)
        escrows_all = ctx.store.get_escrows(ctx.job_id)
        states = []
        for mapping in ctx.mappings:
            state = ctx.state_for(mapping, escrows_all, staged_all)
            states.append((mapping, state))
            _reprocess(ctx, mapping, state, in_doubt.get(mapping.key, ()), final_pass=False)
            outcome.initial |= _sync_pages(ctx, mapping, state)
            left = {(s.mapping, s.anchor) for s in staged_all if s.mapping == mapping.key}
            if left:  # an interrupted cycle's deletes go before escrows (a rehire waits not)
                apply_staged_deletes(ctx, only=left)
            _retry_escrows(ctx, mapping, state)
        for mapping, state in states:  # references to objects exported later in the cycle
            _second_pass(ctx, mapping, state)
        outcome.quarantine = apply_staged_deletes(ctx)
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
            if attempts > min(ctx.settings.transient_retries, MAX_RETRIES):
                raise
            ctx.clock.sleep(backoff(attempts, exc.retry_after))


def _sync_pages(ctx: CycleContext, mapping: CompiledMapping, state: MappingState) -> bool:
    watermark = ctx.store.get_watermark(ctx.job_id, mapping.key)
    initial = watermark is None or watermark.startswith("f:")
    # A first full read into an empty link table cannot meet a link: skip the lookups.
    unlinked = watermark is None and not ctx.store.count_links(ctx.job_id).get(mapping.key)
    for page in _pages(ctx, mapping, watermark):
        if ctx.should_stop():
            raise CyclePaused
        if not storable_text(page.watermark):
            raise SourceContractError(
                f"the {mapping.source_type} source gave a watermark that is not storable text"
            )
        work = Checkpoint(mapping=mapping.key, watermark=page.watermark)
        if not initial:
            ctx.counters.imported_deltas += len(page.changes)
        process(ctx, mapping, state, page.changes, work, unlinked=unlinked)
        ctx.commit(work)
        ctx.counters.pages += 1
        ctx.log.debug("page_checkpointed", mapping=mapping.key, changes=len(page.changes))
    return initial


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
        for escrow in due:
            tried.add(escrow.anchor)
        _reprocess(ctx, mapping, state, [e.anchor for e in due], final_pass=True, counted=True)


def _second_pass(ctx: CycleContext, mapping: CompiledMapping, state: MappingState) -> None:
    """Objects whose references pointed at objects not linked yet: once more, at the end."""
    if not state.pending:
        return
    anchors = sorted(state.pending)
    state.pending.clear()
    _reprocess(ctx, mapping, state, anchors, final_pass=True)


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
        for anchor in anchors[start : start + page]:
            attributes = ctx.call(ctx.source.get, mapping.source_type, anchor)
            changes.append(
                Change("delete", anchor)
                if attributes is None
                else Change("upsert", anchor, attributes)
            )
        work = Checkpoint()
        process(ctx, mapping, state, changes, work, final_pass=final_pass)
        if not counted:
            ctx.counters.imported -= len(changes)  # the same objects, not new imports
        ctx.commit(work)


def provision_one(ctx: CycleContext, anchor: str) -> list[LogRecord]:
    """Run one object through every mapping of ``ctx`` now, deletes applied at once."""
    records: list[LogRecord] = []
    escrows = ctx.store.get_escrows(ctx.job_id)
    staged = ctx.store.staged_deletes(ctx.job_id)
    for mapping in ctx.mappings:
        state = ctx.state_for(mapping, escrows, staged)
        attributes = ctx.call(ctx.source.get, mapping.source_type, anchor)
        change = (
            Change("delete", anchor) if attributes is None else Change("upsert", anchor, attributes)
        )
        work = Checkpoint()
        process(ctx, mapping, state, [change], work, final_pass=True)
        if work.staged:
            ctx.write_intents(delete_intents(ctx, work.staged))
            work.clear_intents = True
        for item in work.staged:
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
