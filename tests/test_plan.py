"""Preview, then apply exactly that (issue 18.2) on memory directories: a plan writes nothing
to the target or the job's state, its changes are what the next real cycle writes, an apply
refuses when the source moved (naming the object) and applies when nothing did; values are
masked; provisionOnDemand's dry run and its subject by anchor, userName or not at all."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import engine.templates as _templates
from connectors.base import TransientError
from connectors.memory import MemoryDirectory
from engine import JobRunningElsewhere, ManualClock, NotFoundError, SyncEngine
from engine.jobs._plan import PlanOutdated
from engine.jobs._plan_show import masked_changes
from engine.model import from_graph, to_graph
from engine.model.plan import SyncPlan
from engine.service.cli._plan import describe
from tests.conftest import fill, user
from tests.plan_checks import dump, summary, written


@pytest.fixture
def job(tmp_path: Path) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory, Path]:
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 4)
    state = tmp_path / "s.db"
    engine = SyncEngine(state, ManualClock())
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    return engine, job_id, source, target, state


def test_a_plan_writes_nothing_to_the_target_or_the_state(job: Any) -> None:
    engine, job_id, source, target, state = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    source.remove("User", "s000002")
    fill(source, 1, start=9)
    before, writes, objects = dump(state), target.writes, target.list("User")
    plan = engine.plan(job_id)
    assert len(plan.changes) == 3
    assert dump(state) == before
    assert target.writes == writes and target.list("User") == objects


def test_a_plan_is_what_the_next_cycle_writes(job: Any) -> None:
    """Creates first; then an update (old -> new) and a delete, equal to the real cycle's."""
    engine, job_id, source, _, _ = job
    plan = engine.plan(job_id)
    assert {c.action for c in plan.changes} == {"create"}
    assert [c.display_name for c in plan.changes] == [f"User {n}" for n in range(4)]
    engine.run_cycle(job_id)
    assert summary(plan) == written(engine, job_id)

    source.put("User", "s000001", user(1, mail="ada@example.org"))
    source.remove("User", "s000002")
    plan = engine.plan(job_id)
    update = next(c for c in plan.changes if c.action == "update")
    assert update.anchor == "s000001" and update.target_id and update.target_digest
    assert [(a.name, a.old, a.new) for a in update.changes] == [
        ("mail", "user1@example.org", "ada@example.org")
    ]
    assert {(c.action, c.anchor) for c in plan.changes} == {
        ("update", "s000001"),
        ("delete", "s000002"),
    }
    assert not plan.delete_guard.held
    engine.run_cycle(job_id)
    assert summary(plan) == written(engine, job_id)
    assert engine.plan(job_id).changes == ()


def test_apply_refuses_once_the_source_moved_and_names_the_object(job: Any) -> None:
    engine, job_id, source, target, state = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    plan = engine.plan(job_id)
    source.put("User", "s000001", user(1, mail="grace@example.org"))
    before, objects = dump(state), target.list("User")
    with pytest.raises(PlanOutdated, match=r"update User User 1: the source moved.*mail"):
        engine.apply(job_id, plan)
    assert target.list("User") == objects
    assert dump(state) == before  # no cycle ran: its status and watermarks untouched


def test_apply_refuses_after_a_real_cycle_ran(job: Any) -> None:
    engine, job_id, source, _, _ = job
    plan = engine.plan(job_id)
    engine.run_cycle(job_id)
    with pytest.raises(PlanOutdated, match="watermark moved"):
        engine.apply(job_id, plan)


def test_apply_applies_the_plan_when_nothing_moved(job: Any) -> None:
    """Through JSON and back, as the CLI and the API carry it."""
    engine, job_id, source, target, _ = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    source.remove("User", "s000003")
    sent = from_graph(json.loads(json.dumps(to_graph(engine.plan(job_id)))), SyncPlan)
    execution = engine.apply(job_id, sent)
    assert execution.count_exported == 2 and execution.count_escrowed == 0
    mails = {a["userName"]: a["mail"] for a in target.list("User").values()}
    assert mails == {
        "user0@example.org": "user0@example.org",
        "user1@example.org": "ada@example.org",
        "user2@example.org": "user2@example.org",
    }
    assert engine.plan(job_id).changes == ()


def test_a_write_not_in_the_plan_is_refused_and_escrowed(job: Any) -> None:
    """What slips in between the apply's check and its cycle fails closed: a source that
    changes while the apply's cycle reads it is written only as planned."""
    engine, job_id, source, target, _ = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    plan = engine.plan(job_id)
    reads = {"n": 0}
    original = source.read

    def moving(*args: Any) -> Any:  # the apply's re-plan reads once, its cycle next
        reads["n"] += 1
        if reads["n"] == 2:
            source.put("User", "s000001", user(1, mail="late@example.org"))
        return original(*args)

    source.read = moving  # type: ignore[method-assign]
    execution = engine.apply(job_id, plan)
    assert execution.count_escrowed == 1
    assert "not in the plan" in engine.escrows(job_id)[0].error
    assert all(a["mail"] != "late@example.org" for a in target.list("User").values())


def test_delete_guards_hold_and_say_so(tmp_path: Path) -> None:
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 6)
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    settings = {"QuarantineTooManyDeletesThreshold": "2"}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    for n in range(3):
        source.remove("User", f"s{n:06d}")
    plan = engine.plan(job_id)
    assert plan.delete_guard.held and plan.delete_guard.deletes == 3
    assert "threshold" in (plan.delete_guard.reason or "")
    assert plan.changes == ()
    assert len(target.list("User")) == 6


