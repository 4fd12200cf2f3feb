"""Deltas of an LDAP source from modifyTimestamp (``delta_mode="timestamp"``, any server).

``(&(filter)(modifyTimestamp>=W - overlap))`` with W the newest modifyTimestamp seen
(server values only, never the local clock); entries in the overlap repeat, which is
harmless. Deletes leave no timestamp, so once per ``delete_scan_interval`` (measured in
server time: the root DSE's ``currentTime`` where the server has one, else the newest
modifyTimestamp seen) a delta raises ``WatermarkExpired("delete scan due ...")``; the
engine then reads everything and deprovisions what it did not see, which is exactly a
delete scan. On a server without ``currentTime`` the clock only moves with writes, so a
scan falls due at the first delta after a write made past the interval.

A modifyTimestamp is the time a write started; a write still running when a delta reads (a
large member replace, or one queued behind it: mdb has one writer at a time) becomes visible
later with an older stamp, and is read only if the overlap reaches back to it. The reader
cannot see a write's end, so it learns from what it can see: an entry found inside the
overlap with an older stamp than the last read's newest, that the last read did not return
with that stamp, became visible that much later; the window then keeps twice the longest
such lateness in view (``reach``, kept in the watermark and by this reader). A write slower
than the overlap before any such sign is still missed until the entry changes again or the
next delete scan; the accesslog mode has no such gap.

The watermark is ``t:<newest modifyTimestamp>:<server time of the last full read>``, followed
by ``:<JSON>`` once a delta has read something: the reach and the [anchor, stamp] pairs it
read inside the window (at most :data:`_MAX_EDGE`). A full read makes its start with
:meth:`TimestampReader.start` from the newest modifyTimestamp its anchor scan saw (see
:mod:`connectors.ldap.source`).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from datetime import timedelta

from connectors.base import Change, Page, WatermarkExpired
from connectors.ldap._common import (
    TIME,
    Channel,
    format_time,
    parse_time,
    scan_overdue,
    server_time,
    stamp,
)
from connectors.ldap._entries import EntryConverter, ReadState
from connectors.ldap.config import LdapObjectType

_MAX_EDGE = 200  # [anchor, stamp] pairs a watermark remembers
_MAX_REACH = 86400.0  # seconds: no write is waited for longer than a day


class _Edge:
    """What a delta watermark knows beyond its times: how far back the window reaches, and
    what the read saw inside it (``measured``: all of it, so a newcomer there came late)."""

    def __init__(self, text: str) -> None:
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        reach = data.get("reach", 0.0)
        valid = isinstance(reach, int | float) and math.isfinite(reach) and reach >= 0
        self.reach = min(float(reach), _MAX_REACH) if valid else 0.0
        pairs = data.get("seen", [])
        pairs = pairs if isinstance(pairs, list) else []
        self.seen: set[tuple[str, str]] = {
            (p[0], p[1])
            for p in pairs
            if isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p)
        }
        # a watermark that was tampered with measures nothing (and widens nothing)
        self.measured = data.get("measured") is True and len(self.seen) == len(pairs)

    @staticmethod
    def dump(reach: float, seen: list[tuple[str, str]] | None) -> str:
        if seen is None:
            return f":{json.dumps({'reach': reach})}" if reach else ""
        pairs = sorted(set(seen))
        body = {"reach": reach, "seen": pairs[-_MAX_EDGE:], "measured": len(pairs) <= _MAX_EDGE}
        return ":" + json.dumps(body, separators=(",", ":"))


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
        #: the widest reach a delta of each type learned in this process (a full read's
        #: watermark starts without one)
        self._reach: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, newest: str | None) -> str:
        """The watermark a full read ends with, from the newest modifyTimestamp it saw."""
        now = max(filter(None, (newest, self._server_time())), default="")
        return f"t:{newest or now}:{now}"

    def read(self, kind: LdapObjectType, mark: str, page_size: int) -> Iterator[Page]:
        """The entries changed since the watermark's newest stamp (less the overlap, widened
        by what was learned of late writes), unless a delete scan is due."""
        newest, _, rest = mark.partition(":")
        scanned, _, extra = rest.partition(":")
        edge = _Edge(extra)
        now = max(filter(None, (newest, self._server_time())), default="")
        self._check_scan_due(scanned, now)
        with self._lock:
            reach = max(edge.reach, self._reach.get(kind.name, 0.0))
        overlap = max(self.overlap, reach)
        known = max(self.overlap, edge.reach)  # where the last read's pairs are complete
        previous, moment = newest, parse_time(newest)
        search_filter = kind.filter
        if moment is not None:
            since = format_time(moment - timedelta(seconds=overlap))
            search_filter = f"(&{kind.filter}(modifyTimestamp>={since}))"
        state = ReadState()
        pending: list[Change] = []
        read: list[tuple[str, str]] = []
        late = 0.0
        anchor_of = self._entries.anchor_of
        for entries in self._channel.pages(
            kind.base_dn, search_filter, self._entries.attributes(kind), page_size
        ):
            for entry in entries:
                raw = entry["raw_attributes"]
                stamped, anchor = stamp(raw), anchor_of(raw)
                newest = max(newest, stamped)
                if anchor is not None and stamped:
                    read.append((anchor, stamped))
                    if edge.measured and (anchor, stamped) not in edge.seen:
                        late = max(late, _lateness(stamped, previous, known))
            if pending:
                held = f"t:{moment.strftime(TIME) if moment else ''}:{scanned}"
                yield Page(pending, held + _Edge.dump(reach, None))
            pending = self._entries.changes(kind, entries, self._lookup, state)
        if late:  # a write became visible this long after its stamp: keep twice that in view
            reach = min(max(reach, 2 * late), _MAX_REACH)
            with self._lock:
                self._reach[kind.name] = max(self._reach.get(kind.name, 0.0), reach)
        window = parse_time(newest)
        seen: list[tuple[str, str]] = []
        if window is not None:
            edge_start = (window - timedelta(seconds=max(self.overlap, reach))).strftime(TIME)
            seen = [p for p in [*edge.seen, *read] if p[1] >= edge_start]
        yield Page(pending, f"t:{newest}:{scanned}" + _Edge.dump(reach, seen))

    def _server_time(self) -> str | None:
        return server_time(self._channel)

    def _check_scan_due(self, scanned: str, now: str) -> None:
        if scan_overdue(scanned, now, self.delete_scan_interval):
            raise WatermarkExpired(
                f"delete scan due: the last full read was at {scanned}Z (server time) and "
                f"deletes cannot be seen by timestamps; reading everything to find them"
            )


def _lateness(stamped: str, previous: str, known: float) -> float:
    """Seconds by which an entry the last read did not return is stamped behind that read's
    newest stamp, when it lies where that read saw everything (0 otherwise)."""
    when, edge = parse_time(stamped), parse_time(previous)
    if when is None or edge is None or not when < edge:
        return 0.0
    behind = (edge - when).total_seconds()
    return behind if behind < known else 0.0
