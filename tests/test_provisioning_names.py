"""Provisioning records that name the people they concern (issue 18, point 5), through real
cycles on both stores: display names on both sides, old -> new values of what changed, secrets
masked, and the records of failures, skips and deletes named too."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from connectors.memory import MemoryDirectory
from engine import ManualClock, SqliteStateStore, StateStore, SyncEngine
from engine.masking import MASK
from engine.store.base import LogRecord
from tests.test_mapping_in_cycles import function, schema_with

SECRET = "Hunter2-secret-value"


def ada(**extra: Any) -> dict[str, Any]:
    return {
        "userName": "ada@example.org",
        "displayName": "Ada Lovelace",
        "givenName": "Ada",
        "surname": "Lovelace",
        "mail": "ada@example.org",
        "department": "Analytical Engines",
        "password": SECRET,
        **extra,
    }


def job_on(
    store: StateStore, clock: ManualClock, **mappings: dict[str, Any]
) -> tuple[SyncEngine, str, MemoryDirectory]:
    """A started memoryToMemory job whose users also map ``password`` to ``userPassword``."""
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(store, clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    password = {"source": {"type": "Attribute", "name": "password"}}
    engine.update_schema(job_id, schema_with(engine, job_id, userPassword=password, **mappings))
    engine.start(job_id)
    return engine, job_id, source


def only(engine: SyncEngine, job_id: str, action: str) -> LogRecord:
    (record,) = [r for r in engine.provisioning_logs(job_id) if r.action == action]
    return record


def test_create_and_update_name_both_sides_with_old_and_new_values(
    store: StateStore, clock: ManualClock
) -> None:
    engine, job_id, source = job_on(store, clock)
    source.put("User", "s1", ada())
    engine.run_cycle(job_id)
    created = only(engine, job_id, "Create")
    assert (created.source_name, created.target_name) == ("Ada Lovelace", "Ada Lovelace")
    assert created.source_key == "ada@example.org"  # no DN: the value it is matched by
    values = {name: (old, new) for name, old, new in created.changes()}
    assert values["mail"] == (None, "ada@example.org")
    assert values["userPassword"] == (None, MASK)
    assert set(values) == set(created.attributes)

    clock.advance(60)
    source.put("User", "s1", ada(mail="countess@example.org", password=SECRET + "2"))
    engine.run_cycle(job_id)
    updated = only(engine, job_id, "Update")
    assert (updated.source_name, updated.target_name) == ("Ada Lovelace", "Ada Lovelace")
    assert updated.changes() == [
        ("mail", "ada@example.org", "countess@example.org"),
        ("userPassword", MASK, MASK),
    ]
    assert SECRET not in repr(engine.provisioning_logs(job_id))


def test_a_computed_display_name_reads_the_source_name_from_the_source(
    store: StateStore, clock: ManualClock
) -> None:
    """The target's name is an expression: the source's own displayName names the source."""
    engine, job_id, source = job_on(
        store, clock, displayName=function('Join(" ", [surname], [givenName])')
    )
    source.put("User", "s1", ada(displayName="Countess of Lovelace"))
    engine.run_cycle(job_id)
    created = only(engine, job_id, "Create")
    assert (created.source_name, created.target_name) == ("Countess of Lovelace", "Lovelace Ada")


def test_failures_skips_and_deletes_are_named_too(store: StateStore, clock: ManualClock) -> None:
    engine, job_id, source = job_on(store, clock)
    source.put("User", "s1", ada())
    nameless = {k: v for k, v in ada(displayName="Grace Hopper").items() if k != "userName"}
    source.put("User", "s2", nameless)  # no matching value: escrowed, never created
    engine.run_cycle(job_id)
    failed = only(engine, job_id, "Other")
    assert failed.status == "failure" and failed.source_name == "Grace Hopper"

    source.remove("User", "s1")
    engine.run_cycle(job_id)
    deleted = [r for r in engine.provisioning_logs(job_id) if r.action in ("Delete", "Disable")]
    assert [(r.anchor, r.target_name) for r in deleted] == [("s1", "Ada Lovelace")]


def test_records_stored_before_names_read_with_none(tmp_path: Path) -> None:
    """A provisioning log row written by the version before (nine items a record) reads."""
    path = tmp_path / "s.db"
    SqliteStateStore(path).close()
    old = ["c1.1", "2026-01-01T00:00:00.000000+00:00", "Create", "success", "m:User:User", "a1",
           "r1", ["mail"], None]  # fmt: skip
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO provisioning_log (job_id, cycle_id, count, records, time) "
            "VALUES ('j1', 'c1', 1, ?, '2026-01-01T00:00:00.000000+00:00')",
            (orjson.dumps([old]).decode(),),
        )
    db.close()
    store = SqliteStateStore(path)
    try:
        (record,) = store.provisioning_logs("j1")
        assert record.attributes == ("mail",) and record.anchor == "a1"
        assert (record.source_name, record.source_key, record.target_name) == (None, None, None)
        assert (record.new, record.old, record.changes()) == ((), (), [])
    finally:
        store.close()


def test_a_delete_held_then_forced_in_a_later_cycle_is_named(
    store: StateStore, clock: ManualClock
) -> None:
    """A delete applied in a later cycle than the one that staged it (held by the threshold,
    then ForceDeletes) is named from the values last exported: the held record and the
    delete both say whom they concern."""
    engine, job_id, source = job_on(store, clock)
    source.put("User", "s1", ada())
    source.put("User", "s2", ada(userName="bob@example.org", displayName="Bob"))
    engine.run_cycle(job_id)
    engine.update_settings(job_id, {"QuarantineTooManyDeletesThreshold": "1"})
    source.remove("User", "s1")
    source.remove("User", "s2")
    engine.run_cycle(job_id)
    held = [r for r in engine.provisioning_logs(job_id) if r.action == "StagedDelete"]
    assert {r.target_name for r in held} == {"Ada Lovelace", "Bob"}
    engine.restart(job_id, ["ForceDeletes"])
    engine.run_cycle(job_id)
    deleted = [r for r in engine.provisioning_logs(job_id) if r.action == "Delete"]
    assert {(r.source_name, r.target_name) for r in deleted} == {
        ("Ada Lovelace", "Ada Lovelace"),
        ("Bob", "Bob"),
    }
