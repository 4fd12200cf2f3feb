"""Hostile input never stops a job or the runner: poison objects are escrowed, never a poison
page; one job's failure is isolated; retry sleeps are bounded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Attributes, Change, ObjectError, Page, TransientError
from connectors.memory import MemoryDirectory
from engine import (
    ConfigurationError,
    ManualClock,
    MemoryStateStore,
    StatusCode,
    SyncEngine,
    from_graph,
    to_graph,
)
from engine.cycle._context import backoff
from engine.model import QuarantineReason, SynchronizationSchema, TaskExecutionResult
from tests.conftest import fill, user


def job(
    clock: ManualClock, store: Any = None, settings: dict[str, str] | None = None
) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(store if store is not None else MemoryStateStore(), clock)
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id
    assert job_id is not None
    engine.start(job_id)
    return engine, job_id, source, target


HOSTILE = {
    "surrogate": "\ud800",
    "huge int": 2**64,
    "set": {"a"},
    "dict": {"a": 1},
    "nested list": [["x"]],
    "float nan": float("nan"),
    "object": object(),
    "too long": "x" * ((1 << 20) + 1),
}


def test_each_hostile_value_escrows_only_its_object(tmp_path: Path, clock: ManualClock) -> None:
    """Each value outside the contract escrows its own object with a readable error; the good
    objects of the same page are exported and the page commits (SQLite store)."""
    engine, job_id, source, target = job(clock, tmp_path / "s.db")
    fill(source, 3)
    for n, (name, value) in enumerate(HOSTILE.items(), start=100):
        source.put("User", f"bad{n}", user(n, department=value))
    execution = engine.run_cycle(job_id)
    assert 3 == execution.count_exported
    assert len(HOSTILE) == execution.count_escrowed
    assert 3 == len(target.list("User"))
    errors = [e.error for e in engine.escrows(job_id)]
    assert all(e.startswith("ValueRefused") for e in errors), errors
    assert any("not a directory value" in e for e in errors)
    assert any("64-bit" in e for e in errors)
    assert any("too long" in e for e in errors)
    assert engine.store.get_watermark(job_id, "memoryToMemory:User:User") is not None
    assert StatusCode.ACTIVE == engine.get_job(job_id).status.code


def test_deep_nesting_in_an_expression_escrows_the_object(clock: ManualClock) -> None:
    """A string nested 100k deep handed to AppRoleAssignmentsComplex escrows that object
    (RecursionError becomes the object's error), and the cycle returns."""
    engine, job_id, source, target = job(clock)
    schema = engine.get_schema(job_id)
    body = to_graph(schema)
    mappings = body["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    mappings[:] = [m for m in mappings if m["targetAttributeName"] != "jobTitle"]
    mappings.append(
        {
            "targetAttributeName": "jobTitle",
            "source": {
                "type": "Function",
                "expression": "AppRoleAssignmentsComplex([appRoleAssignments])",
                "name": "AppRoleAssignmentsComplex",
                "parameters": [
                    {"key": "source", "value": {"type": "Attribute", "name": "appRoleAssignments"}}
                ],
            },
        }
    )
    source_user = next(o for o in body["directories"][0]["objects"] if o["name"] == "User")
    source_user["attributes"].append({"name": "appRoleAssignments", "multivalued": True})
    engine.update_schema(job_id, from_graph(body, SynchronizationSchema))
    for n in range(2):
        source.put("User", f"ok{n}", user(n, appRoleAssignments=["Reader"]))
    source.put("User", "deep", user(9, appRoleAssignments="[" * 100_000 + "]" * 100_000))
    execution = engine.run_cycle(job_id)
    assert 1 == execution.count_escrowed and 2 == len(target.list("User"))


def test_odd_anchor_and_change_kind_are_refused_not_fatal(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A lone-surrogate anchor is logged (escaped) as a failure; an unknown change kind
    escrows the object; the rest of the page is exported."""

    class Odd(MemoryDirectory):
        def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
            for page in super().read(object_type, watermark, page_size):
                changes = list(page.changes)
                if object_type == "User" and watermark is None:
                    changes += [
                        Change("upsert", "\udc80", user(50)),
                        Change("frobnicate", "k1", user(51)),
                    ]  # type: ignore[arg-type]
                yield Page(changes, page.watermark)  # type: ignore[arg-type]

    source, target = Odd(), MemoryDirectory()
    fill(source, 2)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert 2 == len(target.list("User")) and 2 == execution.count_escrowed
    failures = [r for r in engine.provisioning_logs(job_id) if r.status == "failure"]
    assert {"\\udc80", "k1"} == {r.anchor for r in failures}
    assert ["k1"] == [e.anchor for e in engine.escrows(job_id)]


def test_a_watermark_that_cannot_be_stored_fails_the_cycle_clearly(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A source watermark with a lone surrogate fails the cycle with a clear error recorded
    on the job; nothing loops."""

    class BadMark(MemoryDirectory):
        def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
            for page in super().read(object_type, watermark, page_size):
                yield Page(page.changes, "\ud800")

    source, target = BadMark(), MemoryDirectory()
    fill(source, 2)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert TaskExecutionResult.FAILED == execution.state
    assert execution.error is not None and "watermark" in (execution.error.message or "")


class Exploding(MemoryDirectory):
    """A source with a bug: every read raises something no connector error covers."""

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        raise RuntimeError("boom")


def test_one_jobs_failure_never_stops_the_others(clock: ManualClock) -> None:
    """run_pending records an unexpected exception on its job (lastExecution.error, then
    quarantine after repeated failures) and still runs the healthy job."""
    engine = SyncEngine(MemoryStateStore(), clock)
    bad = engine.create_job("memoryToMemory", Exploding(), MemoryDirectory()).id or ""
    healthy_source, healthy_target = MemoryDirectory(), MemoryDirectory()
    fill(healthy_source, 3)
    good = engine.create_job("memoryToMemory", healthy_source, healthy_target).id or ""
    engine.start(bad)
    engine.start(good)
    ran = engine.run_pending()
    assert 2 == len(ran)
    assert 3 == len(healthy_target.list("User"))
    status = engine.get_job(bad).status
    assert status.last_execution is not None and status.last_execution.error is not None
    assert "RuntimeError: boom" in (status.last_execution.error.message or "")
    for _ in range(3):
        clock.advance(timedelta(days=2))
        engine.run_pending()
    status = engine.get_job(bad).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.ENCOUNTERED_QUARANTINE_EXCEPTION == status.quarantine.reason


class Busy(MemoryDirectory):
    """A target that is always busy and never says when to come back."""

    def create(self, object_type: str, attributes: Attributes) -> str:
        raise TransientError("busy", retry_after=None)

    def find(self, object_type: str, attribute: str, value: Any) -> str | None:
        return None


def test_retry_sleeps_and_counts_are_bounded(clock: ManualClock) -> None:
    """TransientRetries at its maximum (10) without Retry-After: each wait at most 60 s, then
    the object is escrowed; a huge or negative Retry-After is clamped; 30 is refused."""
    source, target = MemoryDirectory(), Busy()
    fill(source, 1)
    engine = SyncEngine(MemoryStateStore(), clock)
    with pytest.raises(ConfigurationError, match="TransientRetries"):
        engine.create_job("memoryToMemory", source, target, settings={"TransientRetries": "30"})
    job_id = (
        engine.create_job("memoryToMemory", source, target, settings={"TransientRetries": "10"}).id
        or ""
    )
    engine.start(job_id)
    before = clock.now()
    execution = engine.run_cycle(job_id)
    assert 1 == execution.count_escrowed
    assert clock.now() - before <= timedelta(seconds=600)
    assert 60.0 == backoff(3, 1e12) and 0.0 == backoff(3, -5) and 60.0 == backoff(10**6, None)
    assert 1.0 == backoff(1, float("nan"))


scalars = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.binary(max_size=8),
    st.floats(allow_nan=True),
    st.sampled_from(["\ud800", "a\x00b", "x" * ((1 << 20) + 5), "\U0001f600"]),
    st.builds(set, st.lists(st.text(max_size=3), max_size=2)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.none(),
)
hostile_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.recursive(scalars, lambda c: st.lists(c, max_size=2), max_leaves=4),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["displayName", "department", "mail", "city", "manager", "userName"]),
            hostile_values,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_random_hostile_values_never_stop_a_cycle(values: Sequence[tuple[str, Any]]) -> None:
    """Random hostile values through a cycle: it always returns, the good objects are exported,
    each object is either exported or escrowed."""
    clock = ManualClock()
    engine, job_id, source, target = job(clock)
    fill(source, 2)
    for n, (name, value) in enumerate(values, start=10):
        source.put("User", f"h{n}", user(n, **{name: value}))
    execution = engine.run_cycle(job_id)
    escrowed = {e.anchor for e in engine.escrows(job_id)}
    exported = [a.get("userName") for a in target.list("User").values()]
    assert "user0@example.org" in exported and "user1@example.org" in exported
    for anchor, attributes in source.list("User").items():  # each one exported or escrowed
        assert anchor in escrowed or attributes.get("userName") in exported, anchor
    assert execution.state is not TaskExecutionResult.FAILED
    for attributes in target.list("User").values():
        for value in attributes.values():
            assert not isinstance(value, set | dict | float)


def test_an_object_the_source_cannot_read_is_escrowed_not_the_job(clock: ManualClock) -> None:
    """An escrowed object whose source.get fails (access denied on that one entry) stays
    escrowed; the cycles go on and apply the other changes."""

    class Source(MemoryDirectory):
        def get(self, object_type: str, anchor: str) -> Any:
            if anchor == "poison":
                raise ObjectError("access denied on this one entry")
            return super().get(object_type, anchor)

    source, target = Source(), MemoryDirectory()
    source.put("User", "poison", user(1))
    source.put("User", "leaver", user(2))
    target.fail_object("User", "user1@example.org", times=1)
    engine = SyncEngine(MemoryStateStore(), clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    source.remove("User", "leaver")
    for _ in range(3):
        clock.advance(timedelta(days=1))
        assert TaskExecutionResult.FAILED != engine.run_cycle(job_id).state
    assert StatusCode.ACTIVE == engine.get_job(job_id).status.code
    assert {"poison"} == {e.anchor for e in engine.escrows(job_id)}
    assert "access denied" in engine.escrows(job_id)[0].error
    assert [] == [u for u in target.list("User").values() if u["userName"] == "user2@example.org"]


class Unshowable:
    """An anchor or an error that cannot describe itself."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class Grumpy(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_page_items_that_are_not_changes_are_refused_one_by_one(
    clock: ManualClock, tmp_path: Path
) -> None:
    """None, a tuple, a dict or an anchor that cannot show itself in a page: each is logged
    as a failure, the rest of the page is exported and the watermark moves on; a target error
    whose message cannot be read escrows its object with a readable error."""

    class Odd(MemoryDirectory):
        def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
            for page in super().read(object_type, watermark, page_size):
                extra: list[Any] = []
                if object_type == "User" and watermark is None:
                    extra = [
                        None,
                        ("upsert", "t1", {}),
                        {"anchor": "d"},
                        Change("upsert", Unshowable(), user(60)),
                    ]  # type: ignore[arg-type]
                yield Page([*page.changes, *extra], page.watermark)

    class Refusing(MemoryDirectory):
        def create(self, object_type: str, attributes: Attributes) -> str:
            if attributes.get("userName") == "user1@example.org":
                raise Grumpy
            return super().create(object_type, attributes)

    source, target = Odd(), Refusing()
    fill(source, 2)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert TaskExecutionResult.FAILED != execution.state
    assert ["user0@example.org"] == [u["userName"] for u in target.list("User").values()]
    assert 4 == len(
        [
            r
            for r in engine.provisioning_logs(job_id)
            if r.status == "failure" and "storable text anchor" in (r.error or "")
        ]
    )
    (escrow,) = engine.escrows(job_id)
    assert "Grumpy: <Grumpy that cannot be shown>" in escrow.error
    assert engine.run_cycle(job_id).state is not TaskExecutionResult.FAILED


def test_restart_criteria_of_the_wrong_type_are_a_configuration_error(
    clock: ManualClock,
) -> None:
    """restart(job, 5) is refused with the project's error, and nothing is reset."""
    engine, job_id, _, _ = job(clock)
    with pytest.raises(ConfigurationError, match="restart criteria"):
        engine.restart(job_id, 5)  # type: ignore[arg-type]


class SlowlyBusy(MemoryDirectory):
    """A target that asks to come back in a minute, nine times, then accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 9

    def create(self, object_type: str, attributes: Attributes) -> str:
        if self.refusals:
            self.refusals -= 1
            raise TransientError("busy", retry_after=60)
        return super().create(object_type, attributes)


def test_waiting_on_a_busy_target_renews_the_lease(tmp_path: Path, clock: ManualClock) -> None:
    """Nine Retry-After waits of 60 s outlast the 5-minute lease: the lease is renewed before
    a wait that would outlast it, so the write goes through instead of LeaseLost."""
    source, target = MemoryDirectory(), SlowlyBusy()
    fill(source, 2)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = (
        engine.create_job("memoryToMemory", source, target, settings={"TransientRetries": "10"}).id
        or ""
    )
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert 2 == execution.count_exported and 2 == len(target.list("User"))
