"""The contract every state store passes (memory and SQLite)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

import engine.store.sqlite as sqlite_module
from engine.errors import LeaseLost
from engine.model import Application, StatusCode, SynchronizationJob, SynchronizationStatus
from engine.password_values import seal
from engine.store import (
    Checkpoint,
    Escrow,
    JobRow,
    Link,
    LogRecord,
    SqliteStateStore,
    StagedDelete,
    StateStore,
    decode_values,
    encode_values,
)
from engine.store.base import Intent, IntentBatch, PruneBudget
from engine.store.snapshot import snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job_row(job_id: str = "j1", code: StatusCode = StatusCode.ACTIVE) -> JobRow:
    return JobRow(
        application_id="app",
        job=SynchronizationJob(id=job_id, template_id="t", status=SynchronizationStatus(code=code)),
        next_run=T0,
    )


def log(anchor: str) -> LogRecord:
    return LogRecord(
        job_id="j1",
        cycle_id="c1",
        change_id=f"c1.{anchor}",
        time=T0,
        action="Create",
        status="success",
        mapping="m",
        anchor=anchor,
        target_ref="r-" + anchor,
        attributes=("mail", "userName"),
    )


def test_jobs_round_trip(store: StateStore) -> None:
    """A saved job reads back equal, and its status code is queryable cheaply."""
    store.save_application(Application(id="app", display_name="A"))
    store.save_job(job_row())
    assert job_row() == store.get_job("j1")
    assert StatusCode.ACTIVE == store.job_code("j1")
    assert ["j1"] == [r.job.id for r in store.list_jobs("app")]
    assert [] == store.list_jobs("other")
    assert "A" == (store.get_application("app") or Application(id="")).display_name


def test_every_jobs_schedule_statuses_and_held_changes_in_one_read(store: StateStore) -> None:
    """What a scheduler's resync and a metrics scrape read for all jobs at once: (id, code,
    next run), (id, template, status) by id, and per job its escrows plus the staged deletes
    due by ``now`` (not one still waiting out its grace period)."""
    paused = attrs.evolve(job_row("j2", StatusCode.PAUSED), next_run=None)
    store.save_job(job_row("j1"))
    store.save_job(paused)
    assert [("j1", StatusCode.ACTIVE, T0), ("j2", StatusCode.PAUSED, None)] == (
        store.job_schedule()
    )
    assert [
        ("j1", "t", SynchronizationStatus(code=StatusCode.ACTIVE)),
        ("j2", "t", SynchronizationStatus(code=StatusCode.PAUSED)),
    ] == store.job_statuses()
    escrow = Escrow(mapping="m", anchor="a1", attempts=1, first_failed=T0, next_retry=T0, error="e")
    staged = StagedDelete(
        mapping="m", anchor="a2", target_type="User", target_ref="r2", soft=False, reason="x"
    )
    later = attrs.evolve(staged, anchor="a3", due=T0 + timedelta(days=1))
    store.commit("j1", Checkpoint(escrows=[escrow, attrs.evolve(escrow, parked=True, anchor="a4")]))
    store.commit("j2", Checkpoint(staged=[staged, later]))
    assert {"j1": 2, "j2": 1} == store.held_counts(T0)
    assert {"j1": 2, "j2": 2} == store.held_counts(T0 + timedelta(days=1))


def test_secrets_are_replaced_whole(store: StateStore) -> None:
    """Saving secrets replaces the whole set, as Graph's PUT does."""
    store.save_secrets("app", {"A": "1", "B": "2"})
    store.save_secrets("app", {"B": "3"})
    assert {"B": "3"} == store.get_secrets("app")


