"""What a provisioning record says of an object, for a person to read: the source and target
display names, a readable identifier, and the changed attributes' old and new values.

Everything here works on what the cycle already holds (the source object as read, the values
it mapped, the values it last exported), so naming an object costs no target read. Values are
rendered once, when the record is made, so neither the store nor the API ever holds a value
from a directory that should not be shown: an attribute named like a credential is masked
whatever its value, a value that reads like a token is masked under any name, a binary value
is summarized by its size, and every value is cut to MAX_TEXT characters and a record to
MAX_ATTRIBUTES attributes, so a log row stays small whatever the directory holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from connectors.base import ValueDelta, as_list
from engine.mapping import CompiledMapping
from engine.masking import MASK, credential_name, opaque_value

MAX_TEXT = 200  # characters of one rendered value (or name) before it is cut
MAX_ATTRIBUTES = 50  # changed attributes a record shows values of
MAX_ITEMS = 20  # values of a multi-valued attribute shown before "+N more"
_SHORT = 20  # shorter text is shown as it is: no token is that short (engine.masking)
#: the attributes that name an object, most telling first (target and source alike)
NAMING_ATTRIBUTES = ("displayName", "cn", "name", "userName", "uid", "sAMAccountName", "mail")
#: what an LDAP source (or any source that gives one) calls the object's DN
DN = "dn"
#: (source name, source identifier, target name) of an object
Identity = tuple[str | None, str | None, str | None]
NO_IDENTITY: Identity = (None, None, None)
Values = tuple[tuple[str, str | None, str | None], ...]


@attrs.frozen
class Naming:
    """Where one object mapping finds an object's names; computed once per mapping and cycle.

    ``direct``: the target's name attribute is mapped straight from a source attribute, so the
    source's display name is the mapped value itself and costs no lookup in the source.
    """

    target: str | None  # the target attribute whose mapped value names the target object
    direct: bool
    source: tuple[str, ...]  # source attributes to look in, in order, when not direct
    matching: str | None  # the first matching attribute: the identifier without a DN


def naming_of(mapping: CompiledMapping) -> Naming:
    mapped: dict[str, tuple[str, str | None]] = {}
    for attribute, source, *_ in mapping.plan:
        mapped.setdefault(attribute.lower(), (attribute, source))
    target: str | None = None
    source_attribute: str | None = None
    for candidate in NAMING_ATTRIBUTES:
        if candidate.lower() in mapped:
            target, source_attribute = mapped[candidate.lower()]
            break
    if target is None and mapping.matching:
        target = mapping.matching[0]
    ordered = ((source_attribute,) if source_attribute else ()) + tuple(
        n for n in NAMING_ATTRIBUTES if n != source_attribute
    )
    matching = mapping.matching[0] if mapping.matching else None
    return Naming(target, source_attribute is not None, ordered, matching)


def as_name(value: Any) -> str | None:
    """A value as a name: its first value, as text, cut; None for nothing or binary."""
    if value.__class__ is list:
        value = value[0] if value else None
    if value is None or value.__class__ is bytes or value.__class__ is bytearray:
        return None
    text = value if value.__class__ is str else str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def identity(
    naming: Naming, source: Mapping[str, Any] | None, desired: Mapping[str, Any] | None
) -> Identity:
    """The object's (source name, source identifier, target name) from what the cycle has."""
    target_name = None
    if desired is not None and naming.target is not None:
        target_name = desired.get(naming.target)
        if target_name.__class__ is not str or len(target_name) > MAX_TEXT:
            target_name = as_name(target_name)
    source_name = target_name if naming.direct else None
    key = None
    if source is not None:
        if source_name is None:
            for attribute in naming.source:
                source_name = as_name(source.get(attribute))
                if source_name is not None:
                    break
        dn = source.get(DN)
        if dn.__class__ is str:
            key = as_name(dn)
    if key is None and desired is not None and naming.matching is not None:
        key = desired.get(naming.matching)
        if key.__class__ is not str or len(key) > MAX_TEXT:
            key = as_name(key)
    return source_name, key, target_name


_secret_names: dict[str, bool] = {}


def secret(name: str) -> bool:
    """Whether ``name`` is a credential's attribute (cached: a cycle asks per value)."""
    found = _secret_names.get(name)
    if found is None:
        if len(_secret_names) > 4096:
            _secret_names.clear()
        found = _secret_names[name] = credential_name(name)
    return found


def render(name: str, value: Any) -> str | None:
    """One attribute's value as a log shows it: masked, summarized or cut; None stays None."""
    if value is None:
        return None
    if secret(name):
        return MASK
    return _text(value)


def _text(value: Any) -> str:
    kind = value.__class__
    if kind is str:
        if len(value) < _SHORT:
            return value  # type: ignore[no-any-return]
        if opaque_value(value):
            return MASK
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"  # type: ignore[no-any-return]
    if kind is bytes or kind is bytearray:
        return f"<binary, {len(value)} bytes>"
    if kind is list or kind is tuple:
        if len(value) == 1:  # a directory's one value in a list (LDAP's): shown as a value
            return _text(value[0])
        parts: list[str] = []
        size = 0
        for item in value[:MAX_ITEMS]:
            shown = _text(item)
            size += len(shown) + 2
            if size > MAX_TEXT and parts:
                break
            parts.append(shown)
        more = len(value) - len(parts)
        return "[" + ", ".join(parts) + (f", +{more} more" if more else "") + "]"
    if kind is bool:
        return "true" if value else "false"
    return _text(str(value))


def modified(
    names: Sequence[str],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    delta: Mapping[str, Any] | None = None,
) -> Values:
    """(attribute, old, new) for the changed ``names``: old from ``before`` (the values last
    exported; None when not known), new from ``after`` (the values mapped now). ``delta``,
    given when the target takes ValueDelta: a change of a list too long to show whole (a big
    group's members) shows the values removed and added, not two cut lists that look alike.

    Made for every object a cycle writes, so short text (most values) costs no call."""
    found: list[tuple[str, str | None, str | None]] = []
    secrets = _secret_names
    for name in names if len(names) <= MAX_ATTRIBUTES else names[:MAX_ATTRIBUTES]:
        hidden = secrets.get(name)
        if hidden is None:
            hidden = secret(name)
        if delta is not None:
            change = delta.get(name)
            if change.__class__ is ValueDelta and _long(before, after, name):
                found.append((name, *_value_delta(change, hidden)))
                continue
        new = after.get(name)
        if new is not None:
            if hidden:
                new = MASK
            elif new.__class__ is not str or len(new) >= _SHORT:
                new = _text(new)
        old = None
        if before is not None:
            old = before.get(name)
            if old is not None:
                if hidden:
                    old = MASK
                elif old.__class__ is not str or len(old) >= _SHORT:
                    old = _text(old)
        found.append((name, old, new))
    return tuple(found)


def _long(before: Mapping[str, Any] | None, after: Mapping[str, Any], name: str) -> bool:
    """Whether a list is too long to show whole on either side (then show its change)."""
    had = before.get(name) if before is not None else None
    want = after.get(name)
    return len(as_list(had)) > MAX_ITEMS or len(as_list(want)) > MAX_ITEMS


def _value_delta(change: ValueDelta, hidden: bool) -> tuple[str | None, str | None]:
    if hidden:
        return (MASK if change.remove else None, MASK if change.add else None)
    removed = f"removed {_text(list(change.remove))}" if change.remove else None
    added = f"added {_text(list(change.add))}" if change.add else None
    return removed, added
