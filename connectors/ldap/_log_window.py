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
remembered (at most :data:`MAX_SEEN`: beyond that a record may come back once more, which is
harmless since a change is the entry as it is now).

Once reads have found nothing new for longer than ``overlap`` (the reader measures that with
its own monotonic clock: a duration, so no clock is compared with the server's), every record
stamped up to W is visible, and the window is closed: the next read asks for what ended after W
only, so an idle directory is not asked for the window again and again.

Pure: records in, the next mark out. The mark's text is ``S;W;id,id,...`` (``S;W;*`` when
closed) with S the newest ``reqStart`` read (the purge check: a log that no longer reaches
back to S was purged while the engine was away); a mark written before the overlap existed is
just ``S``, read as W = S (a record ends no earlier than it starts), which re-reads a little
and skips nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

import attrs

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

    @classmethod
    def load(cls, text: str) -> LogMark:
        start, _, rest = text.partition(";")
        end, _, seen = rest.partition(";")
        if seen == "*":
            return cls(start, end or start, closed=True)
        return cls(start, end or start, frozenset(filter(None, seen.split(","))))

    def text(self) -> str:
        if self.closed:
            return f"{self.start};{self.end};*"
        if not self.seen and self.end == self.start:
            return self.start  # the short form (also what a fresh delta start looks like)
        return f"{self.start};{self.end};{','.join(sorted(self.seen))}"

    def since(self, overlap: float) -> str | None:
        """The ``reqEnd`` to read from (GeneralizedTime), None for all."""
        if self.closed:
            return self.end
        moment = parse_time(self.end)
        if moment is None:
            return None
        return format_time(moment - timedelta(seconds=max(overlap, 0.0)))

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
        inside = [
            (stamp, identity)
            for identity in itertools.chain(self.seen, (r.start for r in done))
            if (stamp := ends.get(identity)) is not None and stamp[:14] >= edge
        ]
        inside.sort()
        return LogMark(start, end, frozenset(identity for _, identity in inside[-MAX_SEEN:]))


def _end_of(record: Stamped) -> str:
    return record.end or record.start


def _end_order(record: Stamped) -> tuple[str, str]:
    return (_end_of(record), record.start)
