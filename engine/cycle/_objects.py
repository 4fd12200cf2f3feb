"""One object through a cycle: scope, map, join, diff, export or stage a delete, or escrow.

Everything here works on a batch of changes of one page (or one escrow batch) and records its
outcome in the page's Checkpoint; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from connectors.base import (
    AmbiguousMatch,
    Attributes,
    Capability,
    Change,
    ConnectorError,
    ObjectError,
    ObjectGone,
    TransientError,
    as_list,
)
from engine.cycle import _concurrent as concurrent
from engine.cycle._context import (
    LABELS_KEPT,
    CycleContext,
    CyclePaused,
    MappingState,
    ReferenceNotResolved,
)
from engine.cycle._creates import COMPLETED_AFTER_DOUBT, create_after_doubt, was_in_doubt
from engine.cycle._names import NO_IDENTITY, Identity, changed, created, identity
from engine.cycle._references import (
    dangling_index,
    names_references,
    note_names,
    resolve_references,
)
from engine.directory_values import (
    ValueRefused,
    checked_encoding,
    decode_values,
    described,
    encode_values,
    last_values,
    printable,
    storable_text,
)
from engine.errors import JobRunningElsewhere, MappingError
from engine.mapping import CompiledMapping, diff, map_object
from engine.masking import masked_error
from engine.store.base import (
    Checkpoint,
    Escrow,
    IntentBatch,
    Link,
    StagedDelete,
)


@attrs.define
class Batch:
    """One page (or batch of retries) decided but not written yet: the writes it will make,
    their intents, and the checkpoint that records its outcome."""

    mapping: CompiledMapping
    state: MappingState
    work: Checkpoint
    intents: IntentBatch
    final_pass: bool
    unlinked: bool
    # parallel lists, not a tuple per object: the fewer objects a page allocates and keeps
    # alive until its writes, the less the garbage collector has to walk
    anchors: list[str] = attrs.field(factory=list)
    links: list[Link | None] = attrs.field(factory=list)
    desired: list[dict[str, Any]] = attrs.field(factory=list)
    exported: list[str] = attrs.field(factory=list)
    sources: list[Attributes] = attrs.field(factory=list)  # as read: the log's names


def process(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    changes: Sequence[Change],
    work: Checkpoint,
    *,
    unlinked: bool = False,
    final_pass: bool = False,
) -> None:
    """Decide, record the intents, write: one batch on its own (the caller commits ``work``,
    which clears the intents). Pages go through ``plan`` and ``write`` in windows instead."""
    batch = plan(ctx, mapping, state, changes, work, unlinked=unlinked, final_pass=final_pass)
    if batch.anchors:
        ctx.write_intents([batch.intents])
        work.clear_intents = True
        write(ctx, batch)


def plan(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    changes: Sequence[Change],
    work: Checkpoint,
    *,
    unlinked: bool = False,
    final_pass: bool = False,
) -> Batch:
    """Decide what to do with each change (scope, map, stage deletes, escrow what fails);
    no target write. The writes to make are returned, with their intents.

    Whatever goes wrong with one object (a connector refusal, a mapping error, a value outside
    the contract, an unexpected exception) becomes that object's escrow; only errors that
    concern the whole cycle (unreachable, credentials, a lost lease, a pause) propagate.
    ``final_pass`` escrows unresolved references at once instead of deferring them to the end
    of the cycle.
    """
    good = [
        c
        for c in changes
        if c.__class__ is Change and c.anchor.__class__ is str and c.anchor.isascii()
    ]
    if len(good) < len(changes):
        good = [
            c
            for c in changes
            if (isinstance(c, Change) and storable_text(c.anchor)) or refuse(ctx, mapping, c, work)
        ]
    anchors = [] if unlinked else [c.anchor for c in good]
    links = ctx.store.get_links(ctx.job_id, mapping.key, anchors) if anchors else {}
    key = mapping.key
    ctx.counters.imported += len(changes)
    intents = IntentBatch(mapping.key, mapping.target_type, mapping.matching)
    batch = Batch(mapping, state, work, intents, final_pass, unlinked)
    add_anchor, add_link = batch.anchors.append, batch.links.append
    add_desired, add_exported = batch.desired.append, batch.exported.append
    add_source = batch.sources.append
    upsert_anchor, upsert_value = intents.upsert_anchors.append, intents.upsert_values.append
    updates, matching = intents.updates, mapping.matching
    single, first = len(matching) == 1, matching[0] if matching else ""
    unresolved, escrows = state.unresolved, state.escrows
    env = state.env
    passwords = state.passwords  # kept as digests: what the link stores is sealed
    watch_names = bool(mapping.references or state.dangling_names)
    for change in good:
        anchor = change.anchor
        link = links.get(anchor)
        try:
            kind = change.kind
            if kind == "delete" or change.attributes is None:
                soft, reason = not ctx.settings.hard_deletes, "deleted in source"
                deprovision(ctx, mapping, state, anchor, link, work, soft, reason)
                if mapping.references:
                    work.references.append((key, anchor, ()))
            elif kind != "upsert":
                raise ValueRefused(f"unknown change kind {printable(str(kind))[:40]!r}")
            elif not mapping.in_scope(change.attributes):
                if link is not None and not ctx.settings.skip_out_of_scope_deletions:
                    deprovision(
                        ctx, mapping, state, anchor, link, work, True, "out of scope",
                        change.attributes,
                    )  # fmt: skip
                else:
                    who = identity(state.naming, change.attributes, None)
                    ctx.skip(work, mapping, anchor, "not in scope of the scoping filter", who=who)
            else:
                ctx.counters.entitled += 1
                if watch_names:
                    note_names(ctx, mapping, state, anchor, change.attributes, work)
                if link is None:  # inline: the per-object hot path of every initial cycle
                    desired = map_object(mapping, change.attributes, env)
                    exported = checked_encoding(
                        desired if passwords is None else passwords.seal(desired)
                    )
                    upsert_anchor(anchor)
                    upsert_value(
                        desired.get(first) if single else tuple(map(desired.get, matching))
                    )
                else:
                    desired = linked_values(mapping, state, change.attributes, link)
                    exported = checked_encoding(
                        desired if passwords is None else passwords.seal(desired)
                    )
                    updates.append(
                        (
                            anchor,
                            link.target_ref,
                            desired.get(first) if single else tuple(map(desired.get, matching)),
                        )
                    )
                add_anchor(anchor)
                add_link(link)
                add_desired(desired)
                add_exported(exported)
                add_source(change.attributes)
                continue
        except Exception as exc:
            if change.kind == "upsert" and anchor in state.staged:
                # the source has it (read now): a delete staged earlier, one an untrusted
                # read holds above all, must not outlive it because its values failed
                state.staged.discard(anchor)
                work.unstaged.append((key, anchor))
                if state.referenced:
                    ctx.link_changed(key, anchor, work)
            failure = object_failure(exc)
            escrow(ctx, mapping, state, anchor, failure, work, who=named(state, change, None))
            continue
        if anchor in unresolved or anchor in escrows:
            settled(ctx, mapping, state, anchor, work, final_pass)
    return batch


def write(ctx: CycleContext, batch: Batch) -> None:
    """Make a planned batch's writes (its intents are already durable), recording each
    outcome in its checkpoint."""
    mapping, state, work, final_pass = batch.mapping, batch.state, batch.work, batch.final_pass
    state.claimed.clear()
    state.page_links.clear()
    state.quiet_links = batch.unlinked
    unresolved, escrows = state.unresolved, state.escrows
    monotonic, deadline = ctx.clock.monotonic, ctx.lease_deadline
    workers = min(ctx.export_concurrency, len(batch.anchors))
    if workers > 1:
        write_concurrently(ctx, batch, workers)
        return
    for anchor, link, desired, exported, source in zip(
        batch.anchors, batch.links, batch.desired, batch.exported, batch.sources, strict=True
    ):
        try:
            if monotonic() >= deadline:  # the lease may have passed to another runner
                ctx.check_lease()
            export(ctx, mapping, state, anchor, desired, exported, link, work, source)
        except Exception as exc:
            failure = unquoted(state, object_failure(exc), desired)
            who = identity(state.naming, source, desired)
            escrow(ctx, mapping, state, anchor, failure, work, who=who)
            continue
        if anchor in unresolved or anchor in escrows:
            settled(ctx, mapping, state, anchor, work, final_pass, source, desired)


def write_concurrently(ctx: CycleContext, batch: Batch, workers: int) -> None:
    """The batch's writes on ``workers`` threads (ExportConcurrency; see _concurrent)."""
    mapping, state, work, final_pass = batch.mapping, batch.state, batch.work, batch.final_pass
    matching = mapping.matching

    def write_one(index: int) -> None:
        anchor = batch.anchors[index]
        try:
            if ctx.clock.monotonic() >= ctx.lease_deadline:
                ctx.check_lease()
            export(ctx, mapping, state, anchor, batch.desired[index], batch.exported[index],
                   batch.links[index], work, batch.sources[index])  # fmt: skip
        except Exception as exc:
            failure = unquoted(state, object_failure(exc), batch.desired[index])
            who = identity(state.naming, batch.sources[index], batch.desired[index])
            escrow(ctx, mapping, state, anchor, failure, work, who=who)
            return
        if anchor in state.unresolved or anchor in state.escrows:
            source, desired = batch.sources[index], batch.desired[index]
            settled(ctx, mapping, state, anchor, work, final_pass, source, desired)

    def claims(index: int) -> list[Any]:
        if batch.links[index] is not None:
            return []
        desired = batch.desired[index]
        keys = []
        for name in matching:
            for value in as_list(desired.get(name))[:1]:
                keys.append((name, value.lower() if isinstance(value, str) else value))
        return keys

    position = {anchor: index for index, anchor in enumerate(batch.anchors)}
    references = [a for a, owner in mapping.references if owner == mapping.key]

    def after(index: int) -> list[int]:
        if not references:
            return []
        desired = batch.desired[index]
        earlier = []
        for attribute in references:
            for named in as_list(desired.get(attribute)):
                j = position.get(named) if isinstance(named, str) else None
                if j is not None and j < index and batch.links[j] is None:
                    earlier.append(j)
        return earlier

    logged = len(work.logs)
    concurrent.run(ctx, len(batch.anchors), workers, write_one, claims, after)
    # the provisioning log in the page's order, not the order the workers finished in
    work.logs[logged:] = sorted(work.logs[logged:], key=lambda r: position.get(r.anchor, -1))


