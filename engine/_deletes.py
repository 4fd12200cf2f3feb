"""Staged deletes: counted against the accidental-deletion threshold, then applied or held."""

from __future__ import annotations

from connectors.base import (
    ObjectError,
    TransientError,
)
from engine._context import CycleContext, CyclePaused
from engine.model import QuarantineReason
from engine.store.base import (
    Checkpoint,
)


def apply_staged_deletes(ctx: CycleContext) -> tuple[QuarantineReason, str] | None:
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
