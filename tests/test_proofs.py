"""The engine's promises, proven: resume after pause, crash convergence, restart, delete
threshold, escrow. (The SIGKILL version of the crash proof comes with the LDAP connector.)"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Attributes, Page
from connectors.memory import MemoryDirectory
from engine import ManualClock, QuarantineReason, SqliteStateStore, StatusCode, SyncEngine
from engine.store import Checkpoint
from tests.conftest import fill, target_users, user


class Crash(BaseException):  # noqa: N818 - stands for the process dying
    """Raised at an injected point; BaseException so no handler in the engine absorbs it."""


class RecordingSource:
    """A source wrapper that records read() watermarks and can act after page k."""

    def __init__(self, inner: MemoryDirectory) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.reads: list[str | None] = []
        self.after_page: dict[int, Any] = {}

    def object_types(self) -> Sequence[str]:
        return self.inner.object_types()

    def validate(self) -> None:
        self.inner.validate()

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        return self.inner.get(object_type, anchor)

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        if object_type == "User":
            self.reads.append(watermark)
        for n, page in enumerate(self.inner.read(object_type, watermark, page_size), start=1):
            yield page
            action = self.after_page.pop(n, None) if object_type == "User" else None
            if action is not None:
                action()


def expected_users(source: MemoryDirectory) -> dict[str, dict[str, Any]]:
    """What the target must hold: every source user mapped by the default template."""
    keys = ("userName", "displayName", "mail", "department")
    return {
        a["userName"]: {**{k: a[k] for k in keys if k in a}, "active": "True"}
        for a in source.list("User").values()
    }


def settle(engine: SyncEngine, job_id: str) -> None:
    """Run cycles until one exports nothing (bounded)."""
    for _ in range(5):
        if engine.run_cycle(job_id).count_exports == 0:
            return
    pytest.fail("the job did not settle")


def test_a_pause_after_page_k_resumes_from_the_stored_watermark(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Pause after page 4 of 10; start again reads from page 4's watermark, not the beginning."""
    inner, target = MemoryDirectory(), MemoryDirectory()
    fill(inner, 100)
    source = RecordingSource(inner)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job = engine.create_job("memoryToMemory", source, target, settings={"PageSize": "10"})
    job_id = job.id or ""
    engine.start(job_id)
    source.after_page[4] = lambda: engine.pause(job_id)
    first = engine.run_cycle(job_id)
    assert StatusCode.PAUSED == engine.get_job(job_id).status.code
    assert 40 == first.count_imported == len(target.list("User"))
    mapping = "memoryToMemory:User:User"
    stored = engine.store.get_watermark(job_id, mapping)
    assert stored is not None and stored.startswith("f:")
    engine.start(job_id)
    second = engine.run_cycle(job_id)
    assert [None, stored] == source.reads
    assert 60 == second.count_imported
    assert expected_users(inner) == target_users(target)
    assert 100 == target.writes


def crash_points(pages: int, writes: int, step: int) -> list[tuple[str, str, int, str]]:
    return list(
        itertools.chain(
            (("commit", k, when) for k in range(1, pages + 1) for when in ("before", "after")),
            (
                ("write", w, when)
                for w in range(1, writes + 1, step)
                for when in ("before", "after")
            ),
        )
    )


# Every checkpoint commit and every target write of each phase is a crash point.
CRASH_POINTS = [("initial", *p) for p in crash_points(pages=9, writes=40, step=1)] + [
    ("incremental", *p) for p in crash_points(pages=9, writes=21, step=1)
]


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


def arm(target: MemoryDirectory, store: CrashingStore, point: tuple[str, int, str]) -> None:
    kind, n, when = point
    if kind == "commit":
        store.crash_at = (n, when)
        return
    counter = itertools.count(1)

    def hook(operation: str, object_type: str, ref: str | None) -> None:
        if next(counter) == n:
            raise Crash

    if when == "before":
        target.before_write = hook
    else:
        target.after_write = hook


def disarm(target: MemoryDirectory) -> None:
    target.before_write = target.after_write = None


def change_source(source: MemoryDirectory, rng: random.Random) -> None:
    """An incremental batch: updates, creates, deletes, a rename-like change."""
    for n in rng.sample(range(40), 12):
        source.put("User", f"s{n:06d}", user(n, department=rng.choice(["R&D", "Ops", "Sales"])))
    for n in rng.sample(range(40), 6):
        source.remove("User", f"s{n:06d}")
    fill(source, 8, start=100)


