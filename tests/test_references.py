"""References resolve only to live links and are re-evaluated when what they point at changes;
full reads reconcile; re-joins clear. Deterministic cases; the model-based property test is
test_references_property.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.base import ObjectError, UnreachableError
from connectors.memory import MemoryDirectory
from engine import ManualClock, QuarantineReason, StatusCode, SyncEngine
from tests.test_proofs import Crash
from tests.test_references_property import schema_changed, schema_with_scope

MAPPING = "memoryToMemory:User:User"


def person(name: str, **extra: Any) -> dict[str, Any]:
    return {"userName": name, "displayName": name, "status": "on", **extra}


def setup(
    tmp_path: Path, clock: ManualClock, settings: dict[str, str] | None = None
) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory(id_prefix="t")
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.update_schema(job_id, schema_with_scope(engine, job_id))
    engine.start(job_id)
    source.put("User", "boss", person("boss", department="Board"))
    for n in range(3):
        source.put("User", f"r{n}", person(f"r{n}", manager="boss"))
    source.put("Group", "g", {"displayName": "G", "members": ["boss", "r0"]})
    engine.run_cycle(job_id)
    return engine, job_id, source, target


def by_name(target: MemoryDirectory, object_type: str = "User") -> dict[str, dict[str, Any]]:
    key = "userName" if object_type == "User" else "displayName"
    return {a[key]: {**a, "ref": ref} for ref, a in target.list(object_type).items()}


def ref_of(target: MemoryDirectory, name: str) -> str:
    return str(by_name(target)[name]["ref"])


def test_deleting_a_manager_clears_it_from_unchanged_reports_in_the_same_cycle(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The reports did not change, yet their manager (and the group's member) is cleared in
    the cycle that deletes the manager; their dangling source references are escrowed as
    ReferenceNotResolved."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.remove("User", "boss")
    engine.run_cycle(job_id)
    users = by_name(target)
    assert "boss" not in users
    assert all("manager" not in users[f"r{n}"] for n in range(3))
    assert [ref_of(target, "r0")] == by_name(target, "Group")["G"]["members"]
    assert {"r0", "r1", "r2", "g"} == {e.anchor for e in engine.escrows(job_id)}
    assert all(e.error.startswith("ReferenceNotResolved") for e in engine.escrows(job_id))


def test_a_re_added_manager_is_picked_up_by_its_reports_without_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Deleted, then re-added under the same anchor (a new target object): the reports and
    the group point at the new object in the cycle that re-adds it, no backoff waited."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.remove("User", "boss")
    engine.run_cycle(job_id)
    source.put("User", "boss", person("boss", department="Board"))
    engine.run_cycle(job_id)  # the clock does not move
    boss = ref_of(target, "boss")
    assert all(boss == by_name(target)[f"r{n}"]["manager"] for n in range(3))
    assert sorted([boss, ref_of(target, "r0")]) == sorted(by_name(target, "Group")["G"]["members"])
    assert [] == engine.escrows(job_id)


def test_out_of_scope_and_back(tmp_path: Path, clock: ManualClock) -> None:
    """A manager leaving scope is disabled and dropped from its reports and groups at once;
    back in scope it is re-joined, cleared of what it lost meanwhile, and picked up again."""
    engine, job_id, source, target = setup(tmp_path, clock)
    old_ref = ref_of(target, "boss")
    source.put("User", "boss", person("boss", status="off", department="Board"))
    engine.run_cycle(job_id)
    assert False is target.get("User", old_ref)["active"]
    assert all("manager" not in by_name(target)[f"r{n}"] for n in range(3))
    assert [ref_of(target, "r0")] == by_name(target, "Group")["G"]["members"]
    source.put("User", "boss", person("boss"))  # back, without its department
    engine.run_cycle(job_id)
    boss = by_name(target)["boss"]
    assert old_ref == boss["ref"] and "True" == boss["active"]
    assert "department" not in boss  # the re-join cleared what the source no longer has
    assert all(old_ref == by_name(target)[f"r{n}"]["manager"] for n in range(3))
    assert [] == engine.escrows(job_id)


def test_a_new_referrer_never_resolves_to_an_object_being_deleted(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A user created in the cycle that deletes its manager gets no manager (the manager's
    link is only staged for deletion), and is escrowed until the reference can resolve."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.remove("User", "boss")
    source.put("User", "new", person("new", manager="boss"))
    engine.run_cycle(job_id)
    assert "manager" not in by_name(target)["new"]
    assert "new" in {e.anchor for e in engine.escrows(job_id)}


def test_takeover_by_matching_value_clears_and_stays_exact(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A new source user takes over the disabled object of one that left scope: values and a
    manager the old object had are cleared, and groups do not list the newcomer."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.put("User", "r1", person("r1", status="off", manager="boss", department="X"))
    engine.run_cycle(job_id)
    source.remove("User", "r1")
    source.put("User", "n1", person("r1"))  # same userName: takes over the disabled object
    engine.run_cycle(job_id)
    taken = by_name(target)["r1"]
    assert "True" == taken["active"] and "manager" not in taken and "department" not in taken
    assert ref_of(target, "r0") in by_name(target, "Group")["G"]["members"]
    assert taken["ref"] not in by_name(target, "Group")["G"]["members"]


def test_duplicate_member_anchors_become_one_value(tmp_path: Path, clock: ManualClock) -> None:
    """A member listed twice in the source is one value in the target."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.put("Group", "g", {"displayName": "G", "members": ["r1", "r1", "r2", "r1"]})
    engine.run_cycle(job_id)
    assert sorted([ref_of(target, "r1"), ref_of(target, "r2")]) == sorted(
        by_name(target, "Group")["G"]["members"]
    )