def unquoted(state: MappingState, exc: Exception, desired: dict[str, Any]) -> Exception:
    """``exc`` with the object's passwords masked in its message: a target may quote what
    it refused, and the message is kept (escrow row, provisioning record)."""
    if state.passwords is None:
        return exc
    return masked_error(exc, state.passwords.texts(desired))


def named(state: MappingState, change: Change, desired: dict[str, Any] | None) -> Identity:
    """The names of an object that failed before it was mapped: whatever its attributes give,
    and nothing when they are not even a mapping (the escrow must not fail in turn)."""
    attributes = change.attributes
    if not isinstance(attributes, Mapping):
        return NO_IDENTITY
    try:
        return identity(state.naming, attributes, desired)
    except Exception:
        return NO_IDENTITY


def object_failure(exc: Exception) -> Exception:
    """The error to escrow one object with; re-raises what ends the whole cycle."""
    if isinstance(exc, ObjectError | TransientError | MappingError):
        return exc
    if isinstance(exc, ConnectorError | JobRunningElsewhere | CyclePaused):
        raise exc  # unreachable, credentials, a lost lease: the cycle, not the object
    return ValueRefused(f"{type(exc).__name__}: {described(exc)[:500]}")


def refuse(ctx: CycleContext, mapping: CompiledMapping, change: Any, work: Checkpoint) -> bool:
    """A change without a storable anchor (or not a Change at all): logged as a failure with
    what it showed, escaped; never kept or retried, since there is nothing to key it by."""
    anchor = change.anchor if isinstance(change, Change) else change
    ctx.counters.escrowed_with("ValueRefused: a change without a storable text anchor")
    ctx.record(
        work,
        mapping,
        described(anchor)[:200],
        "Other",
        "failure",
        error="ValueRefused: the source gave a change without a storable text anchor",
    )
    ctx.log.warning("anchor_refused", mapping=mapping.key)
    return False