def test_commit_applies_everything_together(store: StateStore) -> None:
    """Links, escrows, staged deletes, logs and the watermark land in one commit."""
    store.save_job(job_row())
    escrow = Escrow(
        mapping="m",
        anchor="a2",
        attempts=1,
        first_failed=T0,
        next_retry=T0,
        error="ObjectError: no",
    )
    staged = StagedDelete(
        mapping="m",
        anchor="a3",
        target_type="User",
        target_ref="r3",
        soft=True,
        reason="out of scope",
    )
    store.commit(
        "j1",
        Checkpoint(
            mapping="m",
            watermark="w1",
            links=[Link(mapping="m", anchor="a1", target_ref="r1", exported="{}")],
            escrows=[escrow],
            staged=[staged],
            logs=[log("a1")],
        ),
    )
    assert "w1" == store.get_watermark("j1", "m")
    assert {
        "a1": Link(mapping="m", anchor="a1", target_ref="r1", exported="{}")
    } == store.get_links("j1", "m", ["a1", "zz"])
    assert "a1" == store.anchor_for_ref("j1", "m", "r1")
    assert [escrow] == store.get_escrows("j1")
    assert [staged] == store.staged_deletes("j1")
    assert [log("a1")] == store.provisioning_logs("j1")
    assert {"m": 1} == store.count_links("j1")


def test_commit_removes(store: StateStore) -> None:
    """unlinks, unescrows and unstaged remove what they name."""
    store.save_job(job_row())
    store.commit(
        "j1",
        Checkpoint(
            links=[Link(mapping="m", anchor="a1", target_ref="r1", exported="{}")],
            escrows=[
                Escrow(
                    mapping="m", anchor="a1", attempts=1, first_failed=T0, next_retry=T0, error="e"
                )
            ],
            staged=[
                StagedDelete(
                    mapping="m",
                    anchor="a1",
                    target_type="User",
                    target_ref="r1",
                    soft=False,
                    reason="gone",
                )
            ],
        ),
    )
    store.commit(
        "j1", Checkpoint(unlinks=[("m", "a1")], unescrows=[("m", "a1")], unstaged=[("m", "a1")])
    )
    assert {} == store.get_links("j1", "m", ["a1"])
    assert store.anchor_for_ref("j1", "m", "r1") is None
    assert [] == store.get_escrows("j1")
    assert [] == store.staged_deletes("j1")


def test_due_escrows_respect_time_and_parking(store: StateStore) -> None:
    """Only unparked escrows whose retry time has come are due, oldest first."""
    store.save_job(job_row())
    store.commit(
        "j1",
        Checkpoint(
            escrows=[
                Escrow(
                    mapping="m",
                    anchor="late",
                    attempts=1,
                    first_failed=T0,
                    next_retry=T0 + timedelta(hours=1),
                    error="e",
                ),
                Escrow(
                    mapping="m", anchor="due", attempts=1, first_failed=T0, next_retry=T0, error="e"
                ),
                Escrow(
                    mapping="m",
                    anchor="parked",
                    attempts=9,
                    first_failed=T0,
                    next_retry=T0,
                    error="e",
                    parked=True,
                ),
            ]
        ),
    )
    assert ["due"] == [e.anchor for e in store.due_escrows("j1", "m", T0, 10)]
    later = T0 + timedelta(hours=2)
    assert ["due", "late"] == [e.anchor for e in store.due_escrows("j1", "m", later, 10)]


def test_reset_and_delete(store: StateStore) -> None:
    """reset drops what it names; delete_job drops every trace of the job."""
    store.save_job(job_row())
    store.commit(
        "j1",
        Checkpoint(
            mapping="m",
            watermark="w",
            links=[Link(mapping="m", anchor="a", target_ref="r", exported="{}")],
            escrows=[
                Escrow(
                    mapping="m", anchor="b", attempts=1, first_failed=T0, next_retry=T0, error="e"
                )
            ],
            logs=[log("a")],
        ),
    )
    store.reset("j1", watermarks=True, escrows=False, links=False)
    assert store.get_watermark("j1", "m") is None
    assert store.get_escrows("j1") and store.get_links("j1", "m", ["a"])
    store.reset("j1", watermarks=False, escrows=True, links=True)
    assert not store.get_escrows("j1") and not store.get_links("j1", "m", ["a"])
    store.delete_job("j1")
    assert store.get_job("j1") is None
    assert [] == store.provisioning_logs("j1")


def test_logs_filter_by_cycle_and_limit(store: StateStore) -> None:
    """Provisioning logs are queryable per job and cycle, newest kept under a limit."""
    store.save_job(job_row())
    store.commit("j1", Checkpoint(logs=[log(str(n)) for n in range(5)]))
    assert ["3", "4"] == [r.anchor for r in store.provisioning_logs("j1", limit=2)]
    assert 5 == len(store.provisioning_logs("j1", cycle_id="c1"))
    assert [] == store.provisioning_logs("j1", cycle_id="other")