def password_schema() -> dict[str, Any]:
    """memoryToMemory plus userPassword and a binary photo on users."""
    path = Path(_templates.__file__).with_name("memoryToMemory.json")
    schema: dict[str, Any] = json.loads(path.read_text())["schema"]
    for directory in schema["directories"]:
        attributes = directory["objects"][0]["attributes"]
        attributes += [{"name": "userPassword"}, {"name": "photo", "type": "Binary"}]
    users = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    for name in ("userPassword", "photo"):
        users.append({"targetAttributeName": name, "source": {"type": "Attribute", "name": name}})
    return schema


def test_passwords_and_binary_values_are_masked(tmp_path: Path) -> None:
    source, target = MemoryDirectory(), MemoryDirectory()
    source.put("User", "a", user(1, userPassword="Tr0ub4dor&3", photo=b"\x89PNG..."))
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    job_id = engine.create_job("memoryToMemory", source, target, schema=password_schema()).id
    assert job_id is not None
    plan = engine.plan(job_id)
    shown = {a.name: a.new for a in plan.changes[0].changes}
    assert shown["userPassword"] == "*****" and shown["photo"] == "<binary, 7 bytes>"
    assert "Tr0ub4dor" not in json.dumps(to_graph(plan))


def test_job_secrets_are_masked_in_values() -> None:
    changes = masked_changes(
        "update", {"note": "old"}, {"note": "key is hunter2hunter2"}, {}, ["hunter2hunter2"]
    )
    assert changes[0].new == "key is *****" and changes[0].old == "old"


def test_dry_run_on_demand_resolves_the_subject_and_says_why_it_skips(job: Any) -> None:
    engine, job_id, source, target, state = job
    plan = engine.preview_on_demand(job_id, "User", "user2@example.org")  # by userName
    assert [(c.action, c.anchor) for c in plan.changes] == [("create", "s000002")]
    assert target.list("User") == {}
    engine.run_cycle(job_id)
    before = dump(state)
    plan = engine.preview_on_demand(job_id, "User", "s000002")  # by anchor
    assert plan.changes == () and "unchanged" in plan.skipped[0].reason
    assert dump(state) == before
    with pytest.raises(NotFoundError, match="no User in the source has anchor, uid or userName"):
        engine.preview_on_demand(job_id, "User", "nobody@example.org")
    source.put("User", "dup", user(2))
    with pytest.raises(Exception, match="2 User objects in the source have userName"):
        engine.preview_on_demand(job_id, "User", "user2@example.org")


def test_provision_on_demand_takes_the_subject_by_user_name(job: Any) -> None:
    engine, job_id, source, target, _ = job
    records = engine.provision_on_demand(job_id, "User", "user3@example.org")
    assert [(r.action, r.anchor) for r in records] == [("Create", "s000003")]
    assert [a["userName"] for a in target.list("User").values()] == ["user3@example.org"]


def test_a_plan_on_either_store_leaves_it_as_it_was(store: Any) -> None:
    """The memory store is copied too (and a store the plan cannot copy is refused)."""
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 3)
    engine = SyncEngine(store, ManualClock())
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    source.remove("User", "s000000")
    links = store.count_links(job_id)
    plan = engine.plan(job_id)
    assert [(c.action, c.anchor) for c in plan.changes] == [("delete", "s000000")]
    assert store.count_links(job_id) == links and store.staged_deletes(job_id) == []
    engine.run_cycle(job_id)
    assert summary(plan) == written(engine, job_id)


def test_a_plan_waits_for_no_running_cycle(job: Any) -> None:
    """A plan holds the job's lease as a cycle does: while another runner holds it, refused."""
    engine, job_id, _, _, _ = job
    clock = engine.clock
    held = engine.store.acquire_lease(
        job_id, "elsewhere:1:x", clock.now(), clock.now() + timedelta(minutes=5)
    )
    assert held is not None
    with pytest.raises(JobRunningElsewhere):
        engine.plan(job_id)
    engine.store.release_lease(held)
    mine = engine.store.acquire_lease(  # this engine's own runner, in a cycle
        job_id, engine.runner_id, clock.now(), clock.now() + timedelta(minutes=5)
    )
    assert mine is not None
    with pytest.raises(JobRunningElsewhere):
        engine.plan(job_id)
    engine.store.release_lease(mine)
    assert len(engine.plan(job_id).changes) == 4


def test_the_cli_shows_one_line_per_change_then_the_guards(job: Any) -> None:
    engine, job_id, source, _, _ = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    source.remove("User", "s000002")
    fill(source, 1, start=7)
    lines = describe(to_graph(engine.plan(job_id)))
    assert lines[0] == "update User User 1: mail: user1@example.org → ada@example.org"
    assert lines[1].startswith("create User User 7: userName = user7@example.org, ")
    assert lines[2] == "delete User User 2"
    assert lines[3:] == ["deletes: the guards would let them through", lines[4]]
    assert lines[4].startswith("3 changes; plan ")


def test_a_write_the_target_refused_once_is_still_the_plans_on_retry(job: Any) -> None:
    """A transient failure of a planned write is retried in the cycle as usual: the guard
    counts only the writes made."""
    engine, job_id, source, target, _ = job
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, mail="ada@example.org"))
    plan = engine.plan(job_id)
    target.fail_object("User", "ada@example.org", error=TransientError)
    execution = engine.apply(job_id, plan)
    assert execution.count_escrowed == 0 and engine.escrows(job_id) == []
    assert "ada@example.org" in {a["mail"] for a in target.list("User").values()}
