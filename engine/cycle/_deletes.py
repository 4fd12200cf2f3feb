"""Staged deletes: counted against the accidental-deletion threshold, then applied or held.

With DeleteGracePeriod, a hard delete that passes the threshold is not sent yet: where the
target can disable, the object is disabled now, its link kept with its values marked unknown
(a source object back in time gets a complete update, which enables it again), and the delete
is staged again, due at the end of the period; where it cannot, nothing is written and the
delete waits, staged. A delete not yet due is neither applied nor counted; once due it is
applied as any other, threshold and held verdict included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from datetime import datetime
from itertools import groupby

import attrs

from connectors.base import (
    Capability,
    ObjectError,
    TransientError,
)
from engine.cycle._context import HELD_PREFIX, LABELS_KEPT, CycleContext, CyclePaused
from engine.cycle._names import identity
from engine.directory_values import decode_values, unknown
from engine.mapping import CompiledMapping
from engine.model import QuarantineReason
from engine.store.base import (
    Checkpoint,
    IntentBatch,
    Link,
    StagedDelete,
)


def delete_intents(
    ctx: CycleContext,
    batch: Sequence[StagedDelete],
    known: Mapping[tuple[str, str], Link] | None = None,
) -> list[IntentBatch]:
    """Intents for deletes about to be sent, with the values the object was last exported
    with: after a crash they tell whether it survived (see engine/_recovery.py). ``known``:
    the batch's links by (mapping, anchor), when the caller has read them already."""
    by_key = {m.key: m for m in ctx.mappings}
    batches = []
    for mapping_key, group in groupby(batch, key=lambda s: s.mapping):
        mapping = by_key.get(mapping_key)
        if mapping is None:
            continue
        items = list(group)
        if known is None:
            links = ctx.store.get_links(ctx.job_id, mapping_key, [s.anchor for s in items])
        else:
            links = {s.anchor: known[(mapping_key, s.anchor)] for s in items}
        intents = IntentBatch(mapping_key, mapping.target_type, mapping.matching)
        for s in items:
            link = links.get(s.anchor)
            intents.deletes.append((s.anchor, s.target_ref, link.exported if link else ""))
        batches.append(intents)
    return batches