def test_log_records_keep_their_names_and_values(store: StateStore) -> None:
    """A record's names and rendered values (issue 18) read back as they were written, from
    both the record list and the batches the audit API reads."""
    store.save_job(job_row())
    named = log("a")._replace(  # attributes mail, userName: old and new of both
        source_name="Ada Lovelace",
        source_key="uid=ada,ou=people,dc=example,dc=org",
        target_name="Ada Lovelace",
        new=("new@example.org", None),
        old=("old@example.org", "*****"),
    )
    store.commit("j1", Checkpoint(logs=[named, log("b")]))
    assert [named, log("b")] == store.provisioning_logs("j1")
    assert [named, log("b")] == [r for _, records in store.log_batches("j1") for r in records]


def test_log_batches_come_newest_first_under_their_bounds(store: StateStore) -> None:
    """log_batches: every record once, each batch's bound no older than its records and no
    newer than the previous bound (what lets the audit API stop reading early)."""
    store.save_job(job_row())
    times = [T0 + timedelta(seconds=s) for s in (5, 1, 9, 9, 3, 7, 2, 8)]
    for n, chunk in enumerate([times[i : i + 3] for i in range(0, len(times), 3)] * 20):
        logs = [log(f"{n}.{k}")._replace(time=t) for k, t in enumerate(chunk)]
        store.commit("j1", Checkpoint(logs=logs))
    batches = list(store.log_batches("j1"))
    seen = [r.anchor for _, records in batches for r in records]
    assert sorted(seen) == sorted(r.anchor for r in store.provisioning_logs("j1", limit=10_000))
    assert len(seen) == len(set(seen)) == 160
    previous = None
    for bound, records in batches:
        assert bound is not None and all(r.time <= bound for r in records)
        assert previous is None or bound <= previous
        previous = bound
    assert list(store.log_batches("nobody")) == []


