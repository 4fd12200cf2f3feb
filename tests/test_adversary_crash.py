"""Crash at every commit and write of a cycle that changes a large group (value deltas,
member rows in the store) while one member is renamed in the target (its ref moves)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine
from engine.store.base import Checkpoint
from engine.store.sqlite import SqliteStateStore
from tests.test_value_deltas import RenamingDirectory


class Crash(BaseException):
    pass


class CrashingStore(SqliteStateStore):
    crash_at: tuple[int, str] | None = None
    commits = 0

    def commit(self, job_id: str, checkpoint: Checkpoint) -> None:
        self.commits += 1
        if self.crash_at == (self.commits, "before"):
            raise Crash
        super().commit(job_id, checkpoint)
        if self.crash_at == (self.commits, "after"):
            raise Crash


POINTS = [(k, n, w) for k in ("commit", "write") for n in range(1, 13) for w in ("before", "after")]


def expected_members(source: MemoryDirectory, target: MemoryDirectory) -> list[str]:
    group = source.get("Group", "g") or {}
    names = {(source.get("User", a) or {}).get("userName") for a in group["members"]}
    return sorted(ref for ref, a in target.list("User").items() if a["userName"] in names)


@pytest.mark.parametrize("concurrency", ["1", "4"])
@pytest.mark.parametrize(("kind", "n", "when"), POINTS, ids=str)
def test_large_group_and_rename_survive_a_crash_anywhere(
    tmp_path: Path, clock: ManualClock, kind: str, n: int, when: str, concurrency: str
) -> None:
    source, target = MemoryDirectory(), RenamingDirectory()
    for u in range(70):
        source.put("User", f"u{u:03d}", {"userName": f"u{u:03d}", "displayName": f"U{u}"})
    source.put("Group", "g", {"displayName": "G", "members": [f"u{u:03d}" for u in range(70)]})
    path = tmp_path / "s.db"
    store = CrashingStore(path)
    engine = SyncEngine(store, clock)
    settings = {"PageSize": "3", "ExportConcurrency": concurrency}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)

    for u in (70, 71):
        source.put("User", f"u{u:03d}", {"userName": f"u{u:03d}", "displayName": f"U{u}"})
    source.put("User", "u005", {"userName": "u005-renamed", "displayName": "U5"})
    source.remove("User", "u010")
    kept = [f"u{u:03d}" for u in range(2, 72) if u != 10]
    source.put("Group", "g", {"displayName": "G", "members": kept})
    store.commits = 0
    if kind == "commit":
        store.crash_at = (n, when)
    else:
        counter = itertools.count(1)

        def hook(operation: str, object_type: str, ref: str | None) -> None:
            if next(counter) == n:
                raise Crash

        if when == "before":
            target.before_write = hook
        else:
            target.after_write = hook
    try:
        engine.run_cycle(job_id)
    except Crash:
        pass
    target.before_write = target.after_write = None
    del engine, store
    revived = SyncEngine(path, clock)
    revived.attach(job_id, source, target)
    for _ in range(5):
        if revived.run_cycle(job_id).count_exports == 0:
            break
    else:
        pytest.fail("the job did not settle")
    (group,) = target.list("Group").values()
    assert sorted(group["members"]) == expected_members(source, target)
    assert len(target.list("User")) == 71 and revived.escrows(job_id) == []
    revived.close()
