"""An LDAP directory as a source: full reads in anchor order, deltas from accesslog or timestamps.

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
    The delta's start: in accesslog mode the newest record before the scan; in timestamp mode
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

Delta, ``accesslog`` mode (OpenLDAP with the accesslog overlay)
    Records after the watermark (a raw ``reqStart``: sorted as strings, since its fraction is
    a counter, and unique per record because it is the record's RDN) for successful writes
    under the type's base. ``reqEntryUUID`` names the entry, so renames keep their anchor
    and the current entries are read by entryUUID, not by a DN that may have moved again.
    A delete takes its anchor from ``reqEntryUUID`` (or ``reqOld``); an entry that is gone or
    no longer matches the filter becomes a delete of its anchor (it left the type; when types
    share a base, a change to an entry of another type is such a delete too, which the engine
    ignores for an anchor it never linked). When no
    record at or before the watermark remains (purged while the engine was away), the delta
    cannot be trusted: WatermarkExpired. Known limit: a write whose record is stored after a
    later-starting write's record was already read (milliseconds apart) is not seen until the
    entry changes again; a delta that saw nothing keeps its watermark, so a server idle for
    longer than the purge age expires it (a harmless reconciling full read).

Delta, ``timestamp`` mode (any LDAP server)
    ``(&(filter)(modifyTimestamp>=W - overlap))`` with W the newest modifyTimestamp seen
    (server values only, never the local clock); entries in the overlap repeat, which is
    harmless. Deletes leave no timestamp, so once per ``delete_scan_interval`` (measured in
    server time: the root DSE's ``currentTime`` where the server has one, else the newest
    modifyTimestamp seen) a delta raises ``WatermarkExpired("delete scan due ...")``; the
    engine then reads everything and deprovisions what it did not see, which is exactly a
    delete scan. On a server without ``currentTime`` the clock only moves with writes, so a
    scan falls due at the first delta after a write made past the interval.

References
    DN-valued attributes hold anchors: every entry read fills a DN -> anchor cache (exact DN
    string, and a normalized form for other spellings), so a 50,000-member group converts with
    dict lookups. A miss is a base-scope search; more than ``refill_threshold`` misses in one
    batch refill the whole cache with one paged scan of ``directory_base`` (dn and anchor of
    every entry). A DN naming no entry is dropped (and looked up again on the next read: no
    negative cache, so it is found once it exists). Accesslog deltas forget the DNs of deleted
    and renamed entries; the cache is never trimmed otherwise: a few hundred bytes per entry.

Threads
    ``read`` runs on one connection and ``get``/``validate`` on another, each behind its own
    lock taken per operation and never held across a ``yield``, so the engine may consume
    pages in a read-ahead thread while it calls ``get``.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import attrs
import ldap3

from connectors.base import (
    Attributes,
    Capability,
    Change,
    ConnectorError,
    ObjectError,
    Page,
    Scalar,
    TransientError,
    Value,
    WatermarkExpired,
)
from connectors.discovery import DiscoveredSchema
from connectors.ldap import discovery
from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapClient, LdapEndpoint
from connectors.ldap.syntax import check_attribute_description, escape_filter_value, parse_dn

Entry = dict[str, Any]

_TIME = "%Y%m%d%H%M%S"
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the largest GeneralizedTime
_WRITES = "(|(reqType=add)(reqType=modify)(reqType=modrdn)(reqType=delete))"
_LOG_ATTRIBUTES = ("reqStart", "reqType", "reqDN", "reqEntryUUID", "reqNewRDN", "reqNewSuperior")
#: the attributes of a change whose references missed the cache: redone once they are looked up
_INCOMPLETE: dict[str, Value] = {}
_FETCH_BATCH = 250  # equality terms per OR filter: well under any server's size limit
_ACCESSLOG_HELP = (
    "enable the accesslog overlay on the directory's database (olcAccessLogOps: writes, "
    "olcAccessLogSuccess: TRUE, olcAccessLogOld: (objectClass=*)) and give the bind DN read "
    "access on the accesslog database (olcAccess: to * by dn.exact=<bind DN> read), or use "
    "delta_mode='timestamp'"
)


class _Channel:
    """One LdapClient used by one thread at a time: the lock is held per operation only."""

    def __init__(self, endpoint: LdapEndpoint) -> None:
        self.client = LdapClient(endpoint)
        self.lock = threading.Lock()

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        scope: str = ldap3.SUBTREE,
        size_limit: int = 0,
    ) -> list[Entry]:
        with self.lock:
            return self.client.search(
                base, search_filter, attributes, scope=scope, size_limit=size_limit
            )

    def pages(
        self, base: str, search_filter: str, attributes: Sequence[str], page_size: int
    ) -> Iterator[list[Entry]]:
        """Pages of a paged search. A failure after the first page is transient: the cookie
        did not survive a reconnect, and the caller's watermark says where to start again."""
        pages = self.client.paged_search(base, search_filter, attributes, page_size)
        first = True
        while True:
            with self.lock:
                try:
                    entries, _ = next(pages)
                except StopIteration:
                    return
                except ObjectError as error:
                    if first:
                        raise
                    raise TransientError(f"paged search interrupted: {error}") from None
            first = False
            yield entries

    def close(self) -> None:
        with self.lock:
            self.client.close()


