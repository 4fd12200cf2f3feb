"""Restore: an operator takes back a staged delete (one waiting out DeleteGracePeriod, or one
held by the threshold) before it is applied.

The delete is cancelled and, if the grace period disabled the object, the object is enabled
again now (``update`` of the target's soft-delete attribute, ``active`` unless the target names
another in ``soft_delete_attribute``). What happens to the link depends on the source, asked
now: an object it still has in scope stays linked (its values marked unknown, so the next
write to it is complete; its referrers are evaluated again, as it is live again); an object
it lacks is unlinked, so nothing deletes it any more and the target object is left alone,
as Entra leaves a disabled object, until a source object matching it (the same one back, or a
new one with its matching value) joins it again. An operator who restores wants the object
kept: refusing, or keeping it linked to an anchor that the next full read misses and deletes
again, would both lose that.

Crash safety: the enable is a write like any other, under an ``update`` intent. A crash after
it and before the commit leaves the intent: the next cycle keeps the link (unknown) and
processes the anchor again; the delete is still staged, so a restore cut short is simply asked
again (it is idempotent). A job whose earlier writes are still in doubt (a crashed cycle's
intents) is refused a restore until a cycle has settled them, since this commit clears intents.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from connectors.base import Capability, as_list
from engine.cycle._context import CycleContext
from engine.directory_values import last_values, unknown
from engine.errors import NotFoundError, TransitionError
from engine.mapping import CompiledMapping
from engine.store.base import Checkpoint, IntentBatch, Link, StagedDelete


@attrs.frozen(kw_only=True)
class Restored:
    """What a restore did: the delete it cancelled (due at ``due``; None when it was held
    rather than waiting), whether it enabled the target object, and whether the object stays
    linked (the source still has it in scope) or was let go."""

    mapping: str
    anchor: str
    target_ref: str
    due: datetime | None
    enabled: bool
    linked: bool


def restore_one(ctx: CycleContext, key: str) -> Restored:
    """Cancel the staged delete of the object ``key`` names (its source anchor, its target
    ref, or a matching value it was last exported with), enabling it if it was disabled."""
    if ctx.store.pending_intents(ctx.job_id):
        raise TransitionError(
            "the job has writes in doubt from an interrupted cycle: run a cycle first (it "
            "settles them), then restore"
        )
    staged, link = _find(ctx, key)
    mapping = next(m for m in ctx.mappings if m.key == staged.mapping)
    attributes = ctx.call(ctx.source.get, mapping.source_type, staged.anchor)
    present = attributes is not None and mapping.in_scope(attributes)
    disabled = staged.due is not None and Capability.SOFT_DELETE in ctx.target.capabilities
    work = Checkpoint(unstaged=[(staged.mapping, staged.anchor)])
    if disabled:
        attribute = getattr(ctx.target, "soft_delete_attribute", "active")
        intents = IntentBatch(mapping.key, mapping.target_type, mapping.matching)
        values = last_values(link.exported)
        matching = [as_list(values.get(name))[:1] for name in mapping.matching]
        firsts = tuple(m[0] if m else None for m in matching)
        intents.updates.append(
            (staged.anchor, link.target_ref, firsts[0] if len(firsts) == 1 else firsts)
        )
        ctx.write_intents([intents])
        work.clear_intents = True
        ctx.check_lease()
        ctx.call(ctx.target.update, mapping.target_type, link.target_ref, {attribute: True})
    if present:
        work.links.append(link._replace(exported=unknown(link.exported)))
        ctx.link_changed(mapping.key, staged.anchor, work)
    else:
        work.unlinks.append((mapping.key, staged.anchor))
        if mapping.references:
            work.references.append((mapping.key, staged.anchor, ()))
    note = (
        "the source has it in scope: it stays linked"
        if present
        else (
            "the source lacks it: it is no longer linked, and is left alone until a source "
            "object matching it joins it again"
        )
    )
    ctx.record(
        work,
        mapping,
        staged.anchor,
        "Update" if disabled else "Other",
        target_ref=link.target_ref,
        names=[getattr(ctx.target, "soft_delete_attribute", "active")] if disabled else (),
        error=f"Restored: the staged delete ({staged.reason}) is cancelled; {note}",
    )
    ctx.commit(work)
    ctx.log.info("delete_restored", anchor=staged.anchor, enabled=disabled, linked=present)
    return Restored(
        mapping=mapping.key,
        anchor=staged.anchor,
        target_ref=link.target_ref,
        due=staged.due,
        enabled=disabled,
        linked=present,
    )


def _find(ctx: CycleContext, key: str) -> tuple[StagedDelete, Link]:
    """The one staged delete (and its link) ``key`` names; NotFoundError if none does."""
    mappings = {m.key: m for m in ctx.mappings}
    found: dict[tuple[str, str], tuple[StagedDelete, Link]] = {}
    staged = [s for s in ctx.store.staged_deletes(ctx.job_id) if s.mapping in mappings]
    links: dict[tuple[str, str], Link] = {}
    for s in staged:
        link = ctx.store.get_links(ctx.job_id, s.mapping, [s.anchor]).get(s.anchor)
        if link is not None:
            links[(s.mapping, s.anchor)] = link
    for s in staged:
        link = links.get((s.mapping, s.anchor))
        if link is not None and key in (s.anchor, link.target_ref):
            found[(s.mapping, s.anchor)] = (s, link)
    if not found:  # by a matching value it was last exported with (a userName, a mail)
        for s in staged:
            link = links.get((s.mapping, s.anchor))
            if link is not None and _matches(mappings[s.mapping], link, key):
                found[(s.mapping, s.anchor)] = (s, link)
    if not found:
        raise NotFoundError(f"no staged delete of an object named {key!r} in this job")
    if len(found) > 1:
        anchors = ", ".join(sorted(a for _, a in found))
        raise TransitionError(f"{key!r} names several objects whose delete is staged: {anchors}")
    return next(iter(found.values()))


def _matches(mapping: CompiledMapping, link: Link, key: str) -> bool:
    values = last_values(link.exported)
    folded = key.casefold()
    return any(
        isinstance(v, str) and v.casefold() == folded
        for name in mapping.matching
        for v in as_list(values.get(name))
    )
