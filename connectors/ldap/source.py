"""An LDAP directory as a source: full reads in anchor order, deltas from accesslog, timestamps,
or Active Directory's DirSync or uSNChanged.

Initial read
    A simple-paged-results cookie is the obvious cursor, but it lives only as long as one
    connection and has no meaning in a stored watermark, and the server's order (entryID on
    slapd's mdb) is not something a watermark can name: no filter says "after entryID 4711",
    and another server or a replica may return another order. Resuming "after the last anchor
    seen" in the server's order would skip every entry the new order puts before it.

    So a read first captures where the delta will start, then scans the type for its anchors
    only (a paged search returning one short attribute per entry, about 5x faster than reading
    entries), sorts them, and fetches each page's entries by an OR of equality filters on the anchor
    (an index lookup on every directory that indexes its anchor: entryUUID eq on OpenLDAP,
    objectGUID on AD). A page's watermark is ``f:<delta start>|<last anchor>``; resuming scans
    the anchors again and continues after that anchor in sorted order. This is exact whatever
    order the server returns, and it cannot skip: an entry created during the read with an
    anchor before the resume point was created after the delta start, so the delta brings it;
    an entry deleted between the scan and the fetch is simply absent (the delta deletes it).
    The delta's start: in accesslog mode the newest record before the scan (in dirsync and usn
    modes DirSync's cookie, or highestCommittedUSN, before the scan); in timestamp mode
    the newest modifyTimestamp the scan saw (server time, never the local clock). That is safe
    because every entry is fetched after the scan ended: a change made during the scan is in
    the fetched entry, and a later one is stamped no earlier than anything the scan saw. (An
    entry created during the scan and not returned by it, which slapd's entryID order rules
    out, would wait for its next change or the next delete scan.)
    The price, measured on 10,000 inetOrgPersons against slapd 2.5 here (page size 500):
    4,860 entries/s against 9,800/s for a raw ldap3 paged search of the same entries, i.e.
    about 2x. The anchor scan is 0.18 s of it, ldap3 compiling the OR filters into BER about
    a quarter, the rest is fetching and decoding as a raw search does; the start capture is
    25 ms. An equality OR is an index lookup per anchor (0.5 ms for one); a range filter
    (``entryUUID>=first``/``<=last``) would be cheaper to build but slapd has no ordering index
    for it and tests every entry of the type per page (5 ms per page at 10,000 entries,
    growing with the directory: quadratic overall), so it is not used. The sorted anchors of
    one read are held in memory (about 150 bytes an entry).

Deltas
    Each mode has its own module, which says how it works and where it falls short:
    ``accesslog`` (OpenLDAP's accesslog overlay) :mod:`connectors.ldap._accesslog`,
    ``timestamp`` (any LDAP server) :mod:`connectors.ldap._timestamps`, ``dirsync`` (Active
    Directory's DirSync control) :mod:`connectors.ldap._dirsync`, ``usn`` (AD's uSNChanged)
    :mod:`connectors.ldap._usn`; the last two share :mod:`connectors.ldap._ad` and need the
    objectGUID anchor. A delta watermark starts with ``a:``, ``t:``, ``d:`` or ``u:``; one of
    another mode (the mode changed) asks for a full read.

References
    DN-valued attributes hold anchors (:mod:`connectors.ldap._entries`: the DN -> anchor cache,
    its lookups and refills), so a large group converts with dict lookups.

Threads
    ``read`` runs on one connection and ``get``/``validate`` on another, each behind its own
    lock taken per operation and never held across a ``yield``, so the engine may consume
    pages in a read-ahead thread while it calls ``get``. A timestamp delta looks member DNs up
    on a third connection: slapd drops a connection's paged-results cookie as soon as that
    connection runs another search.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs
import ldap3

from connectors.base import (
    Attributes,
    Capability,
    Change,
    ConnectorError,
    ObjectError,
    Page,
    TransientError,
    WatermarkExpired,
)
from connectors.discovery import DiscoveredSchema
from connectors.ldap import discovery
from connectors.ldap._accesslog import AccesslogReader
from connectors.ldap._ad import naming_context
from connectors.ldap._common import FETCH_BATCH, Channel, Entry, stamp
from connectors.ldap._dirsync import DirSyncReader
from connectors.ldap._dirsync import check as dirsync_mark
from connectors.ldap._entries import EntryConverter, ReadState, normal_dn
from connectors.ldap._timestamps import TimestampReader
from connectors.ldap._usn import UsnReader
from connectors.ldap._usn import parse as usn_mark
from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapEndpoint
from connectors.ldap.syntax import check_attribute_description, escape_filter_value, parse_dn, rdn

#: delta_mode -> the prefix of its delta watermarks
DELTA_MODES = {"accesslog": "a:", "timestamp": "t:", "dirsync": "d:", "usn": "u:"}


def _parenthesized(kind: LdapObjectType) -> LdapObjectType:
    """The type with its filter in parentheses (``objectClass=person`` is a common way to
    write one), since the source puts it inside ``(&...)``."""
    text = kind.filter.strip()
    return attrs.evolve(kind, filter=text if text.startswith("(") else f"({text})")


def _common_suffix(dns: Iterable[str]) -> str:
    """The deepest DN above every given DN (the directory base references are looked in)."""
    split = [[part.strip() for part in dn.split(",")] for dn in dns]
    if not split:
        return ""
    suffix: list[str] = []
    for parts in zip(*(list(reversed(s)) for s in split), strict=False):
        if len({p.lower() for p in parts}) != 1:
            break
        suffix.insert(0, parts[0])
    return ",".join(suffix)


class LdapSource:
    """An LDAP directory the engine reads from (see the module docstring for the design).

    It answers the Source protocol and does the full read itself; entries become changes in
    its EntryConverter, and deltas are read by its AccesslogReader or TimestampReader.
    """

    capabilities = frozenset({Capability.DELTA, Capability.RENAME, Capability.REFERENCES})

    def __init__(
        self,
        endpoint: LdapEndpoint,
        object_types: Iterable[LdapObjectType] | Mapping[str, LdapObjectType],
        *,
        delta_mode: str = "accesslog",
        accesslog_base: str = "cn=accesslog",
        timestamp_overlap: float = 5.0,
        accesslog_overlap: float = 1.0,
        delete_scan_interval: float = 3600.0,
        directory_base: str | None = None,
        refill_threshold: int = 50,
        scan_page_size: int = 1000,
        scan_buffer: int = 10_000,
        timestamp_hint: str = "use delta_mode='timestamp'",
        usn_hint: str = "use delta_mode='usn'",
    ) -> None:
        if delta_mode not in DELTA_MODES:
            raise ValueError(
                f"delta_mode must be one of {', '.join(DELTA_MODES)}, not {delta_mode!r}"
            )
        types = object_types.values() if isinstance(object_types, Mapping) else object_types
        self._types = {t.name: _parenthesized(t) for t in types}
        anchors = {t.anchor_attribute.lower() for t in self._types.values()}
        if len(anchors) > 1:
            raise ValueError("every object type of one LDAP source needs the same anchor attribute")
        anchor = check_attribute_description(
            next(iter(self._types.values())).anchor_attribute if self._types else "entryUUID"
        )
        if delta_mode in ("dirsync", "usn") and anchor.lower() != "objectguid":
            raise ValueError(
                f"delta_mode {delta_mode!r} needs the objectGUID anchor, not {anchor!r}"
            )
        endpoint = endpoint if endpoint.role else attrs.evolve(endpoint, role="source")
        self.endpoint = endpoint
        self.delta_mode = delta_mode
        self.accesslog_base = accesslog_base
        self.timestamp_overlap = timestamp_overlap
        self.accesslog_overlap = accesslog_overlap
        self.delete_scan_interval = delete_scan_interval
        self.directory_base = (
            directory_base
            if directory_base is not None
            else _common_suffix(t.base_dn for t in self._types.values())
        )
        self.refill_threshold = refill_threshold
        self.scan_page_size = scan_page_size
        #: entries a full read keeps from its scan rather than fetching them again (see _keeps)
        self.scan_buffer = scan_buffer
        self._scanned: dict[str, int] = {}  # entries each type's last scan found
        self._reader = Channel(endpoint)
        self._lookup = Channel(endpoint)
        #: member DN lookups while a timestamp delta's paged search is open on _reader (opened
        #: on first use; neither _reader nor _lookup, which a get may use meanwhile)
        self._resolver = Channel(endpoint)
        self._entries = EntryConverter(
            anchor,
            timestamps=delta_mode == "timestamp",
            directory_base=self.directory_base,
            refill_threshold=refill_threshold,
            scan_page_size=scan_page_size,
        )
        self._accesslog = AccesslogReader(
            self._reader,
            self._entries,
            base=accesslog_base,
            bind_dn=endpoint.bind_dn,
            where=f"{endpoint.role} {endpoint.shown_url}",
            timestamp_hint=timestamp_hint,
            directory_base=self.directory_base,
            scan_page_size=scan_page_size,
            overlap=accesslog_overlap,
        )
        self._timestamps = TimestampReader(
            self._reader,
            self._entries,
            lookup=self._resolver,
            overlap=timestamp_overlap,
            delete_scan_interval=delete_scan_interval,
        )
        where = f"{endpoint.role} {endpoint.shown_url}"
        #: type name -> the naming context holding its base (dirsync and usn modes)
        self._contexts: dict[str, str] = {}
        self._dirsync = DirSyncReader(
            self._reader, self._current, self._naming_context,
            bind_dn=endpoint.bind_dn, where=where, usn_hint=usn_hint,
        )  # fmt: skip
        self._usn = UsnReader(
            self._reader, self._current, self._naming_context,
            bind_dn=endpoint.bind_dn, where=where, scan_page_size=scan_page_size,
            delete_scan_interval=delete_scan_interval,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"LdapSource({self.endpoint.shown_url!r}, {sorted(self._types)}, {self.delta_mode})"

    def close(self) -> None:
        self._reader.close()
        self._lookup.close()
        self._resolver.close()

    # ------------------------------------------------------------------ Source protocol
    def object_types(self) -> Sequence[str]:
        return list(self._types)

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        kind = self._type(object_type)
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if watermark is None:
            return self._read_full(kind, None, None, page_size)
        if watermark.startswith("f:"):
            start, _, after = watermark[2:].rpartition("|")
            self._check_start(start)
            return self._read_full(kind, start, after, page_size)
        mode = self._delta_kind(watermark)
        if mode == "a":
            return self._accesslog.read(kind, watermark[2:], page_size)
        if mode == "d":
            return self._dirsync.read(kind, watermark[2:], page_size)
        if mode == "u":
            return self._usn.read(kind, watermark[2:], page_size)
        return self._timestamps.read(kind, watermark[2:], page_size)

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        kind = self._type(object_type)
        assertion = self._entries.assertion(anchor)
        if assertion is None:
            return None
        entries = self._entries.extended(
            self._lookup.search(
                kind.base_dn,
                f"(&{kind.filter}({self._entries.anchor}={assertion}))",
                self._entries.attributes(kind),
                controls=self._entries.controls,
            )
        )
        changes = self._entries.changes(kind, entries, self._lookup, ReadState())
        found = next((c for c in changes if c.anchor == anchor), None)
        return found.attributes if found is not None else None

    def get_many(self, object_type: str, anchors: Sequence[str]) -> dict[str, Attributes | None]:
        """``get`` for many anchors: OR filters of FETCH_BATCH anchors each (ReadsMany)."""
        kind = self._type(object_type)
        found: dict[str, Attributes | None] = dict.fromkeys(anchors)
        wanted = list(dict.fromkeys(anchors))
        for index in range(0, len(wanted), FETCH_BATCH):
            entries = self._by_anchor(kind, wanted[index : index + FETCH_BATCH], self._lookup)
            for change in self._entries.changes(kind, entries, self._lookup, ReadState()):
                if change.anchor in found:
                    found[change.anchor] = change.attributes
        return found

    def lookup(self, object_type: str, attribute: str, value: str) -> list[str]:
        """Anchors of the objects of ``object_type`` whose ``attribute`` is ``value``
        (``dn``: the entry so named, under the type's base): one search, for provision on
        demand's subject given by DN or uid rather than anchor. An invalid DN finds none."""
        kind = self._type(object_type)
        wanted = [self._entries.anchor]
        if attribute.lower() == "dn":
            try:
                name, base = normal_dn(value), normal_dn(kind.base_dn)
                # spelt again as the server takes it: the spaces RFC 2253 tolerates around
                # types and values ("uid=a, ou=people") are refused by the client library
                dn = ",".join(rdn(a, v) for a, v in parse_dn(value))
            except ValueError:
                return []
            if name != base and not name.endswith("\x00" + base):
                return []
            entries = self._lookup.search(dn, kind.filter, wanted, scope=ldap3.BASE)
        else:
            check_attribute_description(attribute)
            low = attribute.lower()
            if low == self._entries.anchor_low:  # objectGUID: its text form stands for bytes
                escaped = self._entries.assertion(value)
            else:
                escaped = escape_filter_value(value.encode() if low in kind.binary else value)
            if escaped is None:
                return []
            assertion = f"({attribute}={escaped})"
            entries = self._lookup.search(kind.base_dn, f"(&{kind.filter}{assertion})", wanted)
        anchors = (self._entries.anchor_of(e.get("raw_attributes") or {}) for e in entries)
        return sorted({a for a in anchors if a})

    def validate(self) -> None:
        """Bind, see every base DN, and what the delta mode reads: the accesslog, DirSync (a
        probe from the start), or the DC's USN and its deleted objects."""
        with self._lookup.lock:
            self._lookup.client.connect()
        who = self.endpoint.bind_dn or "the anonymous user"
        for kind in self._types.values():
            if not self._lookup.search(kind.base_dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE):
                raise ConnectorError(
                    f"{self.endpoint.role} base DN {kind.base_dn!r} of {kind.name} does not "
                    f"exist on {self.endpoint.shown_url} or is not visible to {who}"
                )
        if self.delta_mode == "accesslog":
            self._accesslog.require(self._lookup)
        for kind in self._types.values() if self.delta_mode in ("dirsync", "usn") else ():
            if self.delta_mode == "dirsync":
                self._dirsync.start(kind, self._lookup)
            else:
                self._usn.require(kind, self._lookup)

    def discover(self) -> DiscoveredSchema:
        """The configured types' attributes as the server's subschema defines them."""
        with self._lookup.lock:
            return discovery.discover(self._lookup.client, list(self._types.values()))

    # ------------------------------------------------------------------ helpers
    def _type(self, object_type: str) -> LdapObjectType:
        try:
            return self._types[object_type]
        except KeyError:
            raise ObjectError(f"unknown object type {object_type!r}") from None

    def _naming_context(self, kind: LdapObjectType) -> str:
        found = self._contexts.get(kind.name)
        if found is None:
            found = self._contexts[kind.name] = naming_context(self._lookup, kind.base_dn)
        return found

    def _current(self, kind: LdapObjectType, anchors: list[str], state: ReadState) -> list[Change]:
        """The objects with these anchors as they are now: upserts of those under the type's
        base and filter, deletes of the others (gone, or no longer of the type)."""
        changes = self._fetch(kind, anchors, {}, state)
        found = {c.anchor for c in changes}
        for anchor in anchors:
            if anchor not in found:
                self._entries.dns.forget_anchor(anchor)
                changes.append(Change("delete", anchor))
        return changes

    def _check_start(self, start: str) -> None:
        """A full read's resume point carries the delta's start, which becomes the read's
        final watermark: one that no delta could read (a corrupted state) is refused now,
        not after the whole read, when every next delta would fail on it."""
        mode = self._delta_kind(start)
        if mode == "u":
            usn_mark(start[2:])
        elif mode == "d":
            dirsync_mark(start[2:])

    def _delta_kind(self, watermark: str) -> str:
        """``a``, ``t``, ``d`` or ``u``; a watermark of another mode (or none of ours) needs a
        full read."""
        kind = watermark[:2]
        expected = DELTA_MODES[self.delta_mode]
        if kind != expected:
            raise WatermarkExpired(
                f"watermark is not a {self.delta_mode} watermark of this LDAP source "
                "(delta mode changed?): reading everything again"
            )
        return kind[0]

    # ------------------------------------------------------------------ initial read
    def _read_full(
        self, kind: LdapObjectType, start: str | None, after: str | None, page_size: int
    ) -> Iterator[Page]:
        if start is None and self.delta_mode == "accesslog":
            start = "a:" + self._accesslog.start_mark(self._reader)
        elif start is None and self.delta_mode == "dirsync":
            start = self._dirsync.start(kind)
        elif start is None and self.delta_mode == "usn":
            start = self._usn.start()
        anchors, newest, held = self._scan(kind)
        if start is None:
            start = self._timestamps.start(newest)
        position = 0 if not after else bisect.bisect_right(anchors, after)
        state = ReadState()
        if position >= len(anchors):
            yield Page((), start)
            return
        while position < len(anchors):
            remaining = len(anchors) - position
            chunk = anchors[position : position + page_size]
            position += len(chunk)
            changes = self._fetch(kind, chunk, held, state)
            last = position >= len(anchors)
            if changes or last:
                yield Page(changes, start if last else f"f:{start}|{chunk[-1]}", remaining)

    def _scan(self, kind: LdapObjectType) -> tuple[list[str], str | None, dict[str, Entry]]:
        """Every anchor of the type, sorted, the newest modifyTimestamp (timestamp mode), and
        the entries the scan kept whole (see :meth:`_keeps`).

        A base DN that does not exist is an error, not an empty read: the engine deprovisions
        what a full read does not see, and a typo in a base DN must not delete anything.
        Retried once from the start: a dropped connection invalidates the paged cookie."""
        if not self._reader.search(kind.base_dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE):
            who = self.endpoint.bind_dn or "the anonymous user"
            raise ConnectorError(
                f"{self.endpoint.role} base DN {kind.base_dn!r} of {kind.name} does not exist "
                f"on {self.endpoint.shown_url} (or {who} may not see it): nothing was read, and "
                "nothing is deprovisioned for it"
            )
        try:
            return self._scan_once(kind)
        except TransientError:
            return self._scan_once(kind)

    def _keeps(self, kind: LdapObjectType) -> bool:
        """Whether the scan reads entries whole and keeps them, instead of anchors only.

        Safe only where the delta's start was captured before the scan (accesslog, dirsync,
        usn): a change made after an entry was scanned is then replayed by the delta. In
        timestamp mode the start comes from the scan itself, so entries are fetched after it.
        A type whose last scan in this process found more than ``scan_buffer`` entries is
        scanned for anchors only (its entries would not all fit)."""
        return (
            self.delta_mode != "timestamp"
            and self.scan_buffer > 0
            and self._scanned.get(kind.name, 0) <= self.scan_buffer
        )

    def _scan_once(self, kind: LdapObjectType) -> tuple[list[str], str | None, dict[str, Entry]]:
        timestamps = self.delta_mode == "timestamp"
        keep = self._keeps(kind)
        anchor = self._entries.anchor
        if keep:
            attributes = self._entries.attributes(kind)
        else:
            attributes = [anchor, "modifyTimestamp"] if timestamps else [anchor]
        anchor_of = self._entries.anchor_of  # bound once: called for every entry
        anchors: set[str] = set()
        held: dict[str, Entry] = {}
        room = self.scan_buffer if keep else 0
        newest = ""
        controls = self._entries.controls if keep else ()
        for entries in self._reader.pages(
            kind.base_dn, kind.filter, attributes, self.scan_page_size, controls=controls
        ):
            if keep:
                self._entries.extended(entries)
            for entry in entries:
                raw = entry["raw_attributes"]
                found = anchor_of(raw)
                if found is not None:
                    anchors.add(found)
                    if len(held) < room:
                        held[found] = entry
                if timestamps:
                    newest = max(newest, stamp(raw))
        self._scanned[kind.name] = len(anchors)
        self._entries.remember(list(held.values()))  # references among them resolve at once
        return sorted(anchors), newest or None, held

    def _fetch(
        self, kind: LdapObjectType, chunk: list[str], held: dict[str, Entry], state: ReadState
    ) -> list[Change]:
        """The changes for these anchors, in their order: entries the scan kept, the others
        fetched now (those gone meanwhile left out)."""
        entries: list[Entry] = []
        missing: list[str] = []
        for anchor in chunk:
            entry = held.pop(anchor, None)
            if entry is None:
                missing.append(anchor)
            else:
                entries.append(entry)
        for index in range(0, len(missing), FETCH_BATCH):
            entries += self._by_anchor(kind, missing[index : index + FETCH_BATCH], self._reader)
        wanted = set(chunk)
        changes = {
            c.anchor: c
            for c in self._entries.changes(kind, entries, self._reader, state)
            if c.anchor in wanted
        }
        return [changes[a] for a in chunk if a in changes]

    def _by_anchor(self, kind: LdapObjectType, anchors: list[str], channel: Channel) -> list[Entry]:
        anchor = self._entries.anchor
        terms = "".join(
            f"({anchor}={a})" for a in map(self._entries.assertion, anchors) if a is not None
        )
        if not terms:
            return []
        search_filter = f"(&{kind.filter}(|{terms}))"
        wanted = self._entries.attributes(kind)
        found = channel.search(kind.base_dn, search_filter, wanted, controls=self._entries.controls)
        return self._entries.extended(found)