class _DnCache:
    """DN -> anchor, looked up by the DN exactly as the server spells it, then normalized."""

    def __init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.normal: dict[str, str] = {}

    def put(self, dn: str, anchor: str) -> None:
        self.exact[dn] = anchor
        self.normal[_normal_dn(dn)] = anchor

    def get(self, dn: str) -> str | None:
        anchor = self.exact.get(dn)
        return anchor if anchor is not None else self.normal.get(_normal_dn(dn))

    def forget(self, dn: str) -> None:
        self.exact.pop(dn, None)
        self.normal.pop(_normal_dn(dn), None)


def _normal_dn(dn: str) -> str:
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


class _LogRecord(NamedTuple):
    start: str  # raw reqStart
    kind: str
    dn: str
    entry_uuid: str | None
    new_dn: str | None

    @property
    def key(self) -> str:
        return self.entry_uuid or _normal_dn(self.dn)


class _ReadState:
    """What one read() remembers between its pages."""

    def __init__(self) -> None:
        self.refilled = False


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value  # not text after all: give the bytes rather than a mangled string


def _first(raw: Mapping[str, list[bytes]], name: str) -> str | None:
    values = raw.get(name)
    if values is None:
        low = name.lower()
        values = next((v for k, v in raw.items() if k.lower() == low), None)
    return values[0].decode("utf-8", "replace") if values else None


def _parse_time(raw: str | None) -> datetime | None:
    if not raw or len(raw) < 14 or not raw[:14].isdigit():
        return None
    return datetime.strptime(raw[:14], _TIME).replace(tzinfo=UTC)


def _stamp(raw: Mapping[str, list[bytes]]) -> str:
    """An entry's modifyTimestamp as YYYYmmddHHMMSS ("" if none): GeneralizedTime in UTC
    ("Z", as servers write operational timestamps) orders as a string, so no parsing."""
    found = _first(raw, "modifyTimestamp") or ""
    return found[:14] if len(found) >= 14 and found[:14].isdigit() else ""


