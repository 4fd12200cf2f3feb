"""Exact recovery when the source moves while the engine is down (write-ahead intents), and
one runner per job (leases with a fencing token). In-process crashes; the SIGKILL versions are
in test_real_kills.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.memory import MemoryDirectory
from engine import JobRunningElsewhere, LeaseLost, ManualClock, SqliteStateStore, SyncEngine
from engine.store import Checkpoint
from engine.store.base import this_host
from tests.conftest import fill, target_users, user
from tests.test_proofs import Crash, expected_users

MAPPING = "memoryToMemory:User:User"


def synced(
    path: Path, clock: ManualClock, users: int = 3
) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, users)
    engine = SyncEngine(path, clock)
    job_id = engine.create_job("memoryToMemory", source, target, settings={"PageSize": "5"}).id
    assert job_id is not None
    engine.start(job_id)
    engine.run_cycle(job_id)
    return engine, job_id, source, target


def crash_on(target: MemoryDirectory, operation: str, when: str = "after") -> None:
    """Kill the cycle right before or after the target's next ``operation`` write."""

    def hook(op: str, object_type: str, ref: str | None) -> None:
        if op == operation:
            target.before_write = target.after_write = None
            raise Crash

    if when == "after":
        target.after_write = hook
    else:
        target.before_write = hook


def crash_then(
    engine: SyncEngine,
    job_id: str,
    source: MemoryDirectory,
    target: MemoryDirectory,
    path: Path,
    clock: ManualClock,
    while_down: Callable[[], None],
) -> SyncEngine:
    """The cycle dies; the source changes; a new engine on the same file settles the job."""
    with pytest.raises(Crash):
        engine.run_cycle(job_id)
    while_down()
    revived = SyncEngine(path, clock)
    revived.attach(job_id, source, target)
    for _ in range(4):
        revived.run_cycle(job_id)
        clock.advance(timedelta(hours=2))
    return revived


def assert_exact(
    revived: SyncEngine, job_id: str, source: MemoryDirectory, target: MemoryDirectory
) -> None:
    assert expected_users(source) == target_users(target)
    assert len(source.list("User")) == len(target.list("User"))  # no orphan, no duplicate
    assert [] == revived.escrows(job_id)
    assert [] == revived.store.pending_intents(job_id)


@pytest.mark.parametrize("attributes", ["same", "new"])
def test_v1_applied_delete_in_doubt_then_source_re_adds(
    tmp_path: Path, clock: ManualClock, attributes: str
) -> None:
    """V1: a delete reached the target, the crash lost its checkpoint, the source re-added the
    object: it is created again (same or new attributes), never left missing or escrowed."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    kept = source.get("User", "s000001")
    source.remove("User", "s000001")
    crash_on(target, "delete")

    def re_add() -> None:
        extra = {"department": "Ops"} if attributes == "new" else {}
        source.put("User", "s000001", {**(kept or {}), **extra})

    revived = crash_then(engine, job_id, source, target, path, clock, re_add)
    assert_exact(revived, job_id, source, target)


def test_v2_create_in_doubt_then_matching_value_changes(tmp_path: Path, clock: ManualClock) -> None:
    """V2: a create reached the target, then the source changed the matching attribute: the
    object made before the crash is found by the value it was made with and renamed, not
    duplicated."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000009", user(9))
    crash_on(target, "create")
    revived = crash_then(
        engine,
        job_id,
        source,
        target,
        path,
        clock,
        lambda: source.put("User", "s000009", user(9, userName="renamed@x.org")),
    )
    assert_exact(revived, job_id, source, target)
    assert "renamed@x.org" in target_users(target)


def test_v3_create_in_doubt_then_source_deletes(tmp_path: Path, clock: ManualClock) -> None:
    """V3: a create reached the target, then the source deleted the object: it is removed."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000009", user(9))
    crash_on(target, "create")
    revived = crash_then(
        engine, job_id, source, target, path, clock, lambda: source.remove("User", "s000009")
    )
    assert_exact(revived, job_id, source, target)
    assert "user9@example.org" not in target_users(target)


def test_v4_create_in_doubt_then_attribute_removed(tmp_path: Path, clock: ManualClock) -> None:
    """V4: a create reached the target, then the source removed an attribute: the stale value
    is cleared."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000009", user(9))
    crash_on(target, "create")

    def drop_department() -> None:
        attributes = dict(source.get("User", "s000009") or {})
        del attributes["department"]
        source.put("User", "s000009", attributes)

    revived = crash_then(engine, job_id, source, target, path, clock, drop_department)
    assert_exact(revived, job_id, source, target)
    assert "department" not in target_users(target)["user9@example.org"]