def test_a_freed_matching_value_is_taken_in_the_same_cycle(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Source deletes X and adds Y with X's userName: after that one cycle X's object is
    gone and Y exists, with no failure logged."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.remove("User", "r2")
    source.put("User", "y", person("r2", displayName="Y"))
    engine.run_cycle(job_id)
    assert "Y" == by_name(target)["r2"]["displayName"]
    assert 4 == len(target.list("User"))
    assert not [r for r in engine.provisioning_logs(job_id) if r.status == "failure"]


@pytest.mark.parametrize("reread", ["restart", "schema", "expired"])
def test_every_full_read_reconciles(tmp_path: Path, clock: ManualClock, reread: str) -> None:
    """Users deleted from the source where no delta shows it (log purged before the cycle
    that would read it) are deprovisioned by the next full read: after restart(Watermark),
    after a schema update, and when the delta log no longer reaches the watermark; a new
    user can then reuse the freed userName."""
    engine, job_id, source, target = setup(tmp_path, clock)
    source.remove("User", "r2")
    source.forget_changes()  # nobody will ever see that delete as a change
    source.put("User", "new", person("r2"))
    if reread == "restart":
        engine.restart(job_id, "Watermark")
    elif reread == "schema":
        engine.update_schema(job_id, schema_changed(engine, job_id))
    else:
        source.forget_changes()
    engine.run_cycle(job_id)
    engine.run_cycle(job_id)
    assert {"boss", "r0", "r1", "r2"} == set(by_name(target))
    assert by_name(target)["r2"]["ref"] != "t00000004"  # r2's old object was deleted
    assert [] == engine.escrows(job_id)
    assert not engine.store.sweeping(job_id, MAPPING)


def test_reconciliation_counts_against_the_threshold_and_waits_for_the_whole_read(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Deletes found by a full read are staged only once the read completed, and are held
    (TooManyDeletes) like any other when they exceed the threshold."""
    engine, job_id, source, target = setup(
        tmp_path, clock, settings={"QuarantineTooManyDeletesThreshold": "1", "PageSize": "1"}
    )
    for n in range(4):
        source.put("User", f"keep{n}", person(f"keep{n}"))
    engine.run_cycle(job_id)
    for n in range(3):
        source.remove("User", f"r{n}")
    source.forget_changes()
    engine.restart(job_id, "Watermark")
    stops = iter(range(100))
    engine_pause_after = 2

    original = source.read

    def paused_read(object_type: str, watermark: str | None, page_size: int) -> Any:
        for page in original(object_type, watermark, page_size):
            yield page
            if object_type == "User" and next(stops) == engine_pause_after:
                engine.pause(job_id)

    source.read = paused_read  # type: ignore[method-assign]
    engine.run_cycle(job_id)  # paused mid-read: nothing staged yet
    assert [] == engine.store.staged_deletes(job_id)
    assert engine.store.sweeping(job_id, MAPPING)
    source.read = original  # type: ignore[method-assign]
    engine.start(job_id)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.TOO_MANY_DELETES == status.quarantine.reason
    assert 3 == len(engine.store.staged_deletes(job_id))
    assert 8 == len(target.list("User"))  # held, not applied


@pytest.mark.parametrize("interruption", ["unreachable", "pause", "crash"])
def test_referrers_are_re_evaluated_even_when_the_cycle_that_staged_a_delete_stops(
    tmp_path: Path, clock: ManualClock, interruption: str
) -> None:
    """Link events are durable: a cycle that staged a manager's delete and then stopped
    (unreachable target, pause, crash) leaves the next cycle to clear the reports' manager
    and the group's member; nothing keeps pointing at the deleted object."""
    engine, job_id, source, target = setup(tmp_path, clock, settings={"PageSize": "1"})
    boss = ref_of(target, "boss")
    source.remove("User", "boss")
    source.put("User", "r2", person("r2", manager="boss", city="Oslo"))

    def stop(op: str, object_type: str, ref: str | None) -> None:
        target.before_write = None
        if interruption == "unreachable":
            raise UnreachableError("connection refused")
        if interruption == "crash":
            raise Crash
        engine.pause(job_id)

    target.before_write = stop
    if interruption == "crash":
        with pytest.raises(Crash):
            engine.run_cycle(job_id)
        engine = SyncEngine(tmp_path / "s.db", clock)
        engine.attach(job_id, source, target)
    else:
        engine.run_cycle(job_id)
    if interruption == "pause":
        engine.start(job_id)
    for _ in range(2):
        engine.run_cycle(job_id)
    users = by_name(target)
    assert "boss" not in users and boss not in target.list("User")
    assert all("manager" not in users[f"r{n}"] for n in range(3))
    assert [ref_of(target, "r0")] == by_name(target, "Group")["G"]["members"]
    assert [] == engine.store.link_events(job_id)


class CountingReads(MemoryDirectory):
    """A memory source that counts its reads by anchor, and may refuse to read many."""

    def __init__(self, refuse_many: bool = False) -> None:
        super().__init__()
        self.refuse_many = refuse_many
        self.gets = 0
        self.many: list[int] = []

    def get(self, object_type: str, anchor: str) -> Any:
        self.gets += 1
        return super().get(object_type, anchor)

    def get_many(self, object_type: str, anchors: Any) -> Any:
        self.many.append(len(anchors))
        if self.refuse_many:
            raise ObjectError("one of them cannot be read")
        return super().get_many(object_type, anchors)


@pytest.mark.parametrize("refuse_many", [False, True])
def test_second_passes_read_their_objects_a_page_at_a_time(
    tmp_path: Path, clock: ManualClock, refuse_many: bool
) -> None:
    """Reports read before their manager (anchor order) are evaluated again once it is
    linked: with a source that reads many objects at once, one read per page, not one per
    report (AD's random objectGUIDs put half the users before their manager); a source whose
    batch read fails is read object by object, as before."""
    source, target = CountingReads(refuse_many), MemoryDirectory(id_prefix="t")
    engine = SyncEngine(tmp_path / "s.db", clock)
    settings = {"PageSize": "4"}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.start(job_id)
    for n in range(10):
        source.put("User", f"a{n}", person(f"a{n}", manager="z-boss"))
    source.put("User", "z-boss", person("z-boss"))
    engine.run_cycle(job_id)
    boss = ref_of(target, "z-boss")
    assert all(by_name(target)[f"a{n}"]["manager"] == boss for n in range(10))
    assert engine.escrows(job_id) == []
    if refuse_many:
        assert source.gets == 10 and source.many == [4, 4, 2]
    else:
        assert source.gets == 0 and source.many == [4, 4, 2]
