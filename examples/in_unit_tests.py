"""Using syncjob inside your own unit tests: memory store, manual clock, fault knobs, no sleeps.

Run it with pytest: ``pytest examples/in_unit_tests.py``.
"""

from __future__ import annotations

from datetime import timedelta

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine


def make() -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory, ManualClock]:
    clock = ManualClock()
    engine = SyncEngine(clock=clock)  # store=None: in memory, gone with the test
    source, target = MemoryDirectory(), MemoryDirectory()
    job = engine.create_job("memoryToMemory", source, target)
    engine.start(job.id)
    return engine, job.id, source, target, clock


def test_new_hire_is_provisioned() -> None:
    """A user added to the source appears in the target after one cycle."""
    engine, job_id, source, target, _ = make()
    source.put("User", "42", {"userName": "ada@example.org", "displayName": "Ada"})
    engine.run_cycle(job_id)
    assert [u["userName"] for u in target.list("User").values()] == ["ada@example.org"]


def test_flaky_target_is_retried_later() -> None:
    """A target that refuses an object escrows it; it flows once the target accepts it."""
    engine, job_id, source, target, clock = make()
    source.put("User", "42", {"userName": "ada@example.org"})
    target.fail_object("User", "ada@example.org", times=1)
    assert engine.run_cycle(job_id).count_escrowed == 1
    clock.advance(timedelta(minutes=1))
    assert engine.run_cycle(job_id).count_exported == 1
    assert len(target.list("User")) == 1
