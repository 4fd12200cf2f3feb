"""References: source anchors in Reference attributes translated through live links, and the
reverse index that says who to evaluate again when a link changes. Pure of target I/O: only
the state store is read; what is learned goes into the batch's checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import DANGLING_REFERENCES, REFERENCE_NAME, as_list
from engine.cycle._context import NAME_PREFIX, CycleContext, MappingState
from engine.mapping import CompiledMapping
from engine.store.base import Checkpoint, Link


def resolve_references(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    desired: dict[str, Any],
    work: Checkpoint,
    link: Link | None,
    dangling: tuple[str, ...] = (),
) -> bool:
    """Source anchors in Reference attributes become target refs through live links only: a
    link whose delete or disable is staged does not count. The anchors named (resolved or
    not) go to the reverse index, so the object is evaluated again when their links change;
    so do the ``dangling`` reference names, for when an object appears under one of them.
    """
    complete = True
    named: list[tuple[str, str]] = list(dangling_index(mapping, dangling)) if dangling else []
    for attribute, owner in mapping.references:
        value = desired.get(attribute)
        if value is None:
            continue  # most objects: no manager, no members
        anchors = list(dict.fromkeys(str(v) for v in as_list(value)))
        named.extend((owner, a) for a in anchors)
        page_links = state.page_links if owner == mapping.key else {}
        found = {a: page_links[a] for a in anchors if a in page_links}
        missing = [a for a in anchors if a not in found]
        if missing:
            found.update(ctx.store.get_refs(ctx.job_id, owner, missing))
        owner_state = ctx.states.get(owner)
        dead = owner_state.staged if owner_state is not None else set()
        resolved = list(dict.fromkeys(found[a] for a in anchors if a in found and a not in dead))
        if len(resolved) < len(anchors):
            complete = False
        if isinstance(value, list):  # sorted: a canonical list, stored once per value when large
            desired[attribute] = sorted(resolved, key=_text_first)
        elif resolved:
            desired[attribute] = resolved[0]
        else:
            del desired[attribute]
    if named or link is not None:
        work.references.append((mapping.key, anchor, tuple(named)))
    return complete


def _text_first(ref: object) -> tuple[int, str]:
    return (0, ref) if isinstance(ref, str) else (1, repr(ref))


def names_references(mapping: CompiledMapping, exported: str) -> bool:
    """Whether exported values hold a reference attribute (whose index entries then exist;
    an unresolved one is escrowed instead, which the caller checks)."""
    return any(f'"{attribute}":' in exported for attribute, _ in mapping.references)


def note_names(
    ctx: CycleContext,
    mapping: CompiledMapping,
    state: MappingState,
    anchor: str,
    attributes: Mapping[str, Any],
    work: Checkpoint,
) -> None:
    """What the source says of reference names (connectors.base.REFERENCE_NAME): the names
    this object holds that named nothing are kept until it is exported; and when this object
    is read under a name that others hold dangling (a user re-added, or renamed back, under a
    DN its groups still list), they are evaluated again once it is linked."""
    if mapping.references:
        dangling = attributes.get(DANGLING_REFERENCES)
        if dangling:
            state.dangling[anchor] = tuple(str(n) for n in as_list(dangling))
    if state.dangling_names:
        name = attributes.get(REFERENCE_NAME)
        if name.__class__ is str and name in state.dangling_names:
            ctx.link_changed(mapping.key, name_key(str(name)), work)


def name_key(name: str) -> str:
    """A reference name as the reverse index holds it, apart from anchors."""
    return NAME_PREFIX + name


def dangling_index(
    mapping: CompiledMapping, dangling: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """Reverse index entries for dangling names, under every mapping this one refers to: the
    name does not say which of them will hold the object that appears under it."""
    owners = dict.fromkeys(owner for _, owner in mapping.references)
    return tuple((owner, name_key(name)) for owner in owners for name in dangling)