def settled(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    work: Checkpoint,
    final_pass: bool,
    source: Attributes | None = None,
    desired: dict[str, Any] | None = None,
) -> None:
    """After an object went through without error: defer or escrow what did not resolve,
    close its escrow otherwise (``source`` and ``desired`` name it in the escrow's record)."""
    if anchor in state.unresolved:
        state.unresolved.discard(anchor)
        if final_pass:
            escrow(
                ctx,
                mapping,
                state,
                anchor,
                ReferenceNotResolved("a referenced object is not provisioned yet"),
                work,
                counted=False,
                who=identity(state.naming, source, desired),
            )
            return
        state.pending.add(anchor)
        hold(ctx, mapping, state, anchor, work, "ReferenceNotResolved: pending")
        return
    if anchor in state.after_deletes and not ctx.deletes_applied:
        return  # held just now until the deletes are applied: its row must stay till then
    if state.escrows.pop(anchor, None) is not None:
        work.unescrows.append((mapping.key, anchor))


def linked_values(
    mapping: CompiledMapping, state: MappingState, attributes: Attributes, link: Link
) -> dict[str, Any]:
    """Mapped values of a linked object, before references are resolved; attributes that
    IgnoreFlowIfNullOrEmpty drops keep the value last exported."""
    ignored: list[str] | None = [] if mapping.may_ignore else None
    desired = map_object(mapping, attributes, state.env, creating=False, ignored=ignored)
    if ignored:
        before = decode_values(link.exported) or {}
        for name in ignored:
            if name in before:
                desired[name] = before[name]
    return desired


