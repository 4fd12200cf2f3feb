"""Entries into the engine's changes: anchors, attribute values, DN references as anchors.

One converter serves every read of a source (full, accesslog and timestamp alike), so the
DN -> anchor cache filled by any of them serves all the others.

References
    DN-valued attributes hold anchors: every entry read fills a DN -> anchor cache (exact DN
    string, and a normalized form for other spellings), so a 50,000-member group converts with
    dict lookups. A miss is a base-scope search; more than ``refill_threshold`` misses in one
    batch refill the whole cache with one paged scan of ``directory_base`` (dn and anchor of
    every entry). A DN naming no entry is dropped (and looked up again on the next read: no
    negative cache, so it is found once it exists). Accesslog deltas forget the DNs of deleted
    and renamed entries; the cache is never trimmed otherwise: a few hundred bytes per entry.
    With an objectGUID anchor (Active Directory) entries are read with the extended DN control
    and references carry their objectGUID: no cache, which could not know that a DN now
    names another object (see :meth:`EntryConverter.extended`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import ldap3
from ldap3.protocol.microsoft import extended_dn_control

from connectors.base import (
    DANGLING_REFERENCES,
    REFERENCE_NAME,
    Change,
    ObjectError,
    Scalar,
    Value,
)
from connectors.ldap._common import Channel, Entry, values_of
from connectors.ldap._ranges import read_to_end
from connectors.ldap.config import LdapObjectType
from connectors.ldap.syntax import escape_filter_value, parse_dn

#: the attributes of a change whose references missed the cache: redone once they are looked up
_INCOMPLETE: dict[str, Value] = {}


class DnCache:
    """DN -> anchor, looked up by the DN exactly as the server spells it, then normalized.

    An anchor seen under a new DN drops its old one: a renamed or moved entry's old DN may
    name another entry later (AD's deltas name changed entries by objectGUID, not by DN)."""

    def __init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.normal: dict[str, str] = {}
        self._dn_of: dict[str, str] = {}

    def put(self, dn: str, anchor: str) -> None:
        old = self._dn_of.get(anchor)
        if old is not None and old != dn:
            self.forget(old)
        self._dn_of[anchor] = dn
        self.exact[dn] = anchor
        self.normal[normal_dn(dn)] = anchor

    def forget_anchor(self, anchor: str) -> None:
        """The entry with this anchor is gone (or may have moved): its DN names nothing now."""
        dn = self._dn_of.pop(anchor, None)
        if dn is not None:
            self.forget(dn)

    def get(self, dn: str) -> str | None:
        anchor = self.exact.get(dn)
        return anchor if anchor is not None else self.normal.get(normal_dn(dn))

    def forget(self, dn: str) -> None:
        anchor = self.exact.pop(dn, None)
        self.normal.pop(normal_dn(dn), None)
        if anchor is not None and self._dn_of.get(anchor) == dn:
            del self._dn_of[anchor]


def normal_dn(dn: str) -> str:
    """A DN's comparison key: types and values lower-cased, spaces around them dropped.

    Plain DNs take a fast path (split on commas); escaped ones go through parse_dn. Both
    join RDNs with NUL, which no unescaped DN holds, so the two paths cannot collide.
    """
    if "\\" not in dn and '"' not in dn and "+" not in dn:
        parts = (part.partition("=") for part in dn.lower().split(","))
        return "\x00".join(f"{a.strip()}={v.strip()}" for a, _, v in parts)
    try:
        return "\x00".join(f"{a.lower()}={v.lower()}" for a, v in parse_dn(dn))
    except ValueError:
        return dn.lower()


#: an AD extended DN's prefix (the extended DN control's string or hex form): its objectGUID,
#: then the SID that accounts and groups have, then the DN (empty for an object shown by GUID)
_EXTENDED = re.compile(r"<GUID=([0-9A-Fa-f-]{32,36})>(?:;<SID=[^<>]*>)?(?:;|$)")


def split_extended_dn(dn: str) -> tuple[str | None, str]:
    """An AD extended DN's objectGUID (text form, lower case; None if it has none) and its
    plain DN: ``<GUID=...>;<SID=...>;CN=a,DC=example`` -> (the GUID, ``CN=a,DC=example``).
    Anything else (a plain DN, text that merely starts with ``<``) comes back as it is."""
    match = _EXTENDED.match(dn)
    if match is None:
        return None, dn
    value = match.group(1)
    try:  # the string form, or the hex form (the GUID's bytes as stored)
        found = uuid.UUID(value) if "-" in value else uuid.UUID(bytes_le=bytes.fromhex(value))
    except ValueError:
        return None, dn
    return str(found), dn[match.end() :]


def reference_name(dn: str) -> str:
    """A DN as other entries' references name it (``REFERENCE_NAME``): its comparison key,
    printable. Two exotic DNs may share one; the engine then evaluates a referrer once more
    than it needs to, which is harmless."""
    return normal_dn(dn).replace("\x00", ",")


class ReadState:
    """What one read() remembers between its pages."""

    def __init__(self) -> None:
        self.refilled = False


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value  # not text after all: give the bytes rather than a mangled string


def _plain(value: bytes) -> str | bytes:
    """A text value, an extended DN's prefix (:data:`_EXTENDED`) dropped."""
    text = _text(value)
    return split_extended_dn(text)[1] if isinstance(text, str) and text[:1] == "<" else text


class EntryConverter:
    """Entries of the source's types as upserts, keyed by the one anchor attribute they share.

    ``timestamps``: the source reads timestamp deltas, so every read asks for modifyTimestamp
    too (and leaves it out of the values unless the type asked for it).
    """

    def __init__(
        self,
        anchor: str,
        *,
        timestamps: bool,
        directory_base: str,
        refill_threshold: int,
        scan_page_size: int,
    ) -> None:
        self.anchor = anchor
        self.anchor_low = anchor.lower()
        self.timestamps = timestamps
        self.directory_base = directory_base
        self.refill_threshold = refill_threshold
        self.scan_page_size = scan_page_size
        self.dns = DnCache()
        #: controls of the searches that read entries: AD's extended DN control when the
        #: anchor is objectGUID (see :meth:`extended`)
        self.controls: list[Any] = []
        if self.anchor_low == "objectguid":
            self.controls.append(extended_dn_control(criticality=False, hex_format=False))

    @staticmethod
    def extended(entries: list[Entry]) -> list[Entry]:
        """Entries read with :attr:`controls`, their own DNs made plain again.

        With AD's extended DN control (1.2.840.113556.1.4.529) every DN-valued attribute
        holds its entry's objectGUID (``<GUID=…>;<SID=…>;CN=…``), so a reference needs no
        DN -> anchor lookup: the cache cannot know that an entry moved away and another took
        its DN (a rehire: CN=John Smith moved to OU=Former, a new CN=John Smith), since
        AD's deltas name what changed by objectGUID and a group may be read before the move
        is. A server without the control ignores it (not critical) and answers plain DNs."""
        for entry in entries:
            dn = str(entry.get("dn") or "")
            if dn.startswith("<"):
                entry["dn"] = split_extended_dn(dn)[1]
        return entries

    # ------------------------------------------------------------------ anchors
    def anchor_of(self, raw: Mapping[str, list[bytes]]) -> str | None:
        values = values_of(raw, self.anchor)
        if not values:
            return None
        if self.anchor_low == "objectguid":
            return str(uuid.UUID(bytes_le=bytes(values[0])))
        return values[0].decode("utf-8", "replace")

    def assertion(self, anchor: str) -> str | None:
        """The anchor as a filter assertion value (objectGUID: its bytes), None if invalid."""
        if self.anchor_low == "objectguid":
            try:  # bytes: every one escaped (a filter parser strips a space at either end)
                return escape_filter_value(uuid.UUID(anchor).bytes_le)
            except ValueError:
                return None
        return escape_filter_value(anchor)

    def attributes(self, kind: LdapObjectType, *more: str) -> list[str]:
        """The attributes to ask for: the type's (all if it names none), the anchor, ``more``."""
        wanted = list(kind.attributes) or ["*"]
        extra = [self.anchor, *more]
        extra += ["modifyTimestamp"] if self.timestamps else []
        for name in kind.ranged:  # the plain name too: a server without ranges returns that
            extra += [name, f"{name};range=0-{kind.range_size - 1}"]
        names = {w.lower(): w for w in wanted}
        for name in extra:
            names.setdefault(name.lower(), name)
        return list(names.values())

    def _hidden(self, kind: LdapObjectType) -> frozenset[str]:
        """Operational attributes we ask for for our own use, left out of the values."""
        asked = {a.lower() for a in kind.attributes}
        return frozenset({"modifytimestamp"} - asked)

    # ------------------------------------------------------------------ values
    def changes(
        self,
        kind: LdapObjectType,
        entries: list[Entry],
        channel: Channel,
        state: ReadState,
        *,
        ranges: bool = True,
    ) -> list[Change]:
        """Upserts for ``entries``. Ranged values (``member;range=0-1499``) are first read to
        their end on ``channel`` (:mod:`connectors.ldap._ranges`); ``ranges=False`` for answers
        whose ``;range=`` options are no ranges (DirSync's incremental values).
        References the cache does not know are collected on the way, looked up in one batch,
        and only then are the entries that had them redone: the common case (every DN cached)
        converts each reference once."""
        if ranges:
            for entry in entries:
                read_to_end(entry, channel, kind.range_size, self.controls)
        self.remember(entries)
        missing: set[str] = set()
        changes = [self._upsert(kind, entry, missing) for entry in entries]
        if missing:
            self._resolve(missing, channel, state)
            changes = [
                self._upsert(kind, entry) if change and change.attributes is _INCOMPLETE else change
                for entry, change in zip(entries, changes, strict=True)
            ]
        return [change for change in changes if change is not None]

    def remember(self, entries: list[Entry]) -> None:
        """Put these entries' DNs into the DN -> anchor cache."""
        for entry in entries:
            anchor = self.anchor_of(entry["raw_attributes"])
            if anchor is not None:
                self.dns.put(entry["dn"], anchor)

    def _upsert(
        self, kind: LdapObjectType, entry: Entry, missing: set[str] | None = None
    ) -> Change | None:
        raw: dict[str, list[bytes]] = entry["raw_attributes"]
        anchor = self.anchor_of(raw)
        if anchor is None:
            return None
        hidden = self._hidden(kind)
        values: dict[str, Value] = {"dn": entry["dn"], REFERENCE_NAME: reference_name(entry["dn"])}
        complete = True
        dangling: list[str] | None = None if missing is not None else []
        for name, found in raw.items():
            low = name.lower()
            if low == self.anchor_low:
                values[name] = anchor
                continue
            if low in hidden:
                continue
            scalars: list[Scalar]
            if low in kind.references:
                scalars, had_misses = self.anchors_of(found, missing, dangling)
                complete = complete and not had_misses
            elif low in kind.binary:
                scalars = [bytes(v) for v in found]
            elif self.controls:  # read with the extended DN control: DN-valued text plain
                scalars = [_plain(v) for v in found]
            else:
                scalars = [_text(v) for v in found]
            if scalars:
                many = len(scalars) > 1 or kind.is_multivalued(name)
                values[name] = scalars if many else scalars[0]
        if dangling:
            values[DANGLING_REFERENCES] = sorted(set(dangling))
        return Change("upsert", anchor, values if complete else _INCOMPLETE)

    # ------------------------------------------------------------------ references
    def anchors_of(
        self, dns: list[bytes], missing: set[str] | None = None, dangling: list[str] | None = None
    ) -> tuple[list[Scalar], bool]:
        """The anchors of the entries these DNs name, and whether some were not in the cache
        (added to ``missing`` when given; otherwise they name no entry: dropped, and their
        reference names added to ``dangling`` when given).
        Dict lookups only: this is the hot path of a 50,000-member group."""
        exact = self.dns.exact
        anchors: list[Scalar] = []
        had_misses = False
        for value in dns:
            dn = value.decode("utf-8", "replace")
            if dn[:1] == "<":  # an extended DN: its objectGUID, not what the cache says
                guid, dn = split_extended_dn(dn)
                if guid is not None and self.anchor_low == "objectguid":
                    anchors.append(guid)
                    continue
            anchor = exact.get(dn)
            if anchor is None:
                anchor = self.dns.get(dn)
                if anchor is None:
                    if missing is not None:
                        missing.add(dn)
                        had_misses = True
                    elif dangling is not None:
                        dangling.append(reference_name(dn))
                    continue
            anchors.append(anchor)
        return anchors, had_misses

    def _resolve(self, missing: set[str], channel: Channel, state: ReadState) -> None:
        """Look the missing DNs up: one by one, or all at once by refilling the cache."""
        if not missing:
            return
        if len(missing) > self.refill_threshold and not state.refilled:
            state.refilled = True
            self._refill(channel)
            return  # every entry of the directory base is known now: the rest are dangling
        for dn in missing:
            try:
                entries = channel.search(dn, "(objectClass=*)", [self.anchor], scope=ldap3.BASE)
            except ObjectError:  # not even a valid DN
                continue
            self.remember(entries)

    def _refill(self, channel: Channel) -> None:
        for entries in channel.pages(
            self.directory_base, "(objectClass=*)", [self.anchor], self.scan_page_size
        ):
            self.remember(entries)