def apply_staged_deletes(
    ctx: CycleContext, only: Set[tuple[str, str]] | None = None
) -> tuple[QuarantineReason, str] | None:
    """Apply the staged deletes, or hold them all when they exceed the threshold.

    ``only`` (mapping, anchor) pairs: settle those early (an interrupted cycle's), holding
    them quietly when over the threshold; the end of the cycle counts and reports them all.
    The guards always judge every staged delete, never the subset: a hold split by mapping
    would otherwise be applied piecemeal, each mapping's share under the threshold.
    """
    now = ctx.clock.now()  # deletes waiting out DeleteGracePeriod are neither applied nor counted
    every = [s for s in ctx.store.staged_deletes(ctx.job_id) if s.due is None or s.due <= now]
    staged = every if only is None else [s for s in every if (s.mapping, s.anchor) in only]
    if not staged:
        return None
    by_key = {m.key: m for m in ctx.mappings}
    limit = ctx.settings.delete_threshold
    linked = sum(ctx.store.count_links(ctx.job_id).values())
    over = limit is not None and len(every) > limit
    percent = ctx.settings.delete_threshold_percent
    if percent is not None and len(every) > linked * percent / 100:
        over = True
    cut = len(HELD_PREFIX)
    held = sorted({s.reason[cut:] for s in every if s.reason.startswith(HELD_PREFIX)})
    if held:  # an untrusted full read's verdict, this cycle's or an earlier one's
        over = True
    if over and not ctx.force_deletes:
        if only is not None:
            return None
        work = Checkpoint()
        for s in staged:
            if s.mapping in by_key:
                _label(ctx, [s], None)
                ctx.record(
                    work,
                    by_key[s.mapping],
                    s.anchor,
                    "StagedDelete",
                    "skipped",
                    target_ref=s.target_ref,
                    error=s.reason,
                )
        ctx.commit(work)
        ctx.log.warning("deletes_held", staged=len(staged), threshold=limit, held=held)
        if held:
            return (
                QuarantineReason.TOO_MANY_DELETES,
                f"{'; '.join(held)}: a read that cannot be trusted deletes nothing, so "
                f"{len(staged)} deletes are held (check the source's base DN, filter and "
                "permissions, then restart with resetScope Watermark to read it again; or "
                "restart with ForceDeletes to apply them)",
            )
        return (
            QuarantineReason.TOO_MANY_DELETES,
            f"{len(staged)} deletes exceed the accidental-deletion threshold ({limit}); "
            "restart with ForceDeletes to apply them",
        )
    page = max(ctx.settings.page_size, 1)
    for start in range(0, len(staged), page):
        if ctx.should_stop():
            raise CyclePaused
        work = Checkpoint(clear_intents=True)
        batch, links = _still_linked(ctx, staged[start : start + page], work)
        _label(ctx, batch, links)
        due = now + grace if (grace := ctx.settings.delete_grace) is not None else None
        disables = Capability.SOFT_DELETE in ctx.target.capabilities
        waits = {(s.mapping, s.anchor) for s in batch if due is not None and _graced(s)}
        if waits and not disables:  # nothing is written for them now
            kept, batch = batch, []
            for s in kept:
                if (s.mapping, s.anchor) in waits and s.mapping in by_key:
                    assert due is not None
                    _wait(ctx, work, by_key[s.mapping], s, due)
                else:
                    batch.append(s)
        ctx.write_intents(delete_intents(ctx, batch, links))
        for s in batch:
            mapping = by_key.get(s.mapping)
            if mapping is None:  # its mapping left the schema: drop the stale intent
                work.unstaged.append((s.mapping, s.anchor))
                continue
            ctx.counters.exports += 1
            graced = (s.mapping, s.anchor) in waits
            soft = s.soft or graced  # a grace period's delete disables first
            try:
                ctx.check_lease()
                ctx.call(ctx.target.delete, s.target_type, s.target_ref, soft=soft)
            except (ObjectError, TransientError) as exc:
                ctx.counters.escrowed_with(f"{type(exc).__name__}: {exc}")
                ctx.record(
                    work,
                    mapping,
                    s.anchor,
                    "Disable" if soft else "Delete",
                    "failure",
                    target_ref=s.target_ref,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            ctx.counters.exported += 1
            if graced:
                assert due is not None
                _disabled(ctx, work, mapping, s, links[(s.mapping, s.anchor)], due)
                continue
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
        ctx.commit(work)
    return None


#: the code of the provisioning records of a delete that waits out the grace period
GRACE = "DeleteGracePeriod"


def _graced(staged: StagedDelete) -> bool:
    """Whether a delete about to be applied waits out the grace period first: a hard delete
    that has not waited yet (one that has, due now, goes)."""
    return not staged.soft and staged.due is None


def _wait(
    ctx: CycleContext,
    work: Checkpoint,
    mapping: CompiledMapping,
    staged: StagedDelete,
    due: datetime,
) -> None:
    """A target that cannot disable: the delete is staged again, due later; no write."""
    work.staged.append(attrs.evolve(staged, due=due, reason=_released(staged)))
    _waits(ctx, staged, due)
    ctx.record(
        work,
        mapping,
        staged.anchor,
        "StagedDelete",
        "skipped",
        target_ref=staged.target_ref,
        error=f"{GRACE}: deleted after the grace period, at {due.isoformat()} "
        f"({staged.reason}; the target cannot disable it meanwhile)",
    )


def _disabled(
    ctx: CycleContext,
    work: Checkpoint,
    mapping: CompiledMapping,
    staged: StagedDelete,
    link: Link,
    due: datetime,
) -> None:
    """After a grace period's disable: the delete staged again, due later, in the same
    checkpoint as the link's values marked unknown (the disable changed the object outside
    them, so the next write to it is complete and enables it). A crash before this commit
    leaves the delete intent: the recovery keeps the link (unknown), the delete stays staged
    without a due time, and the next cycle disables again (harmless) and stages it again."""
    work.staged.append(
        attrs.evolve(staged, target_ref=link.target_ref, due=due, reason=_released(staged))
    )
    _waits(ctx, staged, due)
    work.links.append(link._replace(exported=unknown(link.exported)))
    ctx.record(
        work,
        mapping,
        staged.anchor,
        "Disable",
        target_ref=link.target_ref,
        error=f"{GRACE}: deleted after the grace period, at {due.isoformat()} ({staged.reason})",
    )


def _released(staged: StagedDelete) -> str:
    """The reason a delete waits with: a held one got here only by ForceDeletes, which
    released the read's verdict, so it no longer holds the delete once due."""
    return staged.reason.removeprefix(HELD_PREFIX)


def _waits(ctx: CycleContext, staged: StagedDelete, due: datetime) -> None:
    """Tell the cycle's mapping state: an object waiting after the deletes (a re-add under a
    new anchor that matches this one) takes the target object over instead of failing."""
    state = ctx.states.get(staged.mapping)
    if state is not None:
        state.waiting[staged.anchor] = due


def _label(
    ctx: CycleContext,
    batch: Sequence[StagedDelete],
    links: Mapping[tuple[str, str], Link] | None,
) -> None:
    """Names for the records of deletes staged by an earlier cycle (this cycle's were noted
    when staged), from the values last exported to the object: a store read, no target's."""
    for s in batch:
        key = (s.mapping, s.anchor)
        state = ctx.states.get(s.mapping)
        if key in ctx.labels or state is None or len(ctx.labels) >= LABELS_KEPT:
            continue
        link = links.get(key) if links is not None else None
        if links is None:
            link = ctx.store.get_links(ctx.job_id, s.mapping, [s.anchor]).get(s.anchor)
        values = decode_values(link.exported) if link is not None and link.exported else None
        if values:
            ctx.labels[key] = identity(state.naming, None, values)


def _still_linked(
    ctx: CycleContext, batch: Sequence[StagedDelete], work: Checkpoint
) -> tuple[list[StagedDelete], dict[tuple[str, str], Link]]:
    """The staged deletes whose anchor is still linked, to the ref it is linked to; the others
    are only unstaged. A delete goes to a ref, and a ref can be taken again: after a crash left a
    delete in doubt whose object was found gone (the recovery drops its link), a user
    re-added under the same DN may hold that ref by now, and must not be deleted for the
    old one."""
    kept, found = [], {}
    for mapping_key, group in groupby(batch, key=lambda s: s.mapping):
        items = list(group)
        links = ctx.store.get_links(ctx.job_id, mapping_key, [s.anchor for s in items])
        for s in items:
            link = links.get(s.anchor)
            if link is not None:  # to where the link is now (a rename settled after a crash)
                found[(s.mapping, s.anchor)] = link
                same = link.target_ref == s.target_ref
                kept.append(s if same else attrs.evolve(s, target_ref=link.target_ref))
            else:
                work.unstaged.append((s.mapping, s.anchor))
                ctx.log.info("staged_delete_dropped", anchor=s.anchor, reason="not linked")
    return kept, found
