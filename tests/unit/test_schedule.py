"""The engine's schedule in memory (issue #21, points 2 and 5): due jobs run earliest due
first, so none starves because of where its id sorts; an idle pass reads nothing, however
many jobs are paused; the store stays the authority (another engine's start and pause are
seen); /metrics reads every job's figures at once and says how long a due job has waited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.memory import MemoryDirectory
from engine import ManualClock, SqliteStateStore, StatusCode, SyncEngine, SystemClock
from engine.jobs._due_heap import DueHeap
from engine.jobs._scheduling import RESYNC_SECONDS
from engine.service.api import metrics_response
from engine.service.runner import Runner
from engine.store import JobRow
from tests.conftest import fill, user

WAIT = 10.0
JOBS = 1000


class CountingStore(SqliteStateStore):
    """Counts the reads of jobs a scheduling pass or a scrape could make."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="OFF")
        self.reads: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.reads[name] = self.reads.get(name, 0) + 1

    def list_jobs(self, application_id: str | None = None) -> list[JobRow]:
        self._count("list_jobs")
        return super().list_jobs(application_id)

    def get_job(self, job_id: str) -> JobRow | None:
        self._count("get_job")
        return super().get_job(job_id)

    def job_schedule(self) -> Any:
        self._count("job_schedule")
        return super().job_schedule()

    def job_statuses(self) -> Any:
        self._count("job_statuses")
        return super().job_statuses()