def test_v5_update_in_doubt_then_source_reverts(tmp_path: Path, clock: ManualClock) -> None:
    """V5: an update reached the target, then the source went back to the checkpointed value:
    the target goes back too."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000001", user(1, department="Ops"))
    crash_on(target, "update")
    revived = crash_then(
        engine, job_id, source, target, path, clock, lambda: source.put("User", "s000001", user(1))
    )
    assert_exact(revived, job_id, source, target)
    assert "Sales" == target_users(target)["user1@example.org"]["department"]


def test_crash_before_the_write_leaves_nothing_behind(tmp_path: Path, clock: ManualClock) -> None:
    """An intent whose write never happened settles to nothing: no link, no phantom object."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000009", user(9))
    crash_on(target, "create", when="before")
    revived = crash_then(
        engine, job_id, source, target, path, clock, lambda: source.remove("User", "s000009")
    )
    assert_exact(revived, job_id, source, target)


def test_intents_are_recorded_before_writes_and_cleared_by_the_checkpoint(
    tmp_path: Path, clock: ManualClock
) -> None:
    """While a page's writes run, its intents are on disk; after the checkpoint, none is."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.put("User", "s000001", user(1, department="Ops"))
    source.put("User", "s000009", user(9))
    seen: list[list[str]] = []

    def look(op: str, object_type: str, ref: str | None) -> None:
        other = SqliteStateStore(path)  # what another process would find after a kill now
        seen.append(sorted(f"{i.op}:{i.anchor}" for i in other.pending_intents(job_id)))
        other.close()

    target.before_write = look
    engine.run_cycle(job_id)
    assert [["update:s000001", "upsert:s000009"]] * 2 == seen
    assert [] == engine.store.pending_intents(job_id)


def test_rehire_after_a_crash_converges_in_the_next_cycle(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Source deletes X and adds Y with X's userName; a crash before the staged delete is
    applied; the next cycle applies the delete before retrying Y, so Y is created at once."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.remove("User", "s000001")
    source.put("User", "s000777", user(1, displayName="Rehired"))
    crash_on(target, "delete", when="before")
    with pytest.raises(Crash):
        engine.run_cycle(job_id)
    assert 1 == len(engine.escrows(job_id))  # Y could not join X's object
    revived = SyncEngine(path, clock)
    revived.attach(job_id, source, target)
    revived.run_cycle(job_id)  # the clock does not move: no backoff waited out
    assert_exact(revived, job_id, source, target)
    assert "Rehired" == target_users(target)["user1@example.org"]["displayName"]


def test_a_delete_in_doubt_never_deletes_the_rehire_that_took_its_ref(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A delete reached the target, the crash lost its checkpoint; while the engine was down
    the source re-added the user under a new anchor, and the target gives the new object the
    old one's ref (an LDAP DN is taken again). The recovery drops the old link (its object
    is gone) and the staged delete stays: applied by ref, it deleted the rehire. A staged
    delete goes only to an object still linked to its anchor (found by the adversary of
    issue #17 with SIGKILLed runners on real slapd servers)."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    kept = source.get("User", "s000001")
    old_ref = engine.store.get_links(job_id, MAPPING, ["s000001"])["s000001"].target_ref
    source.remove("User", "s000001")
    crash_on(target, "delete")

    def rehire() -> None:
        source.put("User", "s000777", dict(kept or {}))
        target._next_id = int(old_ref[-8:]) - 1  # the next create takes the freed ref

    revived = crash_then(engine, job_id, source, target, path, clock, rehire)
    assert revived.store.get_links(job_id, MAPPING, ["s000777"])["s000777"].target_ref == old_ref
    assert_exact(revived, job_id, source, target)


# ------------------------------------------------------------------ one runner per job
def test_a_second_engine_gets_running_elsewhere(tmp_path: Path, clock: ManualClock) -> None:
    """While one engine runs a cycle, a second engine on the same file is refused the job
    (run_cycle raises, run_pending skips it) instead of running a second cycle."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    other = SyncEngine(path, clock)
    other.attach(job_id, source, target)
    outcomes: list[object] = []

    def meanwhile(op: str, object_type: str, ref: str | None) -> None:
        target.before_write = None
        with pytest.raises(JobRunningElsewhere, match="running elsewhere"):
            other.run_cycle(job_id)
        outcomes.append(other.run_pending())

    fill(source, 2, start=50)
    target.before_write = meanwhile
    engine.run_cycle(job_id)
    assert [[]] == outcomes
    other.run_cycle(job_id)  # free again once the first cycle is over
    assert expected_users(source) == target_users(target)