def test_update_job_is_atomic_and_a_raising_change_writes_nothing(store: StateStore) -> None:
    """update_job: concurrent read-modify-writes from threads never lose one another's
    change, and a change that raises leaves the row as it was."""
    store.save_job(job_row())

    def bump(row: JobRow) -> JobRow:
        status = row.job.status or SynchronizationStatus()
        count = status.count_successive_complete_failures + 1
        job = attrs.evolve(
            row.job, status=attrs.evolve(status, count_successive_complete_failures=count)
        )
        return attrs.evolve(row, job=job)

    def many() -> None:
        for _ in range(50):
            store.update_job("j1", bump)

    threads = [threading.Thread(target=many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = store.get_job("j1")
    assert row is not None and row.job.status is not None
    assert row.job.status.count_successive_complete_failures == 200

    def refuse(row: JobRow) -> JobRow:
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.update_job("j1", refuse)
    assert store.get_job("j1") == row
    assert store.update_job("nobody", bump) is None


def test_values_encoding_round_trips() -> None:
    """Equal values in the same order give equal strings; binary and lists survive."""
    a = encode_values({"b": [1, "x"], "a": b"\x00\xff"})
    assert a == encode_values({"b": [1, "x"], "a": b"\x00\xff"})
    assert {"a": b"\x00\xff", "b": [1, "x"]} == decode_values(a)


def test_sqlite_schema_is_versioned_and_migrates_once(tmp_path: Path) -> None:
    """A new file is migrated to the current version; reopening does not re-run migrations."""
    path = tmp_path / "v.db"
    first = SqliteStateStore(path)
    version = first.schema_version
    first.save_job(job_row())
    first.close()
    again = SqliteStateStore(path)
    assert version == again.schema_version >= 1
    assert again.get_job("j1") is not None
    again.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    """A state file from a newer syncjob is refused rather than misread."""
    path = tmp_path / "n.db"
    SqliteStateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteStateStore(path)


def test_sqlite_commit_is_atomic(tmp_path: Path) -> None:
    """A commit that fails half-way leaves nothing of itself behind."""
    store = SqliteStateStore(tmp_path / "a.db")
    store.save_job(job_row())
    bad = Checkpoint(
        mapping="m",
        watermark="w",
        links=[Link(mapping="m", anchor="a", target_ref="r", exported="{}")],
        logs=[log("a")],
    )
    bad.logs[0] = None  # type: ignore[call-overload]  # makes the insert fail after the links
    with pytest.raises(AttributeError):
        store.commit("j1", bad)
    assert store.get_watermark("j1", "m") is None
    assert {} == store.get_links("j1", "m", ["a"])
    store.close()


def test_link_counts_follow_inserts_replacements_and_removals(store: StateStore) -> None:
    """count_links counts distinct links: a re-exported link is not counted twice."""
    store.save_job(job_row())
    link = Link(mapping="m", anchor="a", target_ref="r", exported="{}")
    store.commit("j1", Checkpoint(links=[link, Link("m", "b", "r2", "{}")]))
    store.commit("j1", Checkpoint(links=[link._replace(exported='{"x":1}')]))
    assert {"m": 2} == store.count_links("j1")
    store.commit("j1", Checkpoint(unlinks=[("m", "a"), ("m", "nope")]))
    assert {"m": 1} == store.count_links("j1")
    store.reset("j1", watermarks=False, escrows=False, links=True)
    assert {} == store.count_links("j1")


def test_prune_logs_drops_only_older_records(store: StateStore) -> None:
    """Retention drops records older than the cut-off and keeps the rest."""
    store.save_job(job_row())
    old = [log("old")]
    new = [log("new")._replace(cycle_id="c2", time=T0 + timedelta(days=40))]
    store.commit("j1", Checkpoint(logs=old))
    store.commit("j1", Checkpoint(logs=new))
    assert 1 == store.prune_logs("j1", T0 + timedelta(days=10))
    assert ["new"] == [r.anchor for r in store.provisioning_logs("j1")]


def _cycle_logs(cycle: int, count: int, at: datetime = T0) -> list[LogRecord]:
    return [
        log(f"{cycle}.{n}")._replace(cycle_id=f"c{cycle}", time=at + timedelta(minutes=cycle))
        for n in range(count)
    ]


def test_log_cap_holds_over_many_cycles(store: StateStore) -> None:
    """ProvisioningLogMaxRecords: pruned after every cycle, the log stays within the cap
    (whole checkpoints, the oldest first) and keeps the newest records; the cheap count
    agrees with the records there are."""
    store.save_job(job_row())
    store.prune_budget = PruneBudget(rows=3, records=10, deletes=2)  # type: ignore[attr-defined]
    for cycle in range(60):
        store.commit("j1", Checkpoint(logs=_cycle_logs(cycle, 1 + cycle % 7)))
        store.prune_logs("j1", T0 - timedelta(days=1), keep=40)
        kept = store.provisioning_logs("j1", limit=10_000)
        assert len(kept) == store.count_logs("j1") <= 40
    assert kept[-1].anchor == "59.3"  # the newest stay
    assert len(kept) > 40 - 7  # whole checkpoints: under the cap by less than one


def test_log_prune_is_bounded_per_call(store: StateStore) -> None:
    """A backlog (a lowered cap, a burst of cycles) is worked off over several calls: no
    call drops more than its budget, none more than ``rows`` rows or ``records`` records
    in one delete (SQLite: each its own transaction), by age or by count."""
    store.save_job(job_row())
    for cycle in range(100):
        store.commit("j1", Checkpoint(logs=_cycle_logs(cycle, 5)))
    store.prune_budget = PruneBudget(rows=4, records=12, deletes=3)  # type: ignore[attr-defined]
    deletes: list[str] = []
    if isinstance(store, SqliteStateStore):
        store._db.set_trace_callback(
            lambda sql: deletes.append(sql) if sql.startswith("DELETE") else None
        )
    calls = 0
    while store.prune_logs("j1", T0 + timedelta(minutes=50)):
        calls += 1
    assert 250 == store.count_logs("j1")  # 10 records a delete, 3 deletes a call
    assert calls == 9  # 250 / 30, rounded up
    assert [r.cycle_id for r in store.provisioning_logs("j1", limit=1)] == ["c99"]
    while store.prune_logs("j1", T0, keep=100):
        calls += 1
        assert store.count_logs("j1") >= 100
    assert 100 == store.count_logs("j1")
    assert calls == 9 + 5
    if isinstance(store, SqliteStateStore):
        store._db.set_trace_callback(None)
        # (the trace repeats a statement for the triggers it runs)
        assert len(set(deletes)) == 40  # 80 rows, two (ten records) a delete
        assert all(sql.count(",") == 1 for sql in deletes)


def test_sqlite_log_totals_survive_migration_and_job_delete(tmp_path: Path) -> None:
    """A file whose log was written before migration 8 counts it once migrated; a deleted
    job's total goes with it."""
    path = tmp_path / "v7.db"
    original = sqlite_module.MIGRATIONS[:]
    sqlite_module.MIGRATIONS[:] = original[:7]
    try:
        old = SqliteStateStore(path)
        old.save_job(job_row())
        old.commit("j1", Checkpoint(logs=_cycle_logs(1, 3)))
        old.commit("j1", Checkpoint(logs=_cycle_logs(2, 4)))
        old.close()
    finally:
        sqlite_module.MIGRATIONS[:] = original
    migrated = SqliteStateStore(path)
    assert 7 == migrated.count_logs("j1")
    assert 3 == migrated.prune_logs("j1", T0, keep=4)
    migrated.delete_job("j1")
    assert 0 == migrated.count_logs("j1")
    assert [] == migrated._db.execute("SELECT * FROM log_totals").fetchall()
    migrated.close()


def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    """A state file made by the first schema is migrated forward and keeps its data."""
    path = tmp_path / "v1.db"
    first_only = sqlite_module.MIGRATIONS[:1]
    original = sqlite_module.MIGRATIONS[:]
    sqlite_module.MIGRATIONS[:] = first_only
    try:
        old = SqliteStateStore(path)
        assert 1 == old.schema_version
        old.save_job(job_row())
        old.close()
    finally:
        sqlite_module.MIGRATIONS[:] = original
    migrated = SqliteStateStore(path)
    assert len(original) == migrated.schema_version
    assert migrated.get_job("j1") is not None
    migrated.commit("j1", Checkpoint(logs=[log("a")]))
    assert 1 == migrated.prune_logs("j1", T0 + timedelta(days=1))
    migrated.close()


def test_intents_are_pending_until_a_checkpoint_clears_them(store: StateStore) -> None:
    """Write-ahead intents read back as written (upserts with their matching values, updates,
    deletes; updates with the matching values they send, so a rename can be found again)
    until a checkpoint with clear_intents; reset of links drops them too."""
    batch = IntentBatch("m", "User", ("userName",))
    batch.upsert("a", ["x", "y"])  # one matching attribute: its value as is
    batch.updates.append(("b", "r-b", "new-name"))
    batch.deletes.append(("c", "r-c", ""))
    store.write_intents("j1", [batch], None)
    assert [
        Intent("m", "a", "upsert", "User", None, (("userName", "x"),)),
        Intent("m", "b", "update", "User", "r-b", (("userName", "new-name"),)),
        Intent("m", "c", "delete", "User", "r-c"),
    ] == store.pending_intents("j1")
    store.commit("j1", Checkpoint(clear_intents=True))
    assert [] == store.pending_intents("j1")
    store.write_intents("j1", [batch], None)
    store.reset("j1", watermarks=False, escrows=False, links=True)
    assert [] == store.pending_intents("j1")


def test_leases_fence_out_an_earlier_holder(store: StateStore) -> None:
    """One holder at a time; an expired lease is taken over with a new token; the earlier
    holder's commits and intents are refused; a release frees the job at once."""
    first = store.acquire_lease("j1", "a", T0, T0 + timedelta(minutes=5))
    assert first is not None
    assert store.acquire_lease("j1", "b", T0, T0 + timedelta(minutes=5)) is None
    again = store.acquire_lease("j1", "a", T0, T0 + timedelta(minutes=5))  # same holder
    assert again is not None and again.token > first.token
    later = T0 + timedelta(minutes=6)
    second = store.acquire_lease("j1", "b", later, later + timedelta(minutes=5))
    assert second is not None and second.token > again.token
    with pytest.raises(LeaseLost):
        store.commit("j1", Checkpoint(mapping="m", watermark="1", lease=again))
    with pytest.raises(LeaseLost):
        store.write_intents("j1", [], again)
    assert store.get_watermark("j1", "m") is None
    store.commit("j1", Checkpoint(mapping="m", watermark="1", lease=second))
    store.release_lease(second)
    assert store.acquire_lease("j1", "a", later, later + timedelta(minutes=5)) is not None


def test_reverse_index_of_references(store: StateStore) -> None:
    """A checkpoint's references replace the referrer's entries; referrers() finds them by
    referenced anchor; an unlink drops the referrer's entries."""
    store.commit(
        "j1",
        Checkpoint(
            links=[Link("users", "r1", "t1", "{}"), Link("groups", "g1", "t9", "{}")],
            references=[
                ("users", "r1", (("users", "boss"),)),
                ("groups", "g1", (("users", "boss"), ("users", "r1"))),
            ],
        ),
    )
    assert [("groups", "g1"), ("users", "r1")] == sorted(store.referrers("j1", "users", ["boss"]))
    assert [("groups", "g1")] == store.referrers("j1", "users", ["r1"])
    store.commit("j1", Checkpoint(references=[("groups", "g1", (("users", "r1"),))]))
    assert [("users", "r1")] == store.referrers("j1", "users", ["boss"])
    store.commit("j1", Checkpoint(unlinks=[("users", "r1")]))
    assert [] == store.referrers("j1", "users", ["boss"])
    assert [("groups", "g1")] == store.referrers("j1", "users", ["r1"])


def test_referenced_values_by_prefix(store: StateStore) -> None:
    """referenced_from() lists what the index names under one owner with a prefix (the
    cycle's dangling reference names), once each, and forgets what no referrer names."""
    assert [] == store.referenced_from("j1", "users", "\x1fname:")
    store.commit(
        "j1",
        Checkpoint(
            links=[Link("groups", "g1", "t1", "{}"), Link("groups", "g2", "t2", "{}")],
            references=[
                ("groups", "g1", (("users", "a1"), ("users", "\x1fname:uid=b"))),
                ("groups", "g2", (("users", "\x1fname:uid=b"), ("users", "\x1fname:uid=c"))),
            ],
        ),
    )
    found = store.referenced_from("j1", "users", "\x1fname:")
    assert ["\x1fname:uid=b", "\x1fname:uid=c"] == found
    assert [] == store.referenced_from("j1", "groups", "\x1fname:")
    store.commit("j1", Checkpoint(references=[("groups", "g2", (("users", "a1"),))]))
    assert ["\x1fname:uid=b"] == store.referenced_from("j1", "users", "\x1fname:")


def test_a_sweep_lists_the_links_a_full_read_did_not_see(store: StateStore) -> None:
    """Between sweep_start and sweep_end, unseen_links pages through the links not seen."""
    store.commit("j1", Checkpoint(links=[Link("m", a, "t" + a, "{}") for a in "abcde"]))
    assert not store.sweeping("j1", "m")
    store.commit("j1", Checkpoint(mapping="m", sweep_start=True, seen=["a", "c"]))
    store.commit("j1", Checkpoint(mapping="m", seen=["e"]))
    assert store.sweeping("j1", "m")
    assert ["b"] == [link.anchor for link in store.unseen_links("j1", "m", "", 1)]
    assert ["d"] == [link.anchor for link in store.unseen_links("j1", "m", "b", 5)]
    store.commit("j1", Checkpoint(mapping="m", sweep_start=True, seen=["b"]))  # starts anew
    assert ["a", "c", "d", "e"] == [x.anchor for x in store.unseen_links("j1", "m", "", 9)]
    store.commit("j1", Checkpoint(mapping="m", sweep_end=True))
    assert not store.sweeping("j1", "m")


def members(count: int, start: int = 0) -> list[str]:
    return [f"uid=u{n:06d},ou=people" for n in range(start, start + count)]


def group_link(values: list[str], prefix: str = "") -> Link:
    return Link("m", "g", "cn=g", prefix + encode_values({"cn": "g", "member": values}))


def test_a_large_group_reads_back_as_written(store: StateStore) -> None:
    """A link whose exported values hold a large sorted list (a big group's members) reads
    back equal, known or unknown, through get_links and after a change of one member."""
    for link in (group_link(members(300)), group_link(members(300), "?")):
        store.commit("j1", Checkpoint(links=[link]))
        assert {"g": link} == store.get_links("j1", "m", ["g"])
    changed = group_link(members(299) + members(2, 400))
    store.commit("j1", Checkpoint(links=[changed]))
    assert {"g": changed} == store.get_links("j1", "m", ["g"])
    assert {"g": "cn=g"} == store.get_refs("j1", "m", ["g", "other"])
    store.commit("j1", Checkpoint(links=[group_link(members(3))]))  # small again
    assert {"g": group_link(members(3))} == store.get_links("j1", "m", ["g"])


def value_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM link_values").fetchone()[0])
    finally:
        db.close()


def test_one_new_member_of_a_large_group_writes_one_row(tmp_path: Path) -> None:
    """The SQLite store keeps a large list one row per value: one new member is one row, not
    the whole list again; another process's writes are seen (its cache is not trusted then);
    unlinking or a reset drops the rows."""
    store = SqliteStateStore(tmp_path / "s.db")
    store.commit("j1", Checkpoint(links=[group_link(members(5000))]))
    assert value_rows(tmp_path / "s.db") == 5000
    stored = sqlite3.connect(tmp_path / "s.db").execute("SELECT exported FROM links").fetchone()
    assert len(stored[0]) < 100  # the list is in the rows, not in the links row
    db = store._db  # noqa: SLF001 (counting what one commit changes)
    before = db.total_changes
    store.commit("j1", Checkpoint(links=[group_link(members(5001))]))
    assert db.total_changes - before <= 3  # the links row, one value row (and the count)
    other = SqliteStateStore(tmp_path / "s.db")  # another process changes the group
    other.commit("j1", Checkpoint(links=[group_link(members(4990))]))
    other.close()
    store.commit("j1", Checkpoint(links=[group_link(members(4990) + members(1, 9000))]))
    assert {"g": group_link(members(4990) + members(1, 9000))} == store.get_links("j1", "m", ["g"])
    assert value_rows(tmp_path / "s.db") == 4991
    store.commit("j1", Checkpoint(unlinks=[("m", "g")]))
    assert value_rows(tmp_path / "s.db") == 0
    store.commit("j1", Checkpoint(links=[group_link(members(100))]))
    store.reset("j1", watermarks=True, escrows=True, links=True)
    assert value_rows(tmp_path / "s.db") == 0
    store.close()


def test_a_large_referrer_writes_only_its_changed_references(tmp_path: Path) -> None:
    """The reverse index of a group naming 5,000 members changes by one row per member."""
    store = SqliteStateStore(tmp_path / "s.db")
    named = tuple(("users", f"a{n}") for n in range(5000))
    store.commit("j1", Checkpoint(references=[("m", "g", named)]))
    db = store._db  # noqa: SLF001
    before = db.total_changes
    store.commit("j1", Checkpoint(references=[("m", "g", (*named[1:], ("users", "new")))]))
    assert db.total_changes - before == 2
    assert store.referrers("j1", "users", ["a0"]) == []
    assert store.referrers("j1", "users", ["new"]) == [("m", "g")]
    store.close()


def test_refs_of_a_big_group_follow_every_write(tmp_path: Path) -> None:
    """get_refs for thousands of anchors (a big group's members) reads the scope once, then
    follows this store's own writes and sees another process's."""
    store = SqliteStateStore(tmp_path / "s.db")
    anchors = [f"a{n:05d}" for n in range(2100)]
    store.commit("j1", Checkpoint(links=[Link("u", a, f"r-{a}", "{}") for a in anchors]))
    assert store.get_refs("j1", "u", anchors) == {a: f"r-{a}" for a in anchors}
    store.commit("j1", Checkpoint(links=[Link("u", "a00001", "moved", "{}")],
                                  unlinks=[("u", "a00002")]))  # fmt: skip
    refs = store.get_refs("j1", "u", anchors)
    assert (refs["a00001"], "a00002" in refs, len(refs)) == ("moved", False, 2099)
    other = SqliteStateStore(tmp_path / "s.db")
    other.commit("j1", Checkpoint(links=[Link("u", "a00003", "elsewhere", "{}")]))
    other.close()
    assert store.get_refs("j1", "u", anchors)["a00003"] == "elsewhere"
    store.close()


def test_staged_deletes_keep_their_due_time(store: StateStore) -> None:
    """A delete waiting out DeleteGracePeriod reads back with its due time; staged again (the
    same object) it takes the new row's, None included."""
    waiting = StagedDelete(
        mapping="m",
        anchor="a1",
        target_type="User",
        target_ref="r1",
        soft=False,
        reason="deleted in source",
        due=T0 + timedelta(days=7, microseconds=5),
    )
    now = attrs.evolve(waiting, anchor="a2", target_ref="r2")
    now = attrs.evolve(now, due=None)
    store.commit("j1", Checkpoint(staged=[waiting, now]))
    assert [waiting, now] == store.staged_deletes("j1")
    store.commit("j1", Checkpoint(staged=[attrs.evolve(waiting, due=None)]))
    assert [None, None] == [s.due for s in store.staged_deletes("j1")]


def test_sqlite_migration_6_adds_due_to_staged_deletes(tmp_path: Path) -> None:
    """Staged deletes of a file made before DeleteGracePeriod are due at once after it."""
    path = tmp_path / "v5.db"
    original = sqlite_module.MIGRATIONS[:]
    sqlite_module.MIGRATIONS[:] = original[:5]
    try:
        SqliteStateStore(path).close()
    finally:
        sqlite_module.MIGRATIONS[:] = original
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO staged_deletes VALUES ('j1', 'm', 'a1', 'User', 'r1', 0, 'gone')")
    db.close()
    migrated = SqliteStateStore(path)
    assert len(original) == migrated.schema_version
    [staged] = migrated.staged_deletes("j1")
    assert ("a1", None) == (staged.anchor, staged.due)
    migrated.close()


def test_value_key_is_the_stores_own_and_stable(store: StateStore, tmp_path: Path) -> None:
    """One random key per store, the same at every call (a SQLite file keeps it: a reopened
    store and a plan's snapshot digest passwords as the file did)."""
    key = store.value_key()
    assert len(key) == 32 and key == store.value_key()
    assert snapshot(store).value_key() == key
    if isinstance(store, SqliteStateStore):
        for path, same in ((store.path, True), (tmp_path / "other.db", False)):
            other = SqliteStateStore(path)
            assert (other.value_key() == key) is same
            other.close()


def test_sqlite_migration_7_seals_passwords_kept_in_clear(tmp_path: Path) -> None:
    """Links written before password digests held passwords in clear: the migration that
    adds the file's key digests them, leaves every other value as it was, and leaves no
    clear password in the file's bytes (WAL included)."""
    path = tmp_path / "v6.db"
    original = sqlite_module.MIGRATIONS[:]
    sqlite_module.MIGRATIONS[:] = original[:6]
    try:
        old = SqliteStateStore(path)
        links = [
            Link("m", "a1", "r1", encode_values({"cn": "a1", "userPassword": "Clear-pass-1"})),
            Link("m", "a2", "r2", "?" + encode_values({"unicodePwd": "Clear-pass-2"})),
            Link("m", "a3", "r3", encode_values({"cn": "a3", "userCertificate": [b"\x01"]})),
        ]
        old.commit("j1", Checkpoint(links=links))
        old.close()
    finally:
        sqlite_module.MIGRATIONS[:] = original
    migrated = SqliteStateStore(path)
    assert len(original) == migrated.schema_version
    key = migrated.value_key()
    found = migrated.get_links("j1", "m", ["a1", "a2", "a3"])
    assert decode_values(found["a1"].exported) == {
        "cn": "a1",
        "userPassword": seal(key, "Clear-pass-1"),
    }
    assert found["a2"].exported == "?" + encode_values({"unicodePwd": seal(key, "Clear-pass-2")})
    assert found["a3"] == links[2]
    migrated.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("v6.db"))
    assert b"Clear-pass" not in data and b"userCertificate" in data
