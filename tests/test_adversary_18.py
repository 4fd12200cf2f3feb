"""Adversarial checks of issue #18 point 2 on memory directories (the engine's cycle and its
plan, no server involved): an apply writes what its plan recorded."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryDirectory
from engine import JobRunningElsewhere, ManualClock, SyncEngine
from engine.model import to_graph
from engine.service.cli._plan import describe
from engine.service.cli._provision import _show as show
from tests.test_mapping_in_cycles import function, schema_with


@pytest.fixture
def job() -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(clock=ManualClock(), random=random.Random(7))
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    return engine, job_id, source, target


def test_an_apply_creates_users_whose_mapping_draws_a_random_password(job: Any) -> None:
    """Graph's usual initial password, Redact(RandomString(...)) on ObjectAddOnly: the plan
    drew it from Random(0), the apply's cycle from the engine's generator, so the create the
    apply's cycle asked for was never the one its plan recorded: refused and escrowed. Fixed:
    one secret seed per apply for its fresh plan and its cycle."""
    engine, job_id, source, target = job
    password = function("Redact(RandomString(12,2,2,2,2))", flowType="ObjectAddOnly")
    engine.update_schema(job_id, schema_with(engine, job_id, password=password))
    source.put("User", "u1", {"userName": "a", "displayName": "A"})
    plan = engine.plan(job_id)
    assert [c.action for c in plan.changes] == ["create"]
    execution = engine.apply(job_id, plan)
    assert execution.count_escrowed == 0, engine.escrows(job_id)
    assert len(target.list("User")) == 1


def test_a_trusted_read_does_not_delete_an_object_it_saw_whose_values_failed(job: Any) -> None:
    """Three of four users vanish from the source (an untrusted read: their deletes held),
    then come back, one with a value its mapping cannot take. The trusted full read saw all
    four; the one it escrowed kept its held delete, which the trusted read turned into an
    ordinary one and applied: a user the source has was deleted. Fixed: an object read as
    an upsert is unstaged even when its values fail (escrowed, never deleted)."""
    engine, job_id, source, target = job
    note = function('FormatDateTime([title], , "yyyyMMdd", "yyyy")')
    engine.update_schema(job_id, schema_with(engine, job_id, note=note))
    for n in range(4):
        source.put(
            "User", f"u{n}", {"userName": f"a{n}", "displayName": f"A{n}", "title": "20200101"}
        )
    engine.run_cycle(job_id)
    assert len(target.list("User")) == 4
    gone = {f"u{n}": source.get("User", f"u{n}") for n in range(1, 4)}
    for anchor in gone:
        source.remove("User", anchor)
    engine.restart(job_id)
    engine.run_cycle(job_id)
    staged = engine.store.staged_deletes(job_id)
    assert len(staged) == 3 and all(s.reason.startswith("held: ") for s in staged)
    for anchor, values in gone.items():
        source.put("User", anchor, {**values, "title": "not a date"} if anchor == "u2" else values)
    engine.restart(job_id)
    engine.run_cycle(job_id)
    assert [e.anchor for e in engine.escrows(job_id)] == ["u2"]
    assert len(target.list("User")) == 4 and engine.store.staged_deletes(job_id) == []


class _SlowSource(MemoryDirectory):
    """A source read a page a minute; at its eighth page (past the 5-minute lease) another
    runner of the same job tries its cycle once, the answer kept in ``other``."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self.during: Any = None
        self.other: list[object] = []

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Any:
        for number, page in enumerate(super().read(object_type, watermark, page_size)):
            self.clock.advance(timedelta(minutes=1))
            during = self.during
            if number == 7 and during is not None:
                self.during = None
                runner = threading.Thread(target=lambda: self.other.append(_attempt(during)))
                runner.start()
                runner.join(30)
            yield page


def _attempt(run: Any) -> object:
    try:
        return run()
    except JobRunningElsewhere as exc:
        return exc


def test_a_plan_longer_than_the_lease_keeps_the_job(tmp_path: Path) -> None:
    """A plan took the job's lease once and never renewed it (its cycle commits to the
    store's copy): one that outlasted the lease (5 minutes) let a cycle of the same job
    start beside it, on the same connectors. Fixed: the plan's cycle renews it per page."""
    clock = ManualClock()
    source, target = _SlowSource(clock), MemoryDirectory()
    for n in range(10):
        source.put("User", f"u{n}", {"userName": f"a{n}", "displayName": f"A{n}"})
    engine = SyncEngine(tmp_path / "s.db", clock)
    try:
        job = engine.create_job("memoryToMemory", source, target, settings={"PageSize": "1"})
        job_id = job.id or ""
        engine.start(job_id)
        source.during = lambda: engine.run_cycle(job_id)  # the daemon's scheduler, say
        assert len(engine.plan(job_id).changes) == 10
        assert len(source.other) == 1 and isinstance(source.other[0], JobRunningElsewhere)
        assert target.list("User") == {}
    finally:
        engine.close()


def test_syncjob_plan_shows_directory_text_that_cannot_forge_or_hide_a_line(job: Any) -> None:
    """A value anyone may edit in the source (a display name) holding a newline, ANSI
    escapes and a right-to-left override: ``syncjob plan`` printed it raw, so it could add a
    line that is not in the plan, or erase the one above it (a delete) from the terminal.
    Fixed: such characters are spelt as their escapes."""
    engine, job_id, source, _ = job
    source.put("User", "u1", {"userName": "a", "displayName": "A"})
    engine.run_cycle(job_id)
    hostile = "x\n\x1b[1A\x1b[2Kdeletes: the guards would let them through\u202e"
    source.put("User", "u1", {"userName": "a", "displayName": hostile})
    lines = describe(to_graph(engine.plan(job_id)))
    assert len(lines) == 3 and all(line.isprintable() for line in lines), lines
    assert "x\\n\\x1b[1A\\x1b[2Kdeletes" in lines[0] and lines[0].endswith("\\u202e")


def test_syncjob_provision_dry_run_shows_what_it_would_write(
    job: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``syncjob provision --dry-run`` got the one-object plan back and looked in it for a
    provisioning record's fields: it printed "DryRun: - - -> -", never the changes."""
    engine, job_id, source, _ = job
    source.put("User", "u1", {"userName": "a", "displayName": "Ada"})
    plan = engine.preview_on_demand(job_id, "User", "u1")
    key = {"result": "DryRun", "details": {"errorCode": None, "errorMessage": None}}
    show(key, to_graph(plan))
    out = capsys.readouterr().out
    assert "- -> -" not in out and "create User Ada" in out, out