#: the note of an object held until the target object it matches is let go by its owner
WAITING_FOR_MATCH = "waiting for the matching object"


def hold(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    work: Checkpoint,
    note: str,
) -> None:
    """Keep an object for later in this cycle as a silent escrow row, due now: durable, so a
    crash before then cannot forget it, and not retried by this cycle's escrow retries."""
    state.failed_now.add(anchor)
    previous = state.escrows.get(anchor)
    now = ctx.clock.now()
    pending = Escrow(
        mapping=mapping.key,
        anchor=anchor,
        attempts=previous.attempts if previous else 0,
        first_failed=previous.first_failed if previous else now,
        next_retry=now,
        error=previous.error if previous else note,
    )
    state.escrows[anchor] = pending
    work.escrows.append(pending)


def export(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    desired: dict[str, Any],
    exported: str,
    link: Link | None,
    work: Checkpoint,
    source: Attributes | None = None,
) -> None:
    """Join, diff and write one object; ``exported`` is the JSON of ``desired`` as mapped,
    ``source`` the object as read (for the names its record shows)."""
    if anchor in state.staged:
        state.staged.discard(anchor)
        state.waiting.pop(anchor, None)  # back in time: its delete is cancelled
        work.unstaged.append((mapping.key, anchor))
        if state.referenced:
            ctx.link_changed(mapping.key, anchor, work)  # live again: its referrers may resolve
    if mapping.references:
        dangling = state.dangling.pop(anchor, ()) if state.dangling else ()
        for attribute, _ in mapping.references:
            if attribute in desired:  # translate, then the JSON holds target refs
                if not resolve_references(
                    ctx, mapping, state, anchor, desired, work, link, dangling
                ):
                    state.unresolved.add(anchor)
                sealed = desired if state.passwords is None else state.passwords.seal(desired)
                exported = encode_values(sealed)
                break
        else:  # no reference value now: clear what a linked object may have named before
            named = link is not None and names_references(mapping, link.exported)
            if dangling:
                work.references.append((mapping.key, anchor, dangling_index(mapping, dangling)))
            elif named or (link is not None and anchor in state.escrows):
                work.references.append((mapping.key, anchor, ()))
    target_type = mapping.target_type
    if link is not None:
        try:
            update_linked(ctx, mapping, state, anchor, desired, exported, link, work, source)
            return
        except ObjectGone as exc:  # deleted in the target by someone else: match again
            ctx.log.info("linked_object_gone", anchor=anchor, error=str(exc)[:200])
            ctx.counters.exports -= 1  # counted again by the create or join below
            work.unlinks.append((mapping.key, anchor))
            link = None
            if state.passwords is not None:  # a password known by its digest is not sent
                desired = state.passwords.clear(desired)
    # inline: this is the per-object hot path of every initial cycle
    ref = None
    matchable = False
    find = ctx.target.find
    for name in mapping.matching:
        value = desired.get(name)
        if value is None:
            continue
        matchable = True
        probe = as_list(value)[0]
        try:  # the first attempt inline: this runs once per object of an initial cycle
            ref = find(target_type, name, probe)
        except TransientError as exc:
            ref = ctx.retry(exc, find, target_type, name, probe)
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
        if owner is not None and owner != anchor and owner in state.waiting:
            let_go(ctx, mapping, state, owner, work)  # a re-add under a new anchor: take it
        elif owner is not None and owner != anchor:
            if not ctx.deletes_applied:
                # the owner may let go of it in this cycle (its delete is staged, or it is
                # renamed later in the read): try again once the cycle's deletes are applied
                ctx.counters.exports -= 1
                state.after_deletes.add(anchor)
                hold(ctx, mapping, state, anchor, work, WAITING_FOR_MATCH)
                return
            raise ObjectError(f"the matching target object {ref} is already joined to {owner}")
        delta = diff(mapping, desired, None, value_deltas=ctx.value_deltas)
        ours = was_in_doubt(state, anchor)  # a create of ours left half made: complete it
        if delta and ("update" in mapping.flows or ours):
            ref = ctx.call(ctx.target.update, target_type, ref, delta) or ref
        names = sorted(delta)
        who = identity(state.naming, source, desired)
        values = created(state.naming, names, desired)
        if ours:
            ctx.record(
                work, mapping, anchor, "Create", "warning", target_ref=ref, names=names,
                error=COMPLETED_AFTER_DOUBT, who=who, values=values,
            )  # fmt: skip
        else:
            ctx.record(
                work, mapping, anchor, "Update", target_ref=ref, names=names, who=who,
                values=values,
            )  # fmt: skip
    elif "add" in mapping.flows:
        completed = None
        try:
            ref = ctx.target.create(target_type, desired)
        except TransientError as exc:  # it may have been applied: never sent twice
            ref, completed = create_after_doubt(ctx, mapping, state, anchor, desired, exc)
        who = identity(state.naming, source, desired)
        if completed is None:
            made = tuple(desired)
            ctx.record(
                work, mapping, anchor, "Create", target_ref=ref, names=made, who=who,
                values=created(state.naming, made, desired),
            )  # fmt: skip
        else:  # the log says the create was found done (in part) and completed
            values = created(state.naming, completed, desired)
            ctx.record(
                work, mapping, anchor, "Create", "warning", target_ref=ref, names=completed,
                error=COMPLETED_AFTER_DOUBT, who=who, values=values,
            )  # fmt: skip
    else:
        ctx.counters.exports -= 1
        who = identity(state.naming, source, desired)
        ctx.skip(work, mapping, anchor, "Add is not in flowTypes", who=who)
        return
    ctx.counters.exported += 1
    state.claimed[ref] = anchor
    work.links.append(Link(mapping.key, anchor, ref, exported))
    if state.referenced:
        state.page_links[anchor] = ref
        if not state.quiet_links:
            ctx.link_changed(mapping.key, anchor, work)