def _format_time(moment: datetime) -> str:
    return moment.strftime(_TIME) + "Z"


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
    """An LDAP directory the engine reads from (see the module docstring for the design)."""

    capabilities = frozenset({Capability.DELTA, Capability.RENAME, Capability.REFERENCES})

    def __init__(
        self,
        endpoint: LdapEndpoint,
        object_types: Iterable[LdapObjectType] | Mapping[str, LdapObjectType],
        *,
        delta_mode: str = "accesslog",
        accesslog_base: str = "cn=accesslog",
        timestamp_overlap: float = 5.0,
        delete_scan_interval: float = 3600.0,
        directory_base: str | None = None,
        refill_threshold: int = 50,
        scan_page_size: int = 1000,
    ) -> None:
        if delta_mode not in ("accesslog", "timestamp"):
            raise ValueError(f"delta_mode must be 'accesslog' or 'timestamp', not {delta_mode!r}")
        types = object_types.values() if isinstance(object_types, Mapping) else object_types
        self._types = {t.name: _parenthesized(t) for t in types}
        anchors = {t.anchor_attribute.lower() for t in self._types.values()}
        if len(anchors) > 1:
            raise ValueError("every object type of one LDAP source needs the same anchor attribute")
        self._anchor = check_attribute_description(
            next(iter(self._types.values())).anchor_attribute if self._types else "entryUUID"
        )
        self._anchor_low = self._anchor.lower()
        self.endpoint = endpoint
        self.delta_mode = delta_mode
        self.accesslog_base = accesslog_base
        self.timestamp_overlap = timestamp_overlap
        self.delete_scan_interval = delete_scan_interval
        self.directory_base = (
            directory_base
            if directory_base is not None
            else _common_suffix(t.base_dn for t in self._types.values())
        )
        self.refill_threshold = refill_threshold
        self.scan_page_size = scan_page_size
        self._reader = _Channel(endpoint)
        self._lookup = _Channel(endpoint)
        self._dns = _DnCache()

    def __repr__(self) -> str:
        return f"LdapSource({self.endpoint.url!r}, {sorted(self._types)}, {self.delta_mode})"

    def close(self) -> None:
        self._reader.close()
        self._lookup.close()

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
            self._delta_kind(start)
            return self._read_full(kind, start, after, page_size)
        if self._delta_kind(watermark) == "a":
            return self._read_accesslog(kind, watermark[2:], page_size)
        newest, _, scanned = watermark[2:].partition(":")
        return self._read_timestamps(kind, newest, scanned, page_size)

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        kind = self._type(object_type)
        assertion = self._assertion(anchor)
        if assertion is None:
            return None
        entries = self._lookup.search(
            kind.base_dn, f"(&{kind.filter}({self._anchor}={assertion}))", self._attributes(kind)
        )
        changes = self._changes(kind, entries, self._lookup, _ReadState())
        found = next((c for c in changes if c.anchor == anchor), None)
        return found.attributes if found is not None else None

    def validate(self) -> None:
        """Bind, see every base DN, and (accesslog mode) read the accesslog."""
        with self._lookup.lock:
            self._lookup.client.connect()
        who = self.endpoint.bind_dn or "the anonymous user"
        for kind in self._types.values():
            if not self._lookup.search(kind.base_dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE):
                raise ConnectorError(
                    f"base DN {kind.base_dn!r} of {kind.name} does not exist or is not "
                    f"visible to {who}"
                )
        if self.delta_mode == "accesslog":
            self._require_accesslog(self._lookup)

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

    def _delta_kind(self, watermark: str) -> str:
        """``a`` or ``t``; a watermark of the other mode (or none of ours) needs a full read."""
        kind = watermark[:2]
        expected = "a:" if self.delta_mode == "accesslog" else "t:"
        if kind != expected:
            raise WatermarkExpired(
                f"watermark is not a {self.delta_mode} watermark of this LDAP source "
                "(delta mode changed?): reading everything again"
            )
        return kind[0]

    def _attributes(self, kind: LdapObjectType, *more: str) -> list[str]:
        wanted = list(kind.attributes) or ["*"]
        extra = [self._anchor, *more]
        extra += ["modifyTimestamp"] if self.delta_mode == "timestamp" else []
        names = {w.lower(): w for w in wanted}
        for name in extra:
            names.setdefault(name.lower(), name)
        return list(names.values())

    def _hidden(self, kind: LdapObjectType) -> frozenset[str]:
        """Operational attributes we ask for for our own use, left out of the values."""
        asked = {a.lower() for a in kind.attributes}
        return frozenset({"modifytimestamp"} - asked)

    def _anchor_of(self, raw: Mapping[str, list[bytes]]) -> str | None:
        values = raw.get(self._anchor)
        if values is None:
            values = next((v for k, v in raw.items() if k.lower() == self._anchor_low), None)
        if not values:
            return None
        if self._anchor_low == "objectguid":
            return str(uuid.UUID(bytes_le=bytes(values[0])))
        return values[0].decode("utf-8", "replace")

    def _assertion(self, anchor: str) -> str | None:
        """The anchor as a filter assertion value (objectGUID: its bytes), None if invalid."""
        if self._anchor_low == "objectguid":
            try:
                return escape_filter_value(uuid.UUID(anchor).bytes_le)
            except ValueError:
                return None
        return escape_filter_value(anchor)

    # ------------------------------------------------------------------ values
    def _changes(
        self, kind: LdapObjectType, entries: list[Entry], channel: _Channel, state: _ReadState
    ) -> list[Change]:
        """Upserts for ``entries``. References the cache does not know are collected on the
        way, looked up in one batch, and only then are the entries that had them redone: the
        common case (every DN cached) converts each reference once."""
        self._remember(entries)
        missing: set[str] = set()
        changes = [self._upsert(kind, entry, missing) for entry in entries]
        if missing:
            self._resolve(missing, channel, state)
            changes = [
                self._upsert(kind, entry) if change and change.attributes is _INCOMPLETE else change
                for entry, change in zip(entries, changes, strict=True)
            ]
        return [change for change in changes if change is not None]

    def _remember(self, entries: list[Entry]) -> None:
        for entry in entries:
            anchor = self._anchor_of(entry["raw_attributes"])
            if anchor is not None:
                self._dns.put(entry["dn"], anchor)

    def _upsert(
        self, kind: LdapObjectType, entry: Entry, missing: set[str] | None = None
    ) -> Change | None:
        raw: dict[str, list[bytes]] = entry["raw_attributes"]
        anchor = self._anchor_of(raw)
        if anchor is None:
            return None
        hidden = self._hidden(kind)
        values: dict[str, Value] = {"dn": entry["dn"]}
        complete = True
        for name, found in raw.items():
            low = name.lower()
            if low == self._anchor_low:
                values[name] = anchor
                continue
            if low in hidden:
                continue
            scalars: list[Scalar]
            if low in kind.references:
                scalars, had_misses = self._anchors_of(found, missing)
                complete = complete and not had_misses
            elif low in kind.binary:
                scalars = [bytes(v) for v in found]
            else:
                scalars = [_text(v) for v in found]
            if scalars:
                many = len(scalars) > 1 or kind.is_multivalued(name)
                values[name] = scalars if many else scalars[0]
        return Change("upsert", anchor, values if complete else _INCOMPLETE)

    def _anchors_of(
        self, dns: list[bytes], missing: set[str] | None = None
    ) -> tuple[list[Scalar], bool]:
        """The anchors of the entries these DNs name, and whether some were not in the cache
        (added to ``missing`` when given; otherwise they name no entry and are dropped).
        Dict lookups only: this is the hot path of a 50,000-member group."""
        exact = self._dns.exact
        anchors: list[Scalar] = []
        had_misses = False
        for value in dns:
            dn = value.decode("utf-8", "replace")
            anchor = exact.get(dn)
            if anchor is None:
                anchor = self._dns.get(dn)
                if anchor is None:
                    if missing is not None:
                        missing.add(dn)
                        had_misses = True
                    continue
            anchors.append(anchor)
        return anchors, had_misses

    def _resolve(self, missing: set[str], channel: _Channel, state: _ReadState) -> None:
        """Look the missing DNs up: one by one, or all at once by refilling the cache."""
        if not missing:
            return
        if len(missing) > self.refill_threshold and not state.refilled:
            state.refilled = True
            self._refill(channel)
            return  # every entry of the directory base is known now: the rest are dangling
        for dn in missing:
            try:
                entries = channel.search(dn, "(objectClass=*)", [self._anchor], scope=ldap3.BASE)
            except ObjectError:  # not even a valid DN
                continue
            self._remember(entries)

    def _refill(self, channel: _Channel) -> None:
        for entries in channel.pages(
            self.directory_base, "(objectClass=*)", [self._anchor], self.scan_page_size
        ):
            self._remember(entries)

    # ------------------------------------------------------------------ initial read
    def _read_full(
        self, kind: LdapObjectType, start: str | None, after: str | None, page_size: int
    ) -> Iterator[Page]:
        if start is None and self.delta_mode == "accesslog":
            start = "a:" + self._newest_record(self._reader)
        anchors, newest = self._scan(kind)
        if start is None:
            start = self._timestamp_start(newest)
        position = 0 if not after else bisect.bisect_right(anchors, after)
        state = _ReadState()
        if position >= len(anchors):
            yield Page((), start)
            return
        while position < len(anchors):
            remaining = len(anchors) - position
            chunk = anchors[position : position + page_size]
            position += len(chunk)
            changes = self._fetch(kind, chunk, state)
            last = position >= len(anchors)
            if changes or last:
                yield Page(changes, start if last else f"f:{start}|{chunk[-1]}", remaining)

    def _scan(self, kind: LdapObjectType) -> tuple[list[str], str | None]:
        """Every anchor of the type, sorted, and the newest modifyTimestamp (timestamp mode).

        Retried once from the start: a dropped connection invalidates the paged cookie."""
        try:
            return self._scan_once(kind)
        except TransientError:
            return self._scan_once(kind)

    def _scan_once(self, kind: LdapObjectType) -> tuple[list[str], str | None]:
        timestamps = self.delta_mode == "timestamp"
        attributes = [self._anchor, "modifyTimestamp"] if timestamps else [self._anchor]
        anchors: set[str] = set()
        newest = ""
        for entries in self._reader.pages(
            kind.base_dn, kind.filter, attributes, self.scan_page_size
        ):
            for entry in entries:
                raw = entry["raw_attributes"]
                anchor = self._anchor_of(raw)
                if anchor is not None:
                    anchors.add(anchor)
                if timestamps:
                    newest = max(newest, _stamp(raw))
        return sorted(anchors), newest or None

    def _fetch(self, kind: LdapObjectType, chunk: list[str], state: _ReadState) -> list[Change]:
        """The changes for these anchors, in their order (entries gone meanwhile left out)."""
        entries: list[Entry] = []
        for index in range(0, len(chunk), _FETCH_BATCH):
            entries += self._by_anchor(kind, chunk[index : index + _FETCH_BATCH], self._reader)
        wanted = set(chunk)
        changes = {
            c.anchor: c
            for c in self._changes(kind, entries, self._reader, state)
            if c.anchor in wanted
        }
        return [changes[a] for a in chunk if a in changes]

    def _by_anchor(
        self, kind: LdapObjectType, anchors: list[str], channel: _Channel
    ) -> list[Entry]:
        terms = "".join(
            f"({self._anchor}={a})" for a in map(self._assertion, anchors) if a is not None
        )
        if not terms:
            return []
        search_filter = f"(&{kind.filter}(|{terms}))"
        return channel.search(kind.base_dn, search_filter, self._attributes(kind))

    # ------------------------------------------------------------------ accesslog delta
    def _require_accesslog(self, channel: _Channel) -> None:
        """A ConnectorError that says how to fix it when the accesslog cannot be read."""
        try:
            found = channel.search(
                self.accesslog_base, "(objectClass=*)", ["1.1"], scope=ldap3.BASE
            )
        except ObjectError as error:
            found, reason = [], f" ({error})"
        else:
            reason = ""
        if not found:
            who = self.endpoint.bind_dn or "the anonymous user"
            raise ConnectorError(
                f"the accesslog {self.accesslog_base!r} cannot be read by {who}{reason}: "
                f"{_ACCESSLOG_HELP}"
            )

    def _log_exists(self, channel: _Channel, assertion: str) -> bool:
        search_filter = f"(&(objectClass=auditWriteObject){assertion})"
        return bool(channel.search(self.accesslog_base, search_filter, ["1.1"], size_limit=1))

    def _newest_record(self, channel: _Channel) -> str:
        """The raw reqStart of the newest accesslog record ("" for an empty log).

        LDAP has no "last entry" query, so this bisects the seconds of GeneralizedTime with
        one-entry probes on the reqStart index (about 38 probes), then reads that second."""
        self._require_accesslog(channel)
        low, high = 0, _LAST_SECOND

        def since(second: int) -> str:
            return f"(reqStart>={_format_time(datetime.fromtimestamp(second, UTC))})"

        if not self._log_exists(channel, since(low)):
            return ""
        while high - low > 1:
            middle = (low + high) // 2
            if self._log_exists(channel, since(middle)):
                low = middle
            else:
                high = middle
        search_filter = f"(&(objectClass=auditWriteObject){since(low)})"
        records = channel.search(self.accesslog_base, search_filter, ["reqStart"])
        return max((_first(r["raw_attributes"], "reqStart") or "" for r in records), default="")

    def _read_accesslog(self, kind: LdapObjectType, after: str, page_size: int) -> Iterator[Page]:
        self._require_accesslog(self._reader)
        if after and not self._log_exists(self._reader, f"(reqStart<={after})"):
            raise WatermarkExpired(
                f"the accesslog no longer reaches back to {after} (older records were purged "
                "while the engine was not reading): reading everything again"
            )
        records = self._log_records(kind, after)
        if not records:
            yield Page((), f"a:{after}")
            return
        state = _ReadState()
        groups = list(_groups(records, page_size))
        for index, group in enumerate(groups):
            changes = self._log_changes(kind, group, state)
            last = index == len(groups) - 1
            if changes or last:
                yield Page(changes, f"a:{group[-1].start}")

    def _log_records(self, kind: LdapObjectType, after: str) -> list[_LogRecord]:
        """Successful writes under the type's base after ``after``, in reqStart order."""
        base = escape_filter_value(kind.base_dn)
        where = f"(|(reqDN:dnSubtreeMatch:={base})(reqNewSuperior:dnSubtreeMatch:={base}))"
        since = f"(reqStart>={after})" if after else ""
        search_filter = f"(&(objectClass=auditWriteObject)(reqResult=0){since}{_WRITES}{where})"
        records: list[_LogRecord] = []
        for entries in self._reader.pages(
            self.accesslog_base, search_filter, _LOG_ATTRIBUTES, self.scan_page_size
        ):
            records += (r for r in map(_log_record, entries) if r is not None and r.start > after)
        records.sort(key=lambda r: r.start)
        return records

    def _log_changes(
        self, kind: LdapObjectType, group: list[_LogRecord], state: _ReadState
    ) -> list[Change]:
        """One change per entry of the group, from its last record and its current state."""
        latest: dict[str, _LogRecord] = {}
        for record in group:
            latest.pop(record.key, None)
            latest[record.key] = record
            if record.kind in ("delete", "modrdn"):
                self._dns.forget(record.dn)
        current = self._current(kind, [r for r in latest.values() if r.kind != "delete"], state)
        changes: list[Change] = []
        for key, record in latest.items():
            change = current.get(key)
            if change is None:
                anchor = self._gone_anchor(record)
                change = Change("delete", anchor) if anchor is not None else None
            if change is not None:
                changes.append(change)
        return changes

    def _current(
        self, kind: LdapObjectType, records: list[_LogRecord], state: _ReadState
    ) -> dict[str, Change]:
        """Record key -> upsert for the entries that still exist and match the type."""
        by_uuid = [r.entry_uuid for r in records if r.entry_uuid]
        entries: list[Entry] = []
        for index in range(0, len(by_uuid), _FETCH_BATCH):
            terms = "".join(
                f"(entryUUID={escape_filter_value(u)})"
                for u in by_uuid[index : index + _FETCH_BATCH]
            )
            search_filter = f"(&{kind.filter}(|{terms}))"
            entries += self._reader.search(
                kind.base_dn, search_filter, self._attributes(kind, "entryUUID")
            )
        for record in records:
            if not record.entry_uuid:
                entries += self._by_dn(kind, record.new_dn or record.dn)
        found: dict[str, Change] = {}
        for entry in entries:
            key = _first(entry["raw_attributes"], "entryUUID") or _normal_dn(entry["dn"])
            change = self._changes(kind, [entry], self._reader, state)
            if change:
                found[key] = change[0]
        return found

    def _by_dn(self, kind: LdapObjectType, dn: str) -> list[Entry]:
        name, base = _normal_dn(dn), _normal_dn(kind.base_dn)
        if name != base and not name.endswith("\x00" + base):
            return []
        try:
            return self._reader.search(dn, kind.filter, self._attributes(kind), scope=ldap3.BASE)
        except ObjectError:
            return []

    def _gone_anchor(self, record: _LogRecord) -> str | None:
        """The anchor of an entry that was deleted or left the type, if it can be known."""
        if self._anchor_low == "entryuuid" and record.entry_uuid:
            return record.entry_uuid
        if record.kind == "delete":
            return self._anchor_from_old(record)
        if record.entry_uuid:  # another anchor attribute: read it where the entry is now
            entries = self._reader.search(
                self.directory_base,
                f"(entryUUID={escape_filter_value(record.entry_uuid)})",
                [self._anchor],
            )
            return next((a for e in entries if (a := self._anchor_of(e["raw_attributes"]))), None)
        return self._dns.get(record.new_dn or record.dn)

    def _anchor_from_old(self, record: _LogRecord) -> str | None:
        """The anchor attribute's value in a delete record's reqOld (the deleted entry)."""
        search_filter = (
            f"(&(objectClass=auditWriteObject)(reqStart={escape_filter_value(record.start)}))"
        )
        found = self._reader.search(self.accesslog_base, search_filter, ["reqOld"])
        prefix = self._anchor_low + ":"
        for entry in found:
            for line in entry["raw_attributes"].get("reqOld", []):
                text: str = line.decode("utf-8", "replace")
                if text.lower().startswith(prefix):
                    return text[len(prefix) :].strip()
        return None

    # ------------------------------------------------------------------ timestamp delta
    def _server_time(self, channel: _Channel) -> str | None:
        """The root DSE's currentTime (AD has it; OpenLDAP does not), as YYYYmmddHHMMSS."""
        try:
            root = channel.search("", "(objectClass=*)", ["currentTime"], scope=ldap3.BASE)
        except ObjectError:
            return None
        moment = _parse_time(_first(root[0]["raw_attributes"], "currentTime") if root else None)
        return moment.strftime(_TIME) if moment else None

    def _timestamp_start(self, newest: str | None) -> str:
        now = max(filter(None, (newest, self._server_time(self._reader))), default="")
        return f"t:{newest or now}:{now}"

    def _read_timestamps(
        self, kind: LdapObjectType, newest: str, scanned: str, page_size: int
    ) -> Iterator[Page]:
        now = max(filter(None, (newest, self._server_time(self._reader))), default="")
        self._check_scan_due(scanned, now)
        moment = _parse_time(newest)
        search_filter = kind.filter
        if moment is not None:
            since = _format_time(moment - timedelta(seconds=self.timestamp_overlap))
            search_filter = f"(&{kind.filter}(modifyTimestamp>={since}))"
        state = _ReadState()
        pending: list[Change] = []
        for entries in self._reader.pages(
            kind.base_dn, search_filter, self._attributes(kind), page_size
        ):
            for entry in entries:
                newest = max(newest, _stamp(entry["raw_attributes"]))
            if pending:
                yield Page(pending, f"t:{moment.strftime(_TIME) if moment else ''}:{scanned}")
            pending = self._changes(kind, entries, self._reader, state)
        yield Page(pending, f"t:{newest}:{scanned}")

    def _check_scan_due(self, scanned: str, now: str) -> None:
        last, current = _parse_time(scanned), _parse_time(now)
        if last is None or current is None:
            return
        if (current - last).total_seconds() >= self.delete_scan_interval:
            raise WatermarkExpired(
                f"delete scan due: the last full read was at {scanned}Z (server time) and "
                f"deletes cannot be seen by timestamps; reading everything to find them"
            )


def _log_record(entry: Entry) -> _LogRecord | None:
    raw = entry["raw_attributes"]
    start, kind, dn = _first(raw, "reqStart"), _first(raw, "reqType"), _first(raw, "reqDN")
    if not start or not kind or dn is None:
        return None
    new_dn = None
    if kind == "modrdn":
        new_rdn = _first(raw, "reqNewRDN") or ""
        superior = _first(raw, "reqNewSuperior") or dn.partition(",")[2]
        new_dn = f"{new_rdn},{superior}" if superior else new_rdn
    return _LogRecord(start, kind, dn, _first(raw, "reqEntryUUID"), new_dn)


def _groups(records: list[_LogRecord], page_size: int) -> Iterator[list[_LogRecord]]:
    """Consecutive records touching at most ``page_size`` distinct entries each."""
    group: list[_LogRecord] = []
    keys: set[str] = set()
    for record in records:
        if record.key not in keys and len(keys) >= page_size:
            yield group
            group, keys = [], set()
        group.append(record)
        keys.add(record.key)
    if group:
        yield group
