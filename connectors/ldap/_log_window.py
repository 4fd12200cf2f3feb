"""Where an accesslog delta starts reading, so that a record made visible late is still read.

slapd stamps a record's ``reqStart`` when the operation starts and its ``reqEnd`` when it
ends, and the record becomes visible only after that, when it is written to the log. So a
slow write (a replace of 20,000 members) that started before other clients' quick writes
is logged with a ``reqStart`` "in the past": a reader that asks for ``reqStart`` after the
newest one it read never sees it.

``reqEnd`` has no such gap: slapd (2.4 to 2.6) stamps it and writes the record while holding
the log's lock, so for writes the order of ``reqEnd`` is the order of visibility. The reader
asks for ``reqEnd >= W - overlap``, W being the newest ``reqEnd`` it read: whatever was not
visible at a read ends no earlier than W, however long its operation ran. ``overlap`` (one
second by default, taken in whole seconds: slapd's stamps are seconds with a counter for a
fraction) is slack for a clock stepped back and for servers that stamp outside the lock.

Records that come back inside the window are recognized by their identity (``reqStart``, the
record's RDN) and not returned twice; only the ones within the window of the new W are
remembered, at most :data:`MAX_SEEN`: when a burst puts more inside it, the window's start is
raised to the oldest one remembered (``floor``), so the others are not read again; a record
that ends behind the floor and becomes visible late is then missed, which slapd's lock rules
out (see above).

Once reads have found nothing new for longer than ``overlap`` (the reader measures that with
its own monotonic clock: a duration, so no clock is compared with the server's), every record
stamped up to W is visible, and the window is closed: the next read asks for what ended after W
only, so an idle directory is not asked for the window again and again. When new records
come, the window opens again no further back than W (its floor), since all before was read.

Pure: records in, the next mark out. The mark's text is ``S;W;id,id,...`` (``S;W;*`` when
closed) with S the newest ``reqStart`` read (the purge check: a log that no longer reaches
back to S was purged while the engine was away); a mark written before the overlap existed is
just ``S``, read as W = S (a record ends no earlier than it starts), which re-reads a little
and skips nothing. A floor follows as a fourth part. A text that is none of these (a
corrupted store) raises WatermarkExpired: the engine reads everything again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

import attrs

from connectors.base import WatermarkExpired
from connectors.ldap._common import format_time, parse_time

R = TypeVar("R", bound="Stamped")

#: record identities remembered in a mark (about 22 bytes each): a busy second's worth
MAX_SEEN = 2000


class Stamped(Protocol):
    """What the window needs of a record: its identity (raw reqStart) and its raw reqEnd."""

    @property
    def start(self) -> str: ...

    @property
    def end(self) -> str: ...


@attrs.frozen
class LogMark:
    """Where an accesslog delta stands: the newest ``reqStart`` and ``reqEnd`` read, and the
    records read inside the overlap window behind that ``reqEnd``."""

    start: str = ""  # raw reqStart; "" before anything was read
    end: str = ""  # raw reqEnd
    seen: frozenset[str] = frozenset()
    closed: bool = False  # nothing is in flight behind ``end`` any more
    #: a raw reqEnd the window does not reach behind: set when more than MAX_SEEN records
    #: ended inside it (a burst), so that those not remembered are not read again and again
    floor: str = ""

    @classmethod
    def load(cls, text: str) -> LogMark:
        """The mark of a watermark's text; WatermarkExpired (a reconciling full read) when it
        is not one: a mark that cannot be trusted must not make deltas skip anything."""
        start, end, seen, floor = [*text.split(";"), "", "", ""][:4]
        stamps = [start, end, floor, *(() if seen == "*" else filter(None, seen.split(",")))]
        if text.count(";") > 3 or not all(_valid(s) for s in stamps):
            raise WatermarkExpired(f"not an accesslog watermark: {text[:60]!r}")
        if seen == "*":
            return cls(start, end or start, closed=True)
        return cls(start, end or start, frozenset(filter(None, seen.split(","))), floor=floor)

    def text(self) -> str:
        if self.closed:
            return f"{self.start};{self.end};*"
        if not self.seen and self.end == self.start and not self.floor:
            return self.start  # the short form (also what a fresh delta start looks like)
        text = f"{self.start};{self.end};{','.join(sorted(self.seen))}"
        return f"{text};{self.floor}" if self.floor else text

    def since(self, overlap: float) -> str | None:
        """The ``reqEnd`` to read from (GeneralizedTime), None for all."""
        if self.closed:
            return self.end
        moment = parse_time(self.end)
        if moment is None:
            return None
        try:
            edge = format_time(moment - timedelta(seconds=min(max(overlap, 0.0), _DAY)))
        except OverflowError:  # a mark near year 1: everything is after it
            return None
        return self.floor if self.floor and self.floor[:14] >= edge[:14] else edge

    def fresh(self, records: Iterable[R]) -> list[R]:
        """The records not read before, in the order to process them (by reqEnd: the order in
        which slapd ended the operations, which for one entry is the order they applied)."""
        seen, end = self.seen, self.end
        if self.closed:
            return sorted((r for r in records if _end_of(r) > end), key=_end_order)
        return sorted((r for r in records if r.start not in seen), key=_end_order)

    def close(self) -> LogMark:
        """The mark once the window behind it has nothing left in flight."""
        return LogMark(self.start, self.end, closed=True)

    def after(self, done: Sequence[Stamped], ends: Mapping[str, str], overlap: float) -> LogMark:
        """The mark once ``done`` (the next fresh records, in order) are handled. ``ends`` has
        the reqEnd of every record the read returned, so the records to remember (handled now
        or before, inside the new window) are known without keeping their ends in the mark."""
        if not done:
            return self
        start = max(self.start, *(r.start for r in done))
        end = max(self.end, _end_of(done[-1]))
        edge = (LogMark(start, end).since(overlap) or "")[:14]  # whole seconds, as slapd compares
        known: Iterable[str] = itertools.chain(self.seen, (r.start for r in done))
        floor = self.floor if self.floor[:14] >= edge else ""
        if self.closed:  # all that ended up to its end was read: the window opens there
            floor = max(floor, self.end)
            known = itertools.chain(known, (i for i, stamp in ends.items() if stamp == self.end))
        inside = [
            (stamp, identity)
            for identity in known
            if (stamp := ends.get(identity)) is not None and stamp[:14] >= edge
        ]
        inside = sorted(p for p in inside if p[0] >= floor) if floor else sorted(inside)
        if len(inside) > MAX_SEEN:  # the oldest go below the window, not back into it
            floor = max(floor, inside[-MAX_SEEN][0])
            inside = [(stamp, identity) for stamp, identity in inside if stamp >= floor]
        return LogMark(start, end, frozenset(identity for _, identity in inside), floor=floor)


#: a GeneralizedTime as slapd writes reqStart and reqEnd (a fraction of up to six digits)
_STAMP = re.compile(r"\d{14}(\.\d{1,6})?Z")
_DAY = 86400.0


def _valid(stamp: str) -> bool:
    return not stamp or (_STAMP.fullmatch(stamp) is not None and parse_time(stamp) is not None)


def _end_of(record: Stamped) -> str:
    return record.end or record.start


def _end_order(record: Stamped) -> tuple[str, str]:
    return (_end_of(record), record.start)