def update_linked(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    desired: dict[str, Any],
    exported: str,
    link: Link,
    work: Checkpoint,
    source: Attributes | None = None,
) -> None:
    """Diff a linked object against what was exported to it and write the difference; an
    ObjectGone from the target leaves the caller to match the object again. The record
    shows old values from what was exported (the diff's own input: no target read)."""
    target_type = mapping.target_type
    before = None
    delta: dict[str, Any] = {}
    if exported != link.exported:
        before = decode_values(link.exported)
        if state.passwords is None:
            delta = diff(mapping, desired, before, value_deltas=ctx.value_deltas)
        else:  # compared by digest, sent in clear
            delta = state.passwords.diff(mapping, desired, before, value_deltas=ctx.value_deltas)
    who = identity(state.naming, source, desired)
    if delta and "update" in mapping.flows:
        ctx.counters.exports += 1
        renamed = ctx.call(ctx.target.update, target_type, link.target_ref, delta)
        if renamed is not None and renamed != link.target_ref:
            link = moved(ctx, mapping, state, anchor, link, renamed, work)
        ctx.counters.exported += 1
        names = sorted(delta)
        ctx.record(
            work, mapping, anchor, "Update", target_ref=link.target_ref, names=names, who=who,
            values=changed(
                state.naming, names, before, desired, delta if ctx.value_deltas else None
            ),
        )  # fmt: skip
    else:
        if delta or ctx.log_unchanged:
            ctx.skip(
                work,
                mapping,
                anchor,
                "RedundantExport" if not delta else "Update is not in flowTypes",
                link.target_ref,
                who,
            )
        if exported == link.exported:
            return
    link_into(state, work, link._replace(exported=exported))