def test_a_runner_that_lost_its_lease_cannot_commit(tmp_path: Path, clock: ManualClock) -> None:
    """A runner paused past its lease: another takes the job over (new fencing token); the
    stale runner's next checkpoint or write-ahead record is refused, and it writes nothing
    more to the target."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock, users=3)
    other = SyncEngine(path, clock)
    other.attach(job_id, source, target)
    fill(source, 12, start=100)

    after_takeover: list[int] = []

    def stall(op: str, object_type: str, ref: str | None) -> None:
        target.after_write = None
        clock.advance(engine.lease_duration + timedelta(seconds=1))
        other.run_cycle(job_id)  # takes the expired lease over and finishes the work
        after_takeover.append(target.writes)

    target.after_write = stall
    with pytest.raises(LeaseLost):
        engine.run_cycle(job_id)
    assert after_takeover == [target.writes]  # the stale runner wrote nothing more
    assert expected_users(source) == target_users(target)
    assert len(source.list("User")) == len(target.list("User"))


def test_store_refuses_a_stale_fencing_token(tmp_path: Path, clock: ManualClock) -> None:
    """The store itself refuses a checkpoint or intents carrying a superseded token."""
    store = SqliteStateStore(tmp_path / "s.db")
    now = clock.now()
    first = store.acquire_lease("j", "a", now, now + timedelta(minutes=1))
    assert first is not None
    assert store.acquire_lease("j", "b", now, now + timedelta(minutes=1)) is None
    later = now + timedelta(minutes=2)
    second = store.acquire_lease("j", "b", later, later + timedelta(minutes=1))
    assert second is not None and second.token == first.token + 1
    with pytest.raises(LeaseLost):
        store.commit("j", Checkpoint(mapping="m", watermark="9", lease=first))
    with pytest.raises(LeaseLost):
        store.write_intents("j", [], first)
    assert store.get_watermark("j", "m") is None
    store.commit("j", Checkpoint(mapping="m", watermark="9", lease=second))
    assert "9" == store.get_watermark("j", "m")


def test_a_dead_holders_lease_is_taken_over_at_once(tmp_path: Path, clock: ManualClock) -> None:
    """A lease held by a process of this machine that is gone does not wait for expiry."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    now = clock.now()
    store = SqliteStateStore(path)
    held = store.acquire_lease(job_id, "ghost", now, now + timedelta(hours=1))
    assert held is not None
    store._db.execute("UPDATE leases SET pid=? WHERE job_id=?", (pid, job_id))
    fill(source, 1, start=60)
    assert 1 == engine.run_cycle(job_id).count_exported
    # a live process of this machine (our parent) keeps its lease until it expires
    held = store.acquire_lease(job_id, "ghost", now, now + timedelta(hours=1))
    assert held is not None and held.host == this_host()
    store._db.execute("UPDATE leases SET pid=? WHERE job_id=?", (os.getppid(), job_id))
    with pytest.raises(JobRunningElsewhere):
        engine.run_cycle(job_id)
    store.close()


class _Spy:
    """Records the SQL a store sends, passing everything through."""

    def __init__(self, inner: object, seen: list[str]) -> None:
        self._inner, self._seen = inner, seen

    def execute(self, sql: str, *args: object) -> object:
        self._seen.append(" ".join(sql.split())[:40])
        return self._inner.execute(sql, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_intents_are_fsynced_even_when_checkpoints_are_not(tmp_path: Path) -> None:
    """A write-ahead record is committed with synchronous=FULL (on disk before the writes it
    covers, power loss included); the store goes back to NORMAL for checkpoints."""
    store = SqliteStateStore(tmp_path / "s.db")
    seen: list[str] = []
    store._db = _Spy(store._db, seen)  # type: ignore[assignment]
    store.write_intents("j", [], None)
    assert ["PRAGMA synchronous=FULL", "BEGIN IMMEDIATE"] == seen[:2]
    assert seen[2].startswith("INSERT INTO intents")
    assert ["COMMIT", "PRAGMA synchronous=NORMAL"] == seen[3:]


def test_two_crashes_before_a_delete_then_the_object_returns(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A delete in doubt twice over (two crashes before it is sent) still knows the object's
    matching values, so when the source object comes back with new attributes the surviving
    target object is updated, not orphaned beside a new one."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock)
    source.remove("User", "s000001")
    for _ in range(2):
        crash_on(target, "delete", when="before")
        with pytest.raises(Crash):
            engine.run_cycle(job_id)
        engine = SyncEngine(path, clock)
        engine.attach(job_id, source, target)
    source.put("User", "s000001", user(9))
    for _ in range(3):
        engine.run_cycle(job_id)
    assert_exact(engine, job_id, source, target)


def test_a_restart_during_a_cycle_is_not_undone_by_it(tmp_path: Path, clock: ManualClock) -> None:
    """restart(Watermark) from another engine while a cycle runs revokes that cycle's lease:
    it stops (LeaseLost) instead of writing its watermarks over the reset, and the next cycle
    is the full, reconciling read."""
    path = tmp_path / "s.db"
    engine, job_id, source, target = synced(path, clock, users=6)
    source._objects["User"].pop("s000005")  # gone without a change-log entry
    fill(source, 4, start=20)
    admin = SyncEngine(path, clock)
    calls = iter(range(100))

    def mid_cycle(op: str, object_type: str, ref: str | None) -> None:
        if next(calls) == 1:
            admin.restart(job_id, "Watermark")

    target.before_write = mid_cycle
    with pytest.raises(LeaseLost):
        engine.run_cycle(job_id)
    target.before_write = None
    again = engine.run_cycle(job_id)
    assert 9 == again.count_imported  # everything, read again
    assert expected_users(source) == target_users(target)
