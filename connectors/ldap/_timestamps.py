"""Deltas of an LDAP source from modifyTimestamp (``delta_mode="timestamp"``, any server).

``(&(filter)(modifyTimestamp>=W - overlap))`` with W the newest modifyTimestamp seen
(server values only, never the local clock); entries in the overlap repeat, which is
harmless. Deletes leave no timestamp, so once per ``delete_scan_interval`` (measured in
server time: the root DSE's ``currentTime`` where the server has one, else the newest
modifyTimestamp seen) a delta raises ``WatermarkExpired("delete scan due ...")``; the
engine then reads everything and deprovisions what it did not see, which is exactly a
delete scan. On a server without ``currentTime`` the clock only moves with writes, so a
scan falls due at the first delta after a write made past the interval.

The watermark is ``t:<newest modifyTimestamp>:<server time of the last full read>``; a full
read makes its start with :meth:`TimestampReader.start` from the newest modifyTimestamp its
anchor scan saw (see :mod:`connectors.ldap.source`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import ldap3

from connectors.base import Change, ObjectError, Page, WatermarkExpired
from connectors.ldap._common import TIME, Channel, first_value, format_time, parse_time, stamp
from connectors.ldap._entries import EntryConverter, ReadState
from connectors.ldap.config import LdapObjectType


class TimestampReader:
    """Reads entries changed since a modifyTimestamp on ``channel`` (the source's read
    connection) and says when a delete scan is due."""

    def __init__(
        self,
        channel: Channel,
        entries: EntryConverter,
        *,
        lookup: Channel,
        overlap: float,
        delete_scan_interval: float,
    ) -> None:
        self._channel = channel
        #: where member DNs are looked up (and the cache refilled) while the paged search is
        #: open on ``channel``: slapd drops a connection's paged-results cookie as soon as
        #: that connection runs another search
        self._lookup = lookup
        self._entries = entries
        self.overlap = overlap
        self.delete_scan_interval = delete_scan_interval

    def start(self, newest: str | None) -> str:
        """The watermark a full read ends with, from the newest modifyTimestamp it saw."""
        now = max(filter(None, (newest, self._server_time())), default="")
        return f"t:{newest or now}:{now}"

    def read(
        self, kind: LdapObjectType, newest: str, scanned: str, page_size: int
    ) -> Iterator[Page]:
        """The entries changed since ``newest`` (less the overlap), unless a scan is due."""
        now = max(filter(None, (newest, self._server_time())), default="")
        self._check_scan_due(scanned, now)
        moment = parse_time(newest)
        search_filter = kind.filter
        if moment is not None:
            since = format_time(moment - timedelta(seconds=self.overlap))
            search_filter = f"(&{kind.filter}(modifyTimestamp>={since}))"
        state = ReadState()
        pending: list[Change] = []
        for entries in self._channel.pages(
            kind.base_dn, search_filter, self._entries.attributes(kind), page_size
        ):
            for entry in entries:
                newest = max(newest, stamp(entry["raw_attributes"]))
            if pending:
                yield Page(pending, f"t:{moment.strftime(TIME) if moment else ''}:{scanned}")
            pending = self._entries.changes(kind, entries, self._lookup, state)
        yield Page(pending, f"t:{newest}:{scanned}")

    def _server_time(self) -> str | None:
        """The root DSE's currentTime (AD has it; OpenLDAP does not), as YYYYmmddHHMMSS."""
        try:
            root = self._channel.search("", "(objectClass=*)", ["currentTime"], scope=ldap3.BASE)
        except ObjectError:
            return None
        found = first_value(root[0]["raw_attributes"], "currentTime") if root else None
        moment = parse_time(found)
        return moment.strftime(TIME) if moment else None

    def _check_scan_due(self, scanned: str, now: str) -> None:
        last, current = parse_time(scanned), parse_time(now)
        if last is None or current is None:
            return
        if (current - last).total_seconds() >= self.delete_scan_interval:
            raise WatermarkExpired(
                f"delete scan due: the last full read was at {scanned}Z (server time) and "
                f"deletes cannot be seen by timestamps; reading everything to find them"
            )