def moved(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    link: Link,
    ref: str,
    work: Checkpoint,
) -> Link:
    """The link after an update renamed its target object (the ref is an LDAP DN): its
    referrers name the old ref, so they are evaluated again."""
    state.claimed[ref] = anchor
    if state.referenced:
        ctx.link_changed(mapping.key, anchor, work)
    return link._replace(target_ref=ref)


def link_into(state: MappingState, work: Checkpoint, link: Link) -> None:
    work.links.append(link)
    if state.referenced:
        state.page_links[link.anchor] = link.target_ref


def let_go(
    ctx: CycleContext, mapping: CompiledMapping, state: MappingState, owner: str, work: Checkpoint
) -> None:
    """A source object matches a target object whose delete waits out DeleteGracePeriod for
    another anchor (an LDAP entry deleted and added again gets a new entryUUID): the old
    anchor lets go of it, its delete cancelled, and the new one joins it (a complete update,
    which enables it) instead of waiting for the delete and creating the object again."""
    state.waiting.pop(owner, None)
    state.staged.discard(owner)
    work.unstaged.append((mapping.key, owner))
    work.unlinks.append((mapping.key, owner))
    if mapping.references:
        work.references.append((mapping.key, owner, ()))
    ctx.log.info("waiting_delete_taken_over", anchor=owner)


def deprovision(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    link: Link | None,
    work: Checkpoint,
    soft: bool,
    reason: str,
    source: Attributes | None = None,
) -> None:
    """Stage the delete (or disable) of a linked object; its names, from ``source`` and the
    values last exported, are kept for the record of the delete when it is applied."""
    if link is None:
        return
    if len(ctx.labels) < LABELS_KEPT:
        ctx.label(mapping, anchor, identity(state.naming, source, last_values(link.exported)))
    if "delete" not in mapping.flows:
        ctx.skip(
            work, mapping, anchor, f"{reason}, but Delete is not in flowTypes", link.target_ref
        )
        return
    capabilities = ctx.target.capabilities
    if soft and Capability.SOFT_DELETE not in capabilities:
        soft = False
    elif not soft and Capability.DELETE not in capabilities:
        soft = True
    state.staged.add(anchor)
    reason = state.held.get(anchor, reason)  # a held delete stays held, whoever stages it
    # a delete waiting out DeleteGracePeriod keeps its due time when staged again; a disable
    # (out of scope) replaces it, now
    due = state.waiting.pop(anchor, None) if soft else state.waiting.get(anchor)
    if state.referenced:
        ctx.link_changed(mapping.key, anchor, work)  # its referrers must let go of it
    work.staged.append(
        StagedDelete(
            mapping=mapping.key,
            anchor=anchor,
            target_type=mapping.target_type,
            target_ref=link.target_ref,
            soft=soft,
            reason=reason,
            due=None if soft else due,
        )
    )


def escrow(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    exc: Exception,
    work: Checkpoint,
    *,
    counted: bool = True,
    who: Identity = NO_IDENTITY,
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
        error=printable(f"{type(exc).__name__}: {exc}")[:2000],
        parked=now - first > ctx.settings.escrow_max_age,
    )
    state.escrows[anchor] = escrow
    state.failed_now.add(anchor)
    if isinstance(exc, AmbiguousMatch):  # the status says so, not only the escrow
        ctx.counters.ambiguous += 1
        ctx.counters.ambiguity = ctx.counters.ambiguity or escrow.error
    work.escrows.append(escrow)
    if counted:
        ctx.counters.escrowed_with(escrow.error)
    else:
        ctx.counters.unresolved += 1
    ctx.record(work, mapping, anchor, "Other", "failure", error=escrow.error, who=who)
    ctx.log.warning(
        "object_escrowed", anchor=anchor, attempts=attempts, error_type=type(exc).__name__
    )
