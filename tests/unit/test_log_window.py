"""The accesslog window (connectors.ldap._log_window) against a simulated slapd: writes of any
length by concurrent clients, records that become visible late and out of order, reads at
any moment, resumes from any page's mark. Every record is read; none twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ldap._log_window import LogMark

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Record(NamedTuple):
    start: str
    end: str
    visible_at: float
    end_key: tuple[int, int]


def _stamp(second: int, counter: int) -> str:
    return (_EPOCH + timedelta(seconds=second)).strftime("%Y%m%d%H%M%S") + f".{counter:06d}Z"


def _key(raw: str) -> tuple[int, int]:
    moment = datetime.strptime(raw[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    counter = int(raw[15:21]) if len(raw) > 15 else -1
    return int((moment - _EPOCH).total_seconds()), counter


def log_of(operations: list[tuple[float, float, float]]) -> list[Record]:
    """(start, duration, lag) -> records stamped as slapd does: whole seconds, and a counter
    for the fraction that restarts every second."""
    events = []
    for index, (start, duration, _) in enumerate(operations):
        events += [(start, 0, index), (start + duration, 1, index)]
    counters: dict[int, itertools.count[int]] = {}
    stamps: dict[tuple[int, int], str] = {}
    for moment, which, index in sorted(events):
        second = int(moment)
        counter = counters.setdefault(second, itertools.count())
        stamps[(index, which)] = _stamp(second, next(counter))
    return [
        Record(stamps[(i, 0)], stamps[(i, 1)], start + duration + lag, _key(stamps[(i, 1)]))
        for i, (start, duration, lag) in enumerate(operations)
    ]


def query(log: list[Record], mark: LogMark, overlap: float, now: float) -> list[Record]:
    """What slapd answers to ``(reqEnd>=since)`` at ``now``: visible records only."""
    since = mark.since(overlap)
    if since is None:
        return [r for r in log if r.visible_at <= now]
    lowest = _key(since)
    return [r for r in log if r.visible_at <= now and r.end_key >= lowest]


operation = st.tuples(
    st.floats(0, 20), st.sampled_from([0.0, 0.0, 0.001, 0.3, 2.0, 7.5]), st.floats(0, 1.0)
)


@settings(max_examples=300, deadline=None)
@given(
    operations=st.lists(operation, min_size=1, max_size=40),
    reads=st.lists(st.floats(0, 30), min_size=1, max_size=25),
    page=st.integers(1, 5),
    overlap=st.sampled_from([1.0, 1.5, 3.0]),
    crash_after=st.integers(0, 3),
)
def test_every_record_is_read_once_whatever_the_visibility_order(
    operations: list[tuple[float, float, float]],
    reads: list[float],
    page: int,
    overlap: float,
    crash_after: int,
) -> None:
    log = log_of(operations)
    mark, read = LogMark(), []
    quiet_since: float | None = None
    times = sorted(reads) + [40.0, 42.5, 45.0, 60.0]  # the end: everything visible, then quiet
    for now in times:
        window = query(log, mark, overlap, now)
        fresh = mark.fresh(window)
        if not fresh:  # as the reader does: close the window after a quiet overlap
            quiet_since = now if quiet_since is None else quiet_since
            if not mark.closed and mark.end and now - quiet_since > overlap:
                mark, quiet_since = mark.close(), None
            continue
        quiet_since = None
        ends = {r.start: r.end for r in window}
        for number, start in enumerate(range(0, len(fresh), page)):
            group = fresh[start : start + page]
            read += [r.start for r in group]
            mark = LogMark.load(mark.after(group, ends, overlap).text())  # stored, then loaded
            if number + 1 == crash_after and now < 40:
                break  # a crash: the next read resumes from the stored mark
    assert sorted(read) == sorted(r.start for r in log)


def test_a_mark_from_before_the_window_reads_from_its_start() -> None:
    mark = LogMark.load("20260101000010.000003Z")
    assert mark.end == mark.start and not mark.seen
    assert mark.text() == "20260101000010.000003Z"
    assert mark.since(1.0) == "20260101000009Z"


def test_a_closed_mark_reads_after_its_end_exactly() -> None:
    mark = LogMark.load("20260101000010.000003Z;20260101000011.000001Z;*")
    assert mark.closed and mark.since(1.0) == "20260101000011.000001Z"
    same = Record("20260101000011.000000Z", "20260101000011.000001Z", 0, (11, 1))
    later = Record("20260101000011.000002Z", "20260101000011.000003Z", 0, (11, 3))
    assert mark.fresh([same, later]) == [later]
