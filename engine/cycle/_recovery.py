"""Settling the write-ahead intents a crash left behind, before the next cycle reads the source.

An intent says "this write was about to be sent"; a checkpoint clears it once the write's
outcome (link, escrow, unlink) is committed. An intent still present means the write may or
may not have reached the target, and the source may have moved since. Each is settled from
facts that do not depend on the source:

- an upsert in doubt (create, or join and update) is looked up by the matching values it was
  sent with, and linked if found, with its exported values unknown;
- an update in doubt makes the link's exported values unknown; if the target renames objects,
  the object is looked up by the matching values the update was sent with, and a new ref
  (the update renamed it before the crash) replaces the link's;
- a delete in doubt drops the link if the object is gone (looked up by the matching values it
  was last exported with), else keeps it with its values unknown; the staged delete stays
  (a replayed delete is harmless, and a source object that came back cancels it).

"Unknown" makes the next diff send every mapped value and clear every other mapped attribute.
Every anchor in doubt is then processed again with the source as it is now (see cycle.run).
"""

from __future__ import annotations

from connectors.base import Capability, ObjectError, as_list
from engine.cycle._context import CycleContext
from engine.directory_values import encode_values, last_values, unknown
from engine.store.base import Checkpoint, Intent, Link


def settle_intents(ctx: CycleContext) -> dict[str, list[str]]:
    """Settle every pending intent in one commit; returns the anchors in doubt per mapping."""
    intents = ctx.store.pending_intents(ctx.job_id)
    if not intents:
        return {}
    latest = {(i.mapping, i.anchor): i for i in intents}
    work = Checkpoint(clear_intents=True)
    claimed: dict[tuple[str, str], str] = {}
    in_doubt: dict[str, list[str]] = {}
    for (mapping, anchor), intent in latest.items():
        link = ctx.store.get_links(ctx.job_id, mapping, [anchor]).get(anchor)
        if intent.op == "delete":
            if link is None or link.target_ref != intent.target_ref:
                pass
            elif _survived(ctx, intent):  # a disable, or a delete that never arrived
                work.links.append(link._replace(exported=unknown(link.exported)))
            else:
                work.unlinks.append((mapping, anchor))
        elif link is not None:
            moved = _renamed(ctx, intent, link, claimed) if intent.op == "update" else None
            if moved is not None:
                claimed[(mapping, moved)] = anchor
                link = link._replace(target_ref=moved)
                ctx.link_changed(mapping, anchor, work)
            work.links.append(link._replace(exported=unknown(link.exported)))
        else:
            ref = _find_upserted(ctx, intent, claimed)
            if ref is not None:
                claimed[(mapping, ref)] = anchor
                sent = unknown(encode_values(dict(intent.matching)))
                work.links.append(Link(mapping, anchor, ref, sent))
        in_doubt.setdefault(mapping, []).append(anchor)
    ctx.commit(work)
    ctx.log.info("intents_settled", intents=len(latest), linked=len(claimed))
    return in_doubt


def _survived(ctx: CycleContext, intent: Intent) -> bool:
    """Whether the target object of a delete in doubt is still there (and so still ours)."""
    for name, value in intent.matching:
        try:
            ref = ctx.call(ctx.target.find, intent.target_type, name, value)
        except ObjectError:
            continue
        if ref is not None:
            return ref == intent.target_ref
    return False


def _renamed(
    ctx: CycleContext, intent: Intent, link: Link, claimed: dict[tuple[str, str], str]
) -> str | None:
    """The new ref of an object an update in doubt may have renamed (an LDAP DN moves with
    a modrdn), found by the matching values the update was sent with; None if unmoved."""
    if not intent.matching or Capability.RENAME not in ctx.target.capabilities:
        return None
    ref = _find_upserted(ctx, intent, claimed)
    if ref is None or ref == link.target_ref:
        return None
    # another object holds the new values (an unlinked leftover): only if ours can no longer
    # be found by its last values did the update rename it
    last = last_values(link.exported)
    for name, _ in intent.matching:
        for value in as_list(last.get(name))[:1]:
            try:
                if ctx.call(ctx.target.find, intent.target_type, name, value) == link.target_ref:
                    return None
            except ObjectError:
                continue
    return ref


def _find_upserted(
    ctx: CycleContext, intent: Intent, claimed: dict[tuple[str, str], str]
) -> str | None:
    """The target object an upsert in doubt made or joined, if it exists and is free."""
    for name, value in intent.matching:
        try:
            ref = ctx.call(ctx.target.find, intent.target_type, name, value)
        except ObjectError as exc:  # e.g. several objects match: the retry escrows it
            ctx.log.warning("intent_unresolved", anchor=intent.anchor, error=str(exc))
            return None
        if ref is None:
            continue
        owner = claimed.get((intent.mapping, ref)) or ctx.store.anchor_for_ref(
            ctx.job_id, intent.mapping, ref
        )
        return ref if owner in (None, intent.anchor) else None
    return None
