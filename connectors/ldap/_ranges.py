"""Ranged attribute values (``member;range=0-1499``): read to the end, merged under the plain name.

Active Directory does not return more than MaxValRange values (1,500 on Windows) of one
attribute in one entry: it names the part it returns ``member;range=0-1499``, and the client
asks for ``member;range=1500-*`` with a base search of the entry, and so on, until a part ends
in ``*``. Samba (4.17) returns every value unless a range is asked for, and then exactly that
range; slapd knows no ``range`` option and returns nothing for ``member;range=0-9``, which is
why a type that asks for ranges (``LdapObjectType.range_size``) asks for the plain name too.

ldap3's own ``auto_range`` is off (:mod:`connectors.ldap.connection`): it runs its follow-ups on
the connection of a running paged search, and fails with a TypeError when a follow-up finds no
values (a value removed meanwhile).

A value removed from the attribute between two parts shifts the rest by one, so one value may
be missed in that read: the removal changed the entry, so its next delta reads it again. An
entry gone (or renamed) between its search and a follow-up makes the read transient: the
values read so far are not the entry's, and dropping the entry would deprovision it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import ldap3

from connectors.base import TransientError
from connectors.ldap._common import Channel, Entry


@attrs.frozen
class Part:
    """One ranged key of an answer: the attribute it belongs to and the indexes it covers."""

    name: str  # the attribute description without its range option, as the server spells it
    first: int
    last: int | None  # None: ``*``, the last value


def split_range(key: str) -> Part | None:
    """``member;range=0-1499`` -> Part("member", 0, 1499); None for a key with no range."""
    if ";" not in key:
        return None
    options = key.split(";")
    for index, option in enumerate(options[1:], 1):
        if option[:6].lower() != "range=":
            continue
        first, dash, last = option[6:].partition("-")
        if not dash or not first.isdigit() or not (last == "*" or last.isdigit()):
            return None
        name = ";".join(options[:index] + options[index + 1 :])
        return Part(name, int(first), None if last == "*" else int(last))
    return None


def merge(raw: Mapping[str, list[bytes] | None]) -> tuple[dict[str, list[bytes]], dict[str, int]]:
    """An answer's values with ranged keys merged under their plain names, and where each
    attribute not yet read to its end continues (name -> next index). A plain key the server
    also sent beside a ranged one of the same attribute gives way to the ranged one."""
    values: dict[str, list[bytes]] = {}
    ranged: dict[str, str] = {}  # lower-cased name -> the name as values holds it
    pending: dict[str, int] = {}
    for key, found in raw.items():
        part = split_range(key)
        if part is None:
            if key.lower() not in ranged:
                values[key] = list(found or ())
            continue
        low = part.name.lower()
        if low not in ranged:
            for other in [k for k in values if k.lower() == low]:
                del values[other]  # a plain copy: the ranged parts are what was asked for
            ranged[low] = part.name
            values[part.name] = []
        values[ranged[low]] += found or ()
        if part.last is not None:
            pending[ranged[low]] = part.last + 1
        else:
            pending.pop(ranged[low], None)
    return values, pending


def ranges_of(raw: Mapping[str, list[bytes] | None]) -> bool:
    """Whether an answer has ranged keys at all (the common case has none: nothing to do)."""
    return any(";" in key and split_range(key) is not None for key in raw)


def read_to_end(
    entry: Entry, channel: Channel, size: int = 0, controls: Sequence[Any] = ()
) -> None:
    """Replace the entry's ranged keys by their plain names holding every value, asking for
    the parts still missing with base searches (``size`` values at a time; 0: as many as the
    server gives) sent with ``controls`` (the first part's, so every part is spelt alike)."""
    raw = entry.get("raw_attributes") or {}
    if not ranges_of(raw):
        return
    values, pending = merge(raw)
    dn = entry["dn"]
    while pending:
        wanted = [
            f"{name};range={start}-{start + size - 1 if size > 0 else '*'}"
            for name, start in pending.items()
        ]
        found = channel.search(dn, "(objectClass=*)", wanted, scope=ldap3.BASE, controls=controls)
        if not found:
            raise TransientError(
                f"{dn} was renamed or deleted while its values were read in ranges"
            )
        more, still = merge(found[0].get("raw_attributes") or {})
        progress: dict[str, int] = {}
        for name, start in pending.items():
            got = next((v for k, v in more.items() if k.lower() == name.lower()), [])
            values[name] += got
            following = next((n for k, n in still.items() if k.lower() == name.lower()), None)
            if got and following is not None and following > start:
                progress[name] = following  # more to read; an answer that did not advance ends
        pending = progress
    for name in {part.name for key in raw if (part := split_range(key)) is not None}:
        if name in values:  # a server that ignored a range in a follow-up repeats values
            values[name] = list(dict.fromkeys(values[name]))
    entry["raw_attributes"] = values