@pytest.mark.parametrize("concurrency", ["1", "4"])
@pytest.mark.parametrize(("phase", "kind", "n", "when"), CRASH_POINTS, ids=str)
def test_b_crash_anywhere_then_restart_converges(
    tmp_path: Path, clock: ManualClock, phase: str, kind: str, n: int, when: str, concurrency: str
) -> None:
    """A crash at any page or write, the engine dropped, a new engine on the same file
    converges to the expected target: no duplicate, no lost change; with the writes of each
    page sequential and on four threads (ExportConcurrency)."""
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 40)
    path = tmp_path / "s.db"
    store = CrashingStore(path)
    engine = SyncEngine(store, clock)
    settings = {"PageSize": "5", "ExportConcurrency": concurrency}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id
    assert job_id is not None
    engine.start(job_id)
    if phase == "incremental":
        engine.run_cycle(job_id)
        change_source(source, random.Random(7))
    store.commits = 0
    arm(target, store, (kind, n, when))
    with pytest.raises(Crash):
        engine.run_cycle(job_id)
    disarm(target)
    del engine, store  # dropped without close() or any cleanup
    revived = SyncEngine(path, clock)
    revived.attach(job_id, source, target)
    settle(revived, job_id)
    assert expected_users(source) == target_users(target)
    assert len(target.list("User")) == len(source.list("User"))  # no duplicate
    revived.close()


def test_c_restart_rereads_everything(tmp_path: Path, clock: ManualClock) -> None:
    """Restart drops the watermark: the next cycle reads every object from the beginning."""
    inner, target = MemoryDirectory(), MemoryDirectory()
    fill(inner, 30)
    source = RecordingSource(inner)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    assert 0 == engine.run_cycle(job_id).count_imported
    engine.restart(job_id, "Watermark")
    again = engine.run_cycle(job_id)
    assert 30 == again.count_imported
    assert [None, source.reads[1], None] == source.reads
    assert source.reads[1] is not None


def threshold_job(
    tmp_path: Path, clock: ManualClock, users: int, threshold: int, deletes: int
) -> tuple[SyncEngine, str, MemoryDirectory]:
    """A synced job whose source then loses ``deletes`` users, cycled once more."""
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, users)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = (
        engine.create_job(
            "memoryToMemory",
            source,
            target,
            settings={"QuarantineTooManyDeletesThreshold": str(threshold)},
        ).id
        or ""
    )
    engine.start(job_id)
    engine.run_cycle(job_id)
    for n in range(deletes):
        source.remove("User", f"s{n:06d}")
    engine.run_cycle(job_id)
    return engine, job_id, target


def test_d_delete_threshold_holds_then_force_deletes(tmp_path: Path, clock: ManualClock) -> None:
    """600 deletes over a threshold of 500: none applied, quarantine TooManyDeletes;
    restart with ForceDeletes applies them."""
    engine, job_id, target = threshold_job(tmp_path, clock, 700, 500, 600)
    assert 700 == len(target.list("User"))
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.TOO_MANY_DELETES == status.quarantine.reason
    staged = [r for r in engine.provisioning_logs(job_id, limit=5000) if r.action == "StagedDelete"]
    assert 600 == len(staged)
    engine.run_cycle(job_id)  # still over the threshold: still nothing deleted
    assert 700 == len(target.list("User"))
    engine.restart(job_id, "ForceDeletes")
    engine.run_cycle(job_id)
    assert 100 == len(target.list("User"))
    status = engine.get_job(job_id).status
    assert StatusCode.ACTIVE == status.code and status.quarantine is None
    assert [] == engine.store.staged_deletes(job_id)


def test_d_raised_threshold_lets_deletes_through(tmp_path: Path, clock: ManualClock) -> None:
    """Raising the threshold through SyncNotificationSettings releases the held deletes."""
    engine, job_id, target = threshold_job(tmp_path, clock, 20, 5, 10)
    assert 20 == len(target.list("User"))
    engine.set_secrets(
        None,
        {
            "SyncNotificationSettings": '{"DeleteThresholdEnabled": true, '
            '"DeleteThresholdValue": 50}'
        },
    )
    engine.run_cycle(job_id)
    assert 10 == len(target.list("User"))
    assert StatusCode.ACTIVE == engine.get_job(job_id).status.code


def test_e_failing_object_is_escrowed_and_recovers(tmp_path: Path, clock: ManualClock) -> None:
    """An object failing 3 times is escrowed while the rest proceeds; it succeeds once the
    fault clears."""
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 50)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    target.fail_object("User", "user7@example.org", times=3)
    first = engine.run_cycle(job_id)
    assert 1 == first.count_escrowed and 49 == first.count_exported
    assert 49 == len(target.list("User"))
    for _ in range(2):  # second and third failure, each at its backoff time
        clock.advance(timedelta(hours=1))
        assert 1 == engine.run_cycle(job_id).count_escrowed
    clock.advance(timedelta(hours=1))
    last = engine.run_cycle(job_id)
    assert 0 == last.count_escrowed and 1 == last.count_exported
    assert expected_users(source) == target_users(target)
    assert [] == engine.escrows(job_id)
