"""A create whose outcome is in doubt is never sent twice.

A target may apply a create and still fail it for the engine: the answer is lost (a dropped
connection, a read timeout), the service answers 5xx or 429 after it wrote, or a create that is
several requests (a SCIM group: POST, then member PATCHes) fails after its first one. Sending
the create again would make a second object wherever the target does not make the matching
value unique (SCIM servers need not make ``displayName`` unique). So every attempt after a
transient failure first looks the object up by its matching values, as a crash's recovery does
(ARCHITECTURE rule 2): found, the create is completed with an update of every mapped value
against nothing known (``diff(..., None)``), which a multi-request create resumes from what the
target holds (a SCIM target sends only the members it lacks); not found, it is created again.

The provisioning log says so: such a create is recorded with status ``warning`` and the reason.
"""

from __future__ import annotations

from typing import Any

from connectors.base import ObjectError, TransientError, as_list
from engine.cycle._context import CycleContext, MappingState
from engine.mapping import CompiledMapping, diff

#: what an escrow's error starts with (after the error's type) when a create was left in doubt
IN_DOUBT = "create in doubt: "

#: the provisioning log's reason for a create that was found made (in part) and completed
COMPLETED_AFTER_DOUBT = (
    "the create's outcome was in doubt after a transient failure (no answer, 5xx or 429); the "
    "object was found in the target by its matching value and completed, not created twice"
)


def create_after_doubt(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    desired: dict[str, Any],
    failure: TransientError,
) -> tuple[str, list[str] | None]:
    """Go on after ``failure`` of a create, never creating twice (see the module docstring):
    the ref, and the attributes sent to complete an object the create had made (None when it
    was not there and was created again). Retry budget and Retry-After waits: ctx.retry's."""
    target = ctx.target
    target_type = mapping.target_type

    def attempt() -> tuple[str, list[str] | None]:
        found = find_by_matching(ctx, mapping, desired)
        if found is None:
            return target.create(target_type, desired), None
        owner = state.claimed.get(found) or ctx.store.anchor_for_ref(ctx.job_id, mapping.key, found)
        if owner is not None and owner != anchor:
            raise ObjectError(
                f"the create's outcome was in doubt ({failure}), and the object found by its "
                f"matching value, {found}, is joined to {owner}"
            )
        delta = diff(mapping, desired, None, value_deltas=ctx.value_deltas)
        if delta:
            found = target.update(target_type, found, delta) or found
        return found, sorted(delta)

    ctx.log.info("create_in_doubt", anchor=anchor, error=str(failure)[:200])
    try:
        return ctx.retry(failure, attempt)
    except TransientError as exc:  # escrowed: its retry completes what it finds (was_in_doubt)
        raise TransientError(f"{IN_DOUBT}{exc}", retry_after=exc.retry_after) from None


def was_in_doubt(state: MappingState, anchor: str) -> bool:
    """Whether the object's escrow is a create left in doubt: what its retry finds in the
    target is this engine's own, partly made, and is completed whatever the flowTypes."""
    escrow = state.escrows.get(anchor)
    return escrow is not None and IN_DOUBT in escrow.error


def find_by_matching(
    ctx: CycleContext, mapping: CompiledMapping, desired: dict[str, Any]
) -> str | None:
    """The target object that one of the matching values finds, asked in matching order."""
    for name in mapping.matching:
        value = desired.get(name)
        if value is None:
            continue
        ref = ctx.target.find(mapping.target_type, name, as_list(value)[0])
        if ref is not None:
            return ref
    return None