def samples(engine: SyncEngine, text: str | None = None) -> dict[tuple[str, str], float]:
    """(sample name, job) -> value, of the samples that name no status code."""
    text = bytes(metrics_response(engine).body).decode() if text is None else text
    return {
        (s.name, s.labels["job"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "code" not in s.labels
    }


def new_jobs(engine: SyncEngine, count: int, schedule: str) -> list[str]:
    made = []
    for _ in range(count):
        job = engine.create_job(
            "memoryToMemory", MemoryDirectory(), MemoryDirectory(), schedule=schedule
        )
        engine.start(job.id)
        made.append(job.id)
    return made


# ------------------------------------------------------------------------------ the heap
def test_the_heap_walks_earliest_due_first_and_keeps_places() -> None:
    """Earliest first; a tie to the lower rank, then to the job set first; the same time set
    again keeps a job's place; dropped and changed jobs leave no trace after compaction."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    heap = DueHeap()
    heap.set("c", t0 + timedelta(seconds=2))
    heap.set("b", t0, rank=5)
    heap.set("a", t0, rank=5)
    heap.set("z", t0, rank=1)
    heap.set("b", t0, rank=9)  # unchanged time: its place (and rank) stay
    assert ["z", "b", "a", "c"] == [job for _, job in heap.ordered()]
    heap.set("z", t0 + timedelta(seconds=1))
    heap.discard("b")
    assert ["a", "z", "c"] == [job for _, job in heap.ordered()]
    for n in range(500):
        heap.set("a", t0 + timedelta(seconds=n))
    assert len(heap._heap) <= 2 * len(heap) + 64 + 1
    assert ["z", "c", "a"] == [job for _, job in heap.ordered()]
    assert heap.due_of("a") == t0 + timedelta(seconds=499) and heap.due_of("b") is None


# ------------------------------------------------------------------------------ fairness
def test_due_jobs_take_turns_earliest_due_first(tmp_path: Path) -> None:
    """Three jobs always due, two workers: each pass runs the two that have waited longest,
    so the counts stay within one of each other. Was: due jobs went by id, the two whose
    ids sort first were due again at once, and the third never ran."""
    clock = ManualClock()
    with SyncEngine(tmp_path / "s.db", clock) as engine:
        jobs = new_jobs(engine, 3, "PT1S")
        runner = Runner(engine, workers=2)
        try:
            for _ in range(30):
                for future in runner.run_once():
                    future.result(WAIT)
                clock.advance(timedelta(seconds=1))
        finally:
            runner.stop(WAIT)
        counts = [engine.cycles_run.get(job_id, 0) for job_id in jobs]
        assert sum(counts) == 60
        assert max(counts) - min(counts) <= 1, counts


def test_three_jobs_at_a_tiny_interval_on_two_workers_run_alike(tmp_path: Path) -> None:
    """The soak's case, on real threads and time: every job is due again as soon as its
    cycle ends; over a few hundred cycles their counts stay within 10% of each other."""
    with SyncEngine(tmp_path / "s.db", SystemClock()) as engine:
        jobs = new_jobs(engine, 3, "PT0.001S")
        runner = Runner(engine, workers=2, interval=0.05)
        real = SystemClock()
        runner.start()
        try:
            deadline = real.monotonic() + WAIT
            while sum(engine.cycles_run.values()) < 300 and real.monotonic() < deadline:
                real.sleep(0.02)
        finally:
            runner.stop(WAIT)
        counts = [engine.cycles_run.get(job_id, 0) for job_id in jobs]
        assert min(counts) >= 30, counts
        assert max(counts) - min(counts) <= 0.1 * max(counts), counts


def test_the_waiting_metric_counts_seconds_due_without_a_worker(tmp_path: Path) -> None:
    """syncjob_job_waiting_seconds: how long a due job has waited for its cycle to start
    (0 while it runs, once it has run, and while it is paused)."""
    clock = ManualClock()
    with SyncEngine(tmp_path / "s.db", clock) as engine:
        source = MemoryDirectory()
        fill(source, 3)
        job = engine.create_job("memoryToMemory", source, MemoryDirectory(), schedule="PT10M")
        idle = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory())
        engine.start(job.id)
        clock.advance(timedelta(seconds=30))
        assert samples(engine)[("syncjob_job_waiting_seconds", job.id)] == 30
        assert samples(engine)[("syncjob_job_waiting_seconds", idle.id)] == 0
        during: list[float] = []
        engine.run_cycle(
            job.id,
            progress=lambda _: during.append(
                samples(engine)[("syncjob_job_waiting_seconds", job.id)]
            ),
        )
        assert during and set(during) == {0}
        assert samples(engine)[("syncjob_job_waiting_seconds", job.id)] == 0
        clock.advance(timedelta(minutes=12))
        assert samples(engine)[("syncjob_job_waiting_seconds", job.id)] == 120
        engine.pause(job.id)
        assert samples(engine)[("syncjob_job_waiting_seconds", job.id)] == 0


# ---------------------------------------------------------------- the store's authority
def test_another_engines_start_and_pause_are_followed(tmp_path: Path) -> None:
    """Two engines on one file: a job the other one pauses is not handed out (it is read
    again before it is), and one it starts is due within RESYNC_SECONDS, or at once for
    run_pending."""
    clock = ManualClock()
    with (
        SyncEngine(tmp_path / "s.db", clock) as engine,
        SyncEngine(tmp_path / "s.db", clock) as other,
    ):
        first, second = new_jobs(engine, 2, "PT1H")
        assert engine.due_jobs() == [first, second]
        for job_id in (first, second):
            other.attach(job_id, MemoryDirectory(), MemoryDirectory())
        other.pause(first)
        assert engine.due_jobs() == [second]
        other.start(first)
        assert engine.due_jobs() == [second]  # not seen yet
        clock.advance(timedelta(seconds=RESYNC_SECONDS))
        assert engine.due_jobs() == [second, first]  # earliest due first
        other.pause(second)
        other.run_cycle(first)  # its next run is an hour away now
        assert engine.due_jobs() == []
        other.start(second)
        assert [e.state for e in engine.run_pending()] != []
        assert engine.cycles_run == {second: 1}


# ------------------------------------------------------------ a thousand jobs, idle cost
@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncEngine, str]]:
    """An engine with JOBS paused jobs: one that has run a cycle (an escrow left), copied."""
    store = CountingStore(tmp_path_factory.mktemp("thousand") / "s.db")
    clock = ManualClock()
    engine = SyncEngine(store, clock)
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 3)
    job = engine.create_job("memoryToMemory", source, target)
    engine.start(job.id)
    target.fail_object("User", user(1)["userName"], times=10)
    engine.run_cycle(job.id)
    engine.pause(job.id)
    row = store.get_job(job.id)
    assert row is not None
    for n in range(JOBS - 1):  # copies of the row: what create_job checks costs ~10 ms a job
        store.save_job(attrs.evolve(row, job=attrs.evolve(row.job, id=f"{job.id}.{n:04d}")))
    yield engine, job.id
    engine.close()


def test_idle_passes_read_no_job(thousand: tuple[SyncEngine, str]) -> None:
    """With a thousand paused jobs an idle scheduling pass reads nothing from the store (it
    reloaded every job each second: half a core), and a resync compares codes and next runs
    without reading any paused job whole. A pass costs far less than 2% of a core's second."""
    engine, _ = thousand
    store = engine.store
    assert isinstance(store, CountingStore) and isinstance(engine.clock, ManualClock)
    runner = Runner(engine, workers=2)
    try:
        runner.run_once()
        assert runner.next_sleep() == runner.interval
        store.reads.clear()
        began = time.process_time()
        for _ in range(100):
            assert runner.run_once() == []
            runner.next_sleep()
        per_pass = (time.process_time() - began) / 100
        assert store.reads == {}
        assert per_pass < 0.02 * runner.interval, per_pass
        engine.clock.advance(timedelta(seconds=RESYNC_SECONDS))
        assert runner.run_once() == []
        assert store.reads == {"job_schedule": 1}
    finally:
        runner.stop(WAIT)


def test_metrics_of_a_thousand_jobs_in_one_read(thousand: tuple[SyncEngine, str]) -> None:
    """/metrics with a thousand jobs answers within a second (it took 11-16 s): statuses
    come from one query, never a job at a time (and, on a first scrape, the schedule's own
    first load, one query of codes and next runs)."""
    engine, job_id = thousand
    store = engine.store
    assert isinstance(store, CountingStore)
    store.reads.clear()
    began = time.process_time()  # CPU: what the scrape costs, whatever else the host runs
    text = bytes(metrics_response(engine).body).decode()
    took = time.process_time() - began
    assert store.reads.pop("job_schedule", 0) <= 1  # the schedule's first load, if not done
    assert store.reads == {"job_statuses": 1}
    assert took < 1.0, took
    got = samples(engine, text)
    assert len({job for _, job in got}) == JOBS
    assert got[("syncjob_job_lag_objects", job_id)] == 1  # the escrow
    assert got[("syncjob_job_last_cycle_exported", f"{job_id}.0001")] == 2
    status = engine.get_job(f"{job_id}.0001").status
    assert status is not None and status.code is StatusCode.PAUSED
