"""The audit API's paging over log batches: the same pages as sorting everything, while
reading no further into the log than a page needs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.service.api._audit import Batches, page, record_id
from engine.store.base import LogRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(job: str, n: int, second: int, action: str = "Create") -> LogRecord:
    return LogRecord(
        job, "c1", f"c1.{n}", T0 + timedelta(seconds=second), action, "success", "m", f"a{n}", None
    )


def as_batches(
    records: list[LogRecord], sizes: list[int]
) -> list[tuple[datetime, list[LogRecord]]]:
    """Records cut into batches, each bounded by its newest record, newest batch first
    (what a store gives: batch bounds descend, records inside are in any order)."""
    batches, start = [], 0
    for size in sizes:
        chunk = records[start : start + size]
        start += size
        if chunk:
            batches.append((max(r.time for r in chunk), chunk))
    if start < len(records):
        rest = records[start:]
        batches.append((max(r.time for r in rest), rest))
    return sorted(batches, key=lambda b: b[0], reverse=True)


def naive(records: list[LogRecord], top: int, after: tuple[datetime, str] | None, wanted: str):
    chosen = sorted(
        (r for r in records if r.action == wanted),
        key=lambda r: (r.time, record_id(r)),
        reverse=True,
    )
    if after is not None:
        chosen = [r for r in chosen if (r.time, record_id(r)) < after]
    return (chosen[:top], chosen[top - 1]) if len(chosen) > top else (chosen, None)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    jobs=st.integers(1, 3),
    top=st.integers(1, 6),
)
def test_pages_equal_a_full_sort(data: st.DataObject, jobs: int, top: int) -> None:
    logs: list[list[tuple[datetime, list[LogRecord]]]] = []
    everything: list[LogRecord] = []
    for j in range(jobs):
        seconds = data.draw(st.lists(st.integers(0, 8), max_size=25), label=f"times{j}")
        actions = data.draw(
            st.lists(
                st.sampled_from(["Create", "Update"]), min_size=len(seconds), max_size=len(seconds)
            )
        )
        records = [record(f"j{j}", n, s, a) for n, (s, a) in enumerate(zip(seconds, actions))]
        records.sort(key=lambda r: r.time)  # a log is written in time order, batch by batch
        sizes = data.draw(st.lists(st.integers(1, 4), max_size=10), label=f"sizes{j}")
        logs.append(as_batches(records, sizes))
        everything += records
    after = None
    for _ in range(30):  # walk every page, as a client following nextLink does
        wanted = naive(everything, top, after, "Create")
        got = page(logs, [lambda r: r.action == "Create"], top, after)
        assert got == wanted
        if got[1] is None:
            break
        after = (got[1].time, record_id(got[1]))


def test_the_first_page_reads_only_the_newest_batches() -> None:
    read: list[int] = []

    def batches() -> Iterator[tuple[datetime, list[LogRecord]]]:
        for b in range(1000, 0, -1):
            read.append(b)
            yield T0 + timedelta(seconds=b), [record("j", b * 10 + k, b) for k in range(10)]

    logs: list[Batches] = [batches()]
    chosen, last = page(logs, [], 25, None)
    assert len(chosen) == 25 and last is chosen[-1]
    assert len(read) == 4  # three batches hold the page and one more, the fourth bounds them
