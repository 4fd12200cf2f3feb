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
#: (new values, old values) of a record's changed attributes (engine.store.base.LogRecord)
Values = tuple[tuple[str | None, ...], tuple[str | None, ...]]
NO_VALUES: Values = ((), ())


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
    secret: frozenset[str] = frozenset()  # target attributes named like credentials


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
    secret = frozenset(a for a, _ in mapped.values() if credential_name(a))
    return Naming(target, source_attribute is not None, ordered, matching, secret)


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


def rendered(
    names: Sequence[str], values: Mapping[str, Any], secret: frozenset[str]
) -> tuple[str | None, ...]:
    """The values of ``names`` (the first MAX_ATTRIBUTES) as a log shows them; ``secret``:
    the names among them that are credentials'. Made for every object a cycle writes (every
    attribute of every create), so short text, most values, costs no call of ours."""
    shown: list[str | None] = []
    add = shown.append  # a plain loop: faster than a comprehension here (measured, 3.11)
    for name in names if len(names) <= MAX_ATTRIBUTES else names[:MAX_ATTRIBUTES]:
        value = values.get(name)
        if value is not None and (name in secret or value.__class__ is not str
                                  or len(value) >= _SHORT):  # fmt: skip
            value = MASK if name in secret else _text(value)
        add(value)
    return tuple(shown)


def created(naming: Naming, names: Sequence[str], desired: Mapping[str, Any]) -> Values:
    """(new, old) of a create or a join: the values sent; the old ones are not known."""
    return rendered(names, desired, naming.secret), ()


def changed(
    naming: Naming,
    names: Sequence[str],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    delta: Mapping[str, Any] | None = None,
) -> Values:
    """(new, old) of an update: new from ``after`` (the values mapped now), old from
    ``before`` (the values last exported; () when not known). ``delta``, given when the
    target takes ValueDelta: a change of a list too long to show whole (a big group's
    members) shows the values removed and added, not two cut lists that look alike."""
    secret = naming.secret
    new: tuple[str | None, ...]
    old: tuple[str | None, ...] = ()
    if before is None:
        new = rendered(names, after, secret)
    else:  # both in one loop: an update of every incremental cycle's objects
        news: list[str | None] = []
        olds: list[str | None] = []
        for name in names if len(names) <= MAX_ATTRIBUTES else names[:MAX_ATTRIBUTES]:
            hidden = name in secret
            value = after.get(name)
            if value is not None and (hidden or value.__class__ is not str
                                      or len(value) >= _SHORT):  # fmt: skip
                value = MASK if hidden else _text(value)
            news.append(value)
            value = before.get(name)
            if value is not None and (hidden or value.__class__ is not str
                                      or len(value) >= _SHORT):  # fmt: skip
                value = MASK if hidden else _text(value)
            olds.append(value)
        new, old = tuple(news), tuple(olds)
    if delta is None:
        return new, old
    patched: tuple[list[str | None], list[str | None]] | None = None
    for name, change in delta.items():  # a loop of ours, no call: most deltas have no list
        if change.__class__ is ValueDelta and _long(before, after, name):
            index = names.index(name) if name in names else len(new)
            if index >= len(new):
                continue
            if patched is None:
                patched = list(new), list(old or (None,) * len(new))
            patched[1][index], patched[0][index] = _value_delta(change, name in secret)
    return (tuple(patched[0]), tuple(patched[1])) if patched is not None else (new, old)


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
