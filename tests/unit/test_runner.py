"""engine.service.runner.Runner: one scheduling pass at a time (run_once), bounded workers, one
cycle per job, and a shutdown that ends running cycles at their next checkpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.base import Page
from connectors.memory import MemoryDirectory
from engine import ManualClock, StatusCode, SyncEngine, SystemClock
from engine.service.runner import Runner
from tests.conftest import fill

WAIT = 10.0  # seconds a test waits for a worker thread before it fails


class GatedSource:
    """A memory source whose second page waits until ``release`` is set (after ``entered``)."""

    def __init__(self, inner: MemoryDirectory) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.entered = threading.Event()
        self.release = threading.Event()

    def object_types(self) -> Sequence[str]:
        return self.inner.object_types()

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        for n, page in enumerate(self.inner.read(object_type, watermark, page_size)):
            if n == 1:
                self.entered.set()
                assert self.release.wait(WAIT), "the test never released the source"
            yield page

    def get(self, object_type: str, anchor: str) -> dict[str, object] | None:
        return self.inner.get(object_type, anchor)  # type: ignore[return-value]

    def validate(self) -> None:
        self.inner.validate()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SyncEngine]:
    with SyncEngine(tmp_path / "s.db", ManualClock()) as made:
        yield made


def new_job(engine: SyncEngine, users: int = 3) -> tuple[str, GatedSource, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, users)
    gated = GatedSource(source)
    job = engine.create_job("memoryToMemory", schedule="PT10M", settings={"PageSize": "1"})
    assert job.id is not None
    engine.attach(job.id, gated, target)
    engine.start(job.id)
    return job.id, gated, target


def finish(futures: Sequence[object]) -> None:
    for future in futures:
        future.result(WAIT)  # type: ignore[attr-defined]


def test_runs_due_jobs_then_waits_for_the_schedule(engine: SyncEngine) -> None:
    job_id, gated, target = new_job(engine)
    gated.release.set()
    runner = Runner(engine, workers=2)
    try:
        finish(runner.run_once())
        assert len(target.list("User")) == 3
        assert runner.run_once() == []  # not due again before PT10M
        assert isinstance(engine.clock, ManualClock)
        engine.clock.advance(timedelta(minutes=10))
        finish(runner.run_once())
        status = engine.get_job(job_id).status
        assert status is not None and status.code is StatusCode.ACTIVE
        assert runner.running == frozenset()
    finally:
        runner.stop(WAIT)


def test_bounded_workers_and_one_cycle_per_job(engine: SyncEngine) -> None:
    jobs = [new_job(engine) for _ in range(3)]
    runner = Runner(engine, workers=2)
    try:
        first = runner.run_once()
        assert len(first) == 2  # two workers: the third job waits, still due
        running = runner.running
        assert len(running) == 2
        for job_id, gated, _ in jobs:
            if job_id in running:
                assert gated.entered.wait(WAIT)
        assert runner.run_once() == []  # both workers busy, and no job twice
        for _, gated, _ in jobs:
            gated.release.set()
        finish(first)
        finish(runner.run_once())  # the third job now
        assert runner.running == frozenset()
        assert all(len(target.list("User")) == 3 for _, _, target in jobs)
    finally:
        for _, gated, _ in jobs:
            gated.release.set()
        runner.stop(WAIT)


def test_stop_ends_a_running_cycle_at_its_next_checkpoint(engine: SyncEngine) -> None:
    job_id, gated, target = new_job(engine, users=5)
    runner = Runner(engine, workers=1)
    futures = runner.run_once()
    assert gated.entered.wait(WAIT)  # the cycle is between pages
    runner.request_stop()
    gated.release.set()
    runner.join(WAIT)
    assert all(f.done() for f in futures)
    assert runner.run_once() == []  # a stopped runner submits nothing
    assert 0 < len(target.list("User")) < 5  # stopped at a checkpoint, not at the end
    status = engine.get_job(job_id).status
    assert status is not None and status.code is StatusCode.ACTIVE  # still started...
    assert engine.due_jobs() == [job_id]  # ...and due at once: the next start resumes it
    engine.run_pending()
    assert len(target.list("User")) == 5


def test_background_thread_runs_and_stops(engine: SyncEngine) -> None:
    _, gated, target = new_job(engine)
    gated.release.set()
    runner = Runner(engine, workers=1, interval=0.01)
    runner.start()
    with pytest.raises(RuntimeError):
        runner.start()
    real = SystemClock()
    deadline = real.monotonic() + WAIT
    while len(target.list("User")) < 3 and real.monotonic() < deadline:
        real.sleep(0.01)
    runner.stop(WAIT)
    assert len(target.list("User")) == 3


def test_refuses_bad_arguments(engine: SyncEngine) -> None:
    with pytest.raises(ValueError):
        Runner(engine, workers=0)
    with pytest.raises(ValueError):
        Runner(engine, interval=0)


def test_sleeps_until_the_next_job_falls_due(engine: SyncEngine) -> None:
    """The loop sleeps until the next job not running here is due (at most ``interval``),
    so a short schedule is not rounded up to the scheduling pass."""
    assert isinstance(engine.clock, ManualClock)
    runner = Runner(engine, workers=2, interval=5.0)
    try:
        assert runner.next_sleep() == 5.0  # nothing scheduled
        job_id, gated, _ = new_job(engine)
        gated.release.set()
        assert engine.seconds_until_due() == 0.0
        finish(runner.run_once())
        assert engine.seconds_until_due() == 600.0  # PT10M after the cycle ended
        assert runner.next_sleep() == 5.0
        engine.clock.advance(timedelta(seconds=598))
        assert runner.next_sleep() == pytest.approx(2.0)
        engine.clock.advance(timedelta(seconds=3))
        assert runner.next_sleep() == 0.005  # due: look again almost at once
        assert engine.seconds_until_due(running={job_id}) is None
    finally:
        runner.stop(WAIT)


def test_a_start_wakes_the_runner(engine: SyncEngine) -> None:
    runner = Runner(engine, workers=1, interval=60.0)
    woken: list[bool] = []
    engine.due_listeners.append(lambda: woken.append(True))
    new_job(engine)
    assert woken == [True]
    runner.start()
    assert runner._wake.set in engine.due_listeners
    runner.stop(WAIT)
    assert runner._wake.set not in engine.due_listeners


def test_a_job_whose_cycle_raises_rests_doubling_intervals(engine: SyncEngine) -> None:
    """A cycle that raises leaves the job due; the runner tries it again after ``interval``,
    then twice as long after each failure in a row, never in a loop."""
    assert isinstance(engine.clock, ManualClock)
    job = engine.create_job("memoryToMemory", schedule="PT10M")
    assert job.id is not None
    engine.attach(job.id, MemoryDirectory(), MemoryDirectory())
    engine.start(job.id)
    calls: list[str] = []

    def broken(job_id: str, **_: object) -> None:
        calls.append(job_id)
        raise RuntimeError("boom")

    engine.run_cycle = broken  # type: ignore[assignment,method-assign]
    runner = Runner(engine, workers=1, interval=2.0)
    try:
        finish(runner.run_once())
        assert calls == [job.id]
        assert runner.run_once() == []  # resting
        assert runner.next_sleep() == 2.0
        engine.clock.advance(timedelta(seconds=2))
        finish(runner.run_once())
        assert calls == [job.id, job.id]
        engine.clock.advance(timedelta(seconds=2))
        assert runner.run_once() == []  # a second failure in a row: 4 s
        engine.clock.advance(timedelta(seconds=2))
        finish(runner.run_once())
        assert calls == [job.id] * 3
    finally:
        runner.stop(WAIT)
