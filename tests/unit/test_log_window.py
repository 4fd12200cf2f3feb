"""The accesslog window (connectors.ldap._log_window) against a simulated slapd: writes of any
length by concurrent clients, records that become visible late and out of order, reads at
any moment, resumes from any page's mark. Every record is read; none twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import WatermarkExpired
from connectors.ldap import _log_window as log_window
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
    fraction = raw[15:-1]  # "" for none; a filter's ".0Z" is the second's first instant
    counter = int(fraction.ljust(6, "0")) if fraction else -1
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


def replay(
    log: list[Record], reads: list[float], page: int, overlap: float, crash_after: int
) -> list[str]:
    """The records a reader gets, reading at ``reads`` as AccesslogReader does (then until
    everything is visible and quiet), its mark stored and loaded after every page, and a
    crash after page ``crash_after`` of each read (0: none)."""
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
    return read


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
    assert sorted(replay(log, reads, page, overlap, crash_after)) == sorted(r.start for r in log)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the fixture only sets a module constant, the same for every input
@given(
    operations=st.lists(
        st.tuples(st.floats(0, 3), st.sampled_from([0.0, 0.0, 0.3, 2.0]), st.just(0.0)),
        min_size=1,
        max_size=30,
    ),
    reads=st.lists(st.floats(0, 8), min_size=1, max_size=12),
    page=st.integers(1, 4),
    crash_after=st.integers(0, 2),
)
def test_a_burst_beyond_what_a_mark_remembers_is_read_once_and_goes_quiet(
    operations: list[tuple[float, float, float]],
    reads: list[float],
    page: int,
    crash_after: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More records inside the window than a mark remembers (3 here, 2,000 in use): the
    window's floor rises so the rest are neither read twice nor read again forever, and the
    window still closes. Visibility in reqEnd order, as slapd's log lock makes it."""
    monkeypatch.setattr(log_window, "MAX_SEEN", 3)
    log = log_of(operations)
    assert sorted(replay(log, reads, page, 1.0, crash_after)) == sorted(r.start for r in log)


@pytest.mark.parametrize(
    "text",
    ["20260101000010Z;garbage;*", "20260101000010Z;garbage;x", "a;b;c;d;e", "x)(objectClass=*",
     "20260101000010Z;99999999999999Z;", "20260101000010Z;;20260101000010.1Z,é"],
)  # fmt: skip
def test_a_mark_that_is_not_one_asks_for_a_full_read(text: str) -> None:
    with pytest.raises(WatermarkExpired):
        LogMark.load(text)


def test_a_mark_from_before_the_window_reads_from_its_start() -> None:
    mark = LogMark.load("20260101000010.000003Z")
    assert mark.end == mark.start and not mark.seen
    assert mark.text() == "20260101000010.000003Z"
    assert mark.since(1.0) == "20260101000009.0Z"  # a filter's time has a fraction (Samba)


def test_a_closed_mark_reads_after_its_end_exactly() -> None:
    mark = LogMark.load("20260101000010.000003Z;20260101000011.000001Z;*")
    assert mark.closed and mark.since(1.0) == "20260101000011.000001Z"
    same = Record("20260101000011.000000Z", "20260101000011.000001Z", 0, (11, 1))
    later = Record("20260101000011.000002Z", "20260101000011.000003Z", 0, (11, 3))
    assert mark.fresh([same, later]) == [later]
