"""Deltas of an LDAP source from OpenLDAP's accesslog overlay (``delta_mode="accesslog"``).

Records for successful writes under the type's base that ended inside the overlap window
of the watermark and were not read before (:mod:`connectors.ldap._log_window` says why a
``reqStart`` watermark loses slow writes and how the window finds them), in the order slapd
ended them. ``reqEntryUUID`` names the entry, so renames keep their anchor
and the current entries are read by entryUUID, not by a DN that may have moved again.
A delete takes its anchor from ``reqEntryUUID`` (or ``reqOld``); an entry that is gone or
no longer matches the filter becomes a delete of its anchor (it left the type; when types
share a base, a change to an entry of another type is such a delete too, which the engine
ignores for an anchor it never linked). When no
record at or before the watermark remains (purged while the engine was away), the delta
cannot be trusted: WatermarkExpired. A delta that saw nothing keeps its watermark, so a
server idle for longer than the purge age expires it (a harmless reconciling full read).
The log's ``reqEnd`` should be indexed (``olcDbIndex: reqStart,reqEnd eq``), or each delta
scans the records of the last day (a write that ran longer than a day is not looked for).

A full read in this mode starts its delta at :meth:`AccesslogReader.start_mark`, taken
before its anchor scan (see :mod:`connectors.ldap.source`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

import ldap3

from connectors.base import Change, ConnectorError, ObjectError, Page, WatermarkExpired
from connectors.ldap._common import (
    FETCH_BATCH,
    Channel,
    Entry,
    first_value,
    format_time,
    values_of,
)
from connectors.ldap._entries import EntryConverter, ReadState, normal_dn
from connectors.ldap._log_window import LogMark
from connectors.ldap.config import LdapObjectType
from connectors.ldap.syntax import escape_filter_value

_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the largest GeneralizedTime
_WRITES = "(|(reqType=add)(reqType=modify)(reqType=modrdn)(reqType=delete))"
_LOG_ATTRIBUTES = (
    "reqStart", "reqEnd", "reqType", "reqDN", "reqEntryUUID", "reqNewRDN", "reqNewSuperior"
)  # fmt: skip
_ACCESSLOG_HELP = (
    "enable the accesslog overlay on the directory's database (olcAccessLogOps: writes, "
    "olcAccessLogSuccess: TRUE, olcAccessLogOld: (objectClass=*)), index the log "
    "(olcDbIndex: reqStart,reqEnd eq) and give the bind DN read access on the accesslog "
    "database (olcAccess: to * by dn.exact=<bind DN> read)"
)


class _Stamp(NamedTuple):
    start: str
    end: str


class _LogRecord(NamedTuple):
    start: str  # raw reqStart: the record's RDN, so its identity
    end: str  # raw reqEnd ("" if the record has none)
    kind: str
    dn: str
    entry_uuid: str | None
    new_dn: str | None

    @property
    def key(self) -> str:
        return self.entry_uuid or normal_dn(self.dn)


class AccesslogReader:
    """Reads the accesslog under ``base`` on ``channel`` (the source's read connection) and
    turns its records into changes of the entries as they are now."""

    def __init__(
        self,
        channel: Channel,
        entries: EntryConverter,
        *,
        base: str,
        bind_dn: str | None,
        where: str = "",
        timestamp_hint: str = "use delta_mode='timestamp'",
        directory_base: str,
        scan_page_size: int,
        overlap: float,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,  # noqa: TID251 (guides a search only)
    ) -> None:
        self._channel = channel
        self._entries = entries
        self.base = base
        self.bind_dn = bind_dn
        #: who reads it, for messages ("source ldap://host:389")
        self.where = where.strip()
        #: how to do without an accesslog, in the words of whoever configured the source
        self.timestamp_hint = timestamp_hint
        self.directory_base = directory_base
        self.scan_page_size = scan_page_size
        #: seconds from a record's reqEnd to its visibility that the window allows for
        self.overlap = overlap
        self._monotonic = monotonic
        #: where the search for the newest record starts (it only guides the search)
        self._wall = wall
        #: type -> (mark, when a read from that mark first found nothing new), this process
        self._quiet: dict[str, tuple[str, float]] = {}

    def require(self, channel: Channel) -> None:
        """A ConnectorError that says how to fix it when the accesslog cannot be read."""
        try:
            found = channel.search(self.base, "(objectClass=*)", ["1.1"], scope=ldap3.BASE)
        except ObjectError as error:
            found, reason = [], f" ({error})"
        else:
            reason = ""
        if not found:
            who = self.bind_dn or "the anonymous user"
            where = f"{self.where}: " if self.where else ""
            raise ConnectorError(
                f"{where}the accesslog {self.base} cannot be read by {who}{reason}: the server "
                "has no accesslog overlay, or the bind DN may not read it. To read changes by "
                f"modifyTimestamp instead, {self.timestamp_hint}; to use the accesslog, "
                f"{_ACCESSLOG_HELP}"
            )

    def start_mark(self, channel: Channel) -> str:
        """Where a delta starts that follows a read of the entries made after this call: the
        newest record, and the records already visible inside its overlap window (their
        effect is in the entries read, so the delta does not bring them again)."""
        newest = self._newest_record(channel)
        if newest is None:
            return ""
        mark = LogMark(newest.start, newest.end or newest.start)
        since = mark.since(self.overlap)
        if since is None:  # a record without a readable time: read from its start
            return mark.text()
        search_filter = f"(&(objectClass=auditWriteObject){_ended_since(since)})"
        ends = {newest.start: mark.end}
        for entries in channel.pages(
            self.base, search_filter, ["reqStart", "reqEnd"], self.scan_page_size
        ):
            ends.update((r.start, r.end or r.start) for r in map(_stamp, entries) if r.start)
        done = sorted((_Stamp(s, e) for s, e in ends.items()), key=lambda r: (r.end, r.start))
        return LogMark(mark.start).after(done, ends, self.overlap).text()

    def _newest_record(self, channel: Channel) -> _Stamp | None:
        """The newest accesslog record by reqStart (None for an empty log).

        LDAP has no "last entry" query, so this searches the seconds of GeneralizedTime with
        one-entry probes on the reqStart index, then reads that second. slapd's cost for a
        ``(reqStart>=T)`` probe grows with the records after T (it gathers them all before the
        size limit applies: 0.9 s for 20,000), so the probes start at this machine's now and
        reach back a step wider each time, until one finds a record: every probe asks only
        for what is newer than the newest record found, or little more. The clock only guides
        the search: the server's stamps decide (a server ahead of it is searched upwards)."""
        self.require(channel)

        def since(second: int) -> str:
            return f"(reqStart>={format_time(datetime.fromtimestamp(second, UTC))})"

        now = min(int(self._wall()), _LAST_SECOND)
        if self._exists(channel, since(now)):
            low, high = now, _LAST_SECOND
        else:
            high, back = now, 60
            while True:
                low = max(now - back, 0)
                if self._exists(channel, since(low)):
                    break
                if low == 0:
                    return None
                high, back = low, back * 8
        while high - low > 1:
            middle = (low + high) // 2
            if self._exists(channel, since(middle)):
                low = middle
            else:
                high = middle
        search_filter = f"(&(objectClass=auditWriteObject){since(low)})"
        records = channel.search(self.base, search_filter, ["reqStart", "reqEnd"])
        return max(map(_stamp, records), default=None)

    def read(self, kind: LdapObjectType, after: str, page_size: int) -> Iterator[Page]:
        """The delta after the mark ``after``: pages of at most ``page_size`` entries."""
        self.require(self._channel)
        mark = LogMark.load(after)
        if mark.start and not self._still_logged(mark.start):
            raise WatermarkExpired(
                f"the accesslog no longer reaches back to {mark.start} (older records were "
                "purged while the engine was not reading): reading everything again"
            )
        window = self._records(kind, mark.since(self.overlap))
        records = mark.fresh(window)
        if not records:
            yield Page((), f"a:{self._quiet_mark(kind, mark).text()}")
            return
        state = ReadState()
        ends = {r.start: r.end or r.start for r in window}
        groups = list(_groups(records, page_size))
        for index, group in enumerate(groups):
            changes = self._changes(kind, group, state)
            mark = mark.after(group, ends, self.overlap)
            if changes or index == len(groups) - 1:
                yield Page(changes, f"a:{mark.text()}")

    def _quiet_mark(self, kind: LdapObjectType, mark: LogMark) -> LogMark:
        """``mark``, closed once reads from it have found nothing for longer than the overlap:
        by then whatever ended before its reqEnd is visible."""
        if mark.closed or not mark.end:
            return mark
        text, now = mark.text(), self._monotonic()
        seen, first = self._quiet.get(kind.name, ("", now))
        if seen != text:  # one entry a type: a mark that moved on is forgotten
            self._quiet[kind.name] = (text, now)
            return mark
        if now - first <= self.overlap:
            return mark
        del self._quiet[kind.name]
        return mark.close()

    def _still_logged(self, start: str) -> bool:
        """Whether the record the mark names (its ``reqStart``, which is the record's RDN) is
        still in the log. logpurge removes the oldest records first, so while it is there
        nothing after it was purged. One read of one DN: its cost does not grow with the log,
        as a ``(reqStart<=S)`` probe's does (slapd walks every older record's index key)."""
        dn = f"reqStart={start},{self.base}"  # a checked GeneralizedTime: no DN escaping needed
        found = self._channel.search(
            dn, "(objectClass=auditWriteObject)", ["1.1"], scope=ldap3.BASE
        )
        return bool(found)

    def _exists(self, channel: Channel, assertion: str) -> bool:
        search_filter = f"(&(objectClass=auditWriteObject){assertion})"
        return bool(channel.search(self.base, search_filter, ["1.1"], size_limit=1))

    def _records(self, kind: LdapObjectType, since: str | None) -> list[_LogRecord]:
        """Successful writes under the type's base that ended at or after ``since``."""
        base = escape_filter_value(kind.base_dn)
        where = f"(|(reqDN:dnSubtreeMatch:={base})(reqNewSuperior:dnSubtreeMatch:={base}))"
        ended = _ended_since(since) if since else ""
        search_filter = f"(&(objectClass=auditWriteObject)(reqResult=0){ended}{_WRITES}{where})"
        records: list[_LogRecord] = []
        for entries in self._channel.pages(
            self.base, search_filter, _LOG_ATTRIBUTES, self.scan_page_size
        ):
            records += (r for r in map(_log_record, entries) if r is not None)
        return records

    def _changes(
        self, kind: LdapObjectType, group: list[_LogRecord], state: ReadState
    ) -> list[Change]:
        """One change per entry of the group, from its last record and its current state."""
        latest: dict[str, _LogRecord] = {}
        for record in group:
            latest.pop(record.key, None)
            latest[record.key] = record
            if record.kind in ("delete", "modrdn"):
                self._entries.dns.forget(record.dn)
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
        self, kind: LdapObjectType, records: list[_LogRecord], state: ReadState
    ) -> dict[str, Change]:
        """Record key -> upsert for the entries that still exist and match the type."""
        by_uuid = [r.entry_uuid for r in records if r.entry_uuid]
        entries: list[Entry] = []
        for index in range(0, len(by_uuid), FETCH_BATCH):
            terms = "".join(
                f"(entryUUID={escape_filter_value(u)})"
                for u in by_uuid[index : index + FETCH_BATCH]
            )
            search_filter = f"(&{kind.filter}(|{terms}))"
            entries += self._channel.search(
                kind.base_dn, search_filter, self._entries.attributes(kind, "entryUUID")
            )
        for record in records:
            if not record.entry_uuid:
                entries += self._by_dn(kind, record.new_dn or record.dn)
        found: dict[str, Change] = {}
        for entry in entries:
            key = first_value(entry["raw_attributes"], "entryUUID") or normal_dn(entry["dn"])
            change = self._entries.changes(kind, [entry], self._channel, state)
            if change:
                found[key] = change[0]
        return found

    def _by_dn(self, kind: LdapObjectType, dn: str) -> list[Entry]:
        name, base = normal_dn(dn), normal_dn(kind.base_dn)
        if name != base and not name.endswith("\x00" + base):
            return []
        try:
            return self._channel.search(
                dn, kind.filter, self._entries.attributes(kind), scope=ldap3.BASE
            )
        except ObjectError:
            return []

    def _gone_anchor(self, record: _LogRecord) -> str | None:
        """The anchor of an entry that was deleted or left the type, if it can be known."""
        if self._entries.anchor_low == "entryuuid" and record.entry_uuid:
            return record.entry_uuid
        if record.kind == "delete":
            return self._anchor_from_old(record)
        if record.entry_uuid:  # another anchor attribute: read it where the entry is now
            entries = self._channel.search(
                self.directory_base,
                f"(entryUUID={escape_filter_value(record.entry_uuid)})",
                [self._entries.anchor],
            )
            anchor_of = self._entries.anchor_of
            return next((a for e in entries if (a := anchor_of(e["raw_attributes"]))), None)
        return self._entries.dns.get(record.new_dn or record.dn)

    def _anchor_from_old(self, record: _LogRecord) -> str | None:
        """The anchor attribute's value in a delete record's reqOld (the deleted entry)."""
        search_filter = (
            f"(&(objectClass=auditWriteObject)(reqStart={escape_filter_value(record.start)}))"
        )
        found = self._channel.search(self.base, search_filter, ["reqOld"])
        prefix = self._entries.anchor_low + ":"
        for entry in found:
            for line in values_of(entry["raw_attributes"], "reqOld"):
                text: str = line.decode("utf-8", "replace")
                if text.lower().startswith(prefix):
                    return text[len(prefix) :].strip()
        return None


