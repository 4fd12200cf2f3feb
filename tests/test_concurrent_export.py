"""ExportConcurrency: a page's writes overlap on a pool of threads, with the same outcome as
one at a time. (The crash-at-every-point proofs run with it too: test_proofs, and the crash
property test draws it per seed.)"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from connectors.base import Delta, UnreachableError
from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine, SystemClock
from engine.model import TaskExecutionResult
from tests.conftest import fill, target_users


class SlowTarget:
    """A memory directory that answers each write after ``delay`` seconds (a round trip),
    counting how many calls were in flight at once."""

    def __init__(self, directory: MemoryDirectory, delay: float = 0.002) -> None:
        self.directory = directory
        self.capabilities = directory.capabilities
        self.delay = delay
        self.in_flight = self.most = 0
        self.fail_after: int | None = None
        self.calls = 0
        self._lock = threading.Lock()

    def _slow(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.in_flight += 1
            self.calls += 1
            self.most = max(self.most, self.in_flight)
            failing = self.fail_after is not None and self.calls > self.fail_after
        try:
            SystemClock().sleep(self.delay)
            if failing:
                raise UnreachableError("the target went away")
            return method(*args, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1

    def find(self, *args: Any) -> Any:
        return self._slow(self.directory.find, *args)

    def create(self, *args: Any) -> Any:
        return self._slow(self.directory.create, *args)

    def update(self, object_type: str, ref: str, delta: Delta) -> Any:
        return self._slow(self.directory.update, object_type, ref, delta)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._slow(self.directory.delete, *args, **kwargs)

    def validate(self) -> None:
        self.directory.validate()


def job(
    tmp_path: Path, source: MemoryDirectory, target: Any, concurrency: int
) -> tuple[SyncEngine, str]:
    engine = SyncEngine(tmp_path / f"s{concurrency}.db", ManualClock())
    settings = {"ExportConcurrency": str(concurrency), "PageSize": "50"}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.start(job_id)
    return engine, job_id


def world() -> MemoryDirectory:
    source = MemoryDirectory()
    fill(source, 200)
    for g in range(5):
        members = [f"s{n:06d}" for n in range(g, 200, 5)]
        source.put("Group", f"g{g}", {"displayName": f"G{g}", "members": members})
    return source


def test_writes_overlap_and_the_outcome_is_the_sequential_one(tmp_path: Path) -> None:
    source = world()
    one, four = MemoryDirectory(id_prefix="t"), SlowTarget(MemoryDirectory(id_prefix="t"))
    for concurrency, target in ((1, one), (4, four)):
        engine, job_id = job(tmp_path, source, target, concurrency)
        engine.run_cycle(job_id)
        for n in range(0, 200, 7):
            source.put(
                "User", f"s{n:06d}", {**(source.get("User", f"s{n:06d}") or {}), "department": "X"}
            )
        engine.run_cycle(job_id)
        assert engine.escrows(job_id) == []
        engine.close()
        fill(source, 200)  # the same source again for the other run
    assert four.most >= 2  # the writes did overlap
    assert target_users(one) == target_users(four.directory)
    groups = [{"displayName": a["displayName"], "members": len(a["members"])}
              for a in four.directory.list("Group").values()]  # fmt: skip
    assert sorted(groups, key=str) == [{"displayName": f"G{g}", "members": 40} for g in range(5)]


def test_two_objects_matched_by_one_value_are_never_created_twice(tmp_path: Path) -> None:
    """Two source users with one userName in one page: one is created, the other finds it
    joined to the first and is escrowed, as one at a time; never two target objects."""
    source = MemoryDirectory()
    fill(source, 20)
    source.put("User", "twin", {"userName": "user3@example.org", "displayName": "Twin"})
    target = SlowTarget(MemoryDirectory(id_prefix="t"))
    engine, job_id = job(tmp_path, source, target, 4)
    engine.run_cycle(job_id)
    names = [a["userName"] for a in target.directory.list("User").values()]
    assert len(names) == len(set(names)) == 20
    assert [e.anchor for e in engine.escrows(job_id)] in (["twin"], ["s000003"])


def test_a_target_that_goes_away_stops_every_worker_and_fails_the_cycle(tmp_path: Path) -> None:
    source = MemoryDirectory()
    fill(source, 100)
    target = SlowTarget(MemoryDirectory(id_prefix="t"))
    target.fail_after = 30
    engine, job_id = job(tmp_path, source, target, 4)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.FAILED
    assert engine.escrows(job_id) == []
    target.fail_after = None
    engine.run_cycle(job_id)
    assert len(target.directory.list("User")) == 100 and engine.escrows(job_id) == []