def _ended_since(since: str) -> str:
    """Records that ended at or after ``since``, by the reqEnd index alone. A second term
    ``(reqStart>=since - 1 day)``, once meant to bound the scan of a log without that index,
    made slapd walk every reqStart key of the last day on each read: 0.9 s of slapd CPU for an
    idle read of a log of 20,000 writes a day, 0.2 ms without it (bench/bench_delta_cost.py).
    The log must index reqEnd (README, "Accesslog mode on your own OpenLDAP")."""
    return f"(reqEnd>={escape_filter_value(since)})"


def _stamp(entry: Entry) -> _Stamp:
    raw = entry["raw_attributes"]
    return _Stamp(first_value(raw, "reqStart") or "", first_value(raw, "reqEnd") or "")


def _log_record(entry: Entry) -> _LogRecord | None:
    raw = entry["raw_attributes"]
    start, kind = first_value(raw, "reqStart"), first_value(raw, "reqType")
    dn = first_value(raw, "reqDN")
    if not start or not kind or dn is None:
        return None
    new_dn = None
    if kind == "modrdn":
        new_rdn = first_value(raw, "reqNewRDN") or ""
        superior = first_value(raw, "reqNewSuperior") or dn.partition(",")[2]
        new_dn = f"{new_rdn},{superior}" if superior else new_rdn
    end = first_value(raw, "reqEnd") or ""
    return _LogRecord(start, end, kind, dn, first_value(raw, "reqEntryUUID"), new_dn)


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
