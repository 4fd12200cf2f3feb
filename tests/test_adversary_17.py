"""Adversarial tests for issue #17: creates in doubt (engine/cycle/_creates.py) and the
Retry-After back-off gate shared by concurrent export workers (engine/cycle/_context.py,
engine/cycle/_concurrent.py). Every test runs its cycles on a thread joined with a timeout,
so a deadlock shows as a failure, not a hang."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from connectors.base import Capability, TransientError
from connectors.memory import MemoryDirectory
from connectors.scim.target import ScimTarget
from engine import ManualClock, SqliteStateStore, SyncEngine, SystemClock
from engine.errors import LeaseLost
from engine.model import TaskExecutionResult, to_graph
from tests.conftest import fill, target_users

GUARD = 30.0  # seconds any one cycle may take before the test calls it a hang


def guarded(call: Any, timeout: float = GUARD) -> Any:
    """``call()`` on a daemon thread; fail (not hang) when it does not return in time."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"no return in {timeout} s: a deadlock or a busy wait"
    if errors:
        raise errors[0]
    return result[0]


def _flows(engine: SyncEngine, job_id: str, flows: str) -> None:
    schema = to_graph(engine.get_schema(job_id))
    schema["synchronizationRules"][0]["objectMappings"][0]["flowTypes"] = flows
    engine.update_schema(job_id, schema)


class PartialCreates(MemoryDirectory):
    """A create made of two requests, as a SCIM group's (POST, then member PATCHes): the
    next ``failing`` writes fail: a create applies every attribute but ``department`` and then
    fails, as a failing second request would (the object exists, incomplete); an update is
    refused (503, not applied)."""

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing

    def create(self, object_type: str, attributes: Any) -> str:
        if self.failing > 0 and "department" in attributes:
            self.failing -= 1
            first = {k: v for k, v in attributes.items() if k != "department"}
            super().create(object_type, first)
            raise TransientError("503 on the second request of the create (fault injected)")
        return super().create(object_type, attributes)

    def update(self, object_type: str, ref: str, delta: Any) -> None:
        if self.failing > 0:  # the service is still failing: refused, not applied
            self.failing -= 1
            raise TransientError("503 (fault injected)")
        super().update(object_type, ref, delta)


def _partial_job(
    tmp_path: Any, clock: ManualClock, failing: int, settings: dict[str, str]
) -> tuple[SyncEngine, str, MemoryDirectory, PartialCreates]:
    source, target = MemoryDirectory(), PartialCreates(failing)
    fill(source, 1)
    engine = SyncEngine(tmp_path / "s.db", clock)
    job = engine.create_job("memoryToMemory", source, target, settings=settings)
    assert job.id is not None
    return engine, job.id, source, target


def test_partial_create_escrowed_then_retried_without_update_flow_is_completed(
    tmp_path: Any, clock: ManualClock
) -> None:
    """What I did: a mapping with flowTypes "Add, Delete" (no Update); the create of a user
    applies everything but ``department`` and then fails transiently (a SCIM group's POST
    applied, its member PATCH failing) and the completing update of the in-cycle retry is
    refused too (TransientRetries 1), so the object is escrowed; then the target heals and
    the escrow is retried next cycles.

    What should happen: the create is completed, as it is when the fault clears within the
    cycle (create_after_doubt updates every mapped value whatever the flowTypes): the
    target user has its department.

    Was: the escrow retry goes through export's join path, which finds the object
    the create made and, "update" not being in flowTypes, links it without writing
    (_objects.export: ``if delta and "update" in mapping.flows``), storing the link with
    every desired value as exported; every later cycle sees no difference. The incomplete
    create is never completed: the department is missing for good, with a success log."""
    engine, job_id, _, target = _partial_job(tmp_path, clock, 2, {"TransientRetries": "1"})
    _flows(engine, job_id, "Add, Delete")
    engine.start(job_id)
    guarded(lambda: engine.run_cycle(job_id))
    assert len(target.list("User")) == 1  # one object, not two: the lookup held
    assert [e.anchor for e in engine.escrows(job_id)] == ["s000000"]
    assert target.failing == 0  # healed
    for _ in range(3):
        clock.advance(timedelta(days=1))
        guarded(lambda: engine.run_cycle(job_id))
    assert engine.escrows(job_id) == []
    (made,) = target_users(target).values()
    assert made.get("department") == "Sales", f"the create was never completed: {made}"


def test_partial_create_completed_in_cycle_even_without_update_flow(
    tmp_path: Any, clock: ManualClock
) -> None:
    """Evidence (passes): the same partial create, healed on the in-cycle retry, is
    completed although Update is not in flowTypes; the contrast with the test above."""
    engine, job_id, _, target = _partial_job(tmp_path, clock, 1, {"TransientRetries": "3"})
    _flows(engine, job_id, "Add, Delete")
    engine.start(job_id)
    guarded(lambda: engine.run_cycle(job_id))
    (made,) = target_users(target).values()
    assert made.get("department") == "Sales"


def test_lookup_failing_transiently_after_a_lost_create_is_retried(make_job: Any) -> None:
    """Evidence (passes): the create is applied and its answer lost, then the lookup that
    precedes the retry fails transiently twice: one object, completed, no escrow."""
    engine, job_id, _, target = make_job(users=3, settings={"TransientRetries": "4"})
    lost: list[str] = []

    def after(done: str, object_type: str, ref: str) -> None:
        if done == "create" and not lost:
            lost.append(ref)
            target.transient_failures = 2  # the next two calls (the lookups) fail too
            raise TransientError("no answer (fault injected after the write)")

    target.after_write = after
    execution = guarded(lambda: engine.run_cycle(job_id))
    assert execution.state is TaskExecutionResult.SUCCEEDED
    assert len(target.list("User")) == 3 and engine.escrows(job_id) == []


def test_every_answer_lost_until_escrow_then_retry_does_not_double(
    make_job: Any, clock: ManualClock
) -> None:
    """Evidence (passes): every create and update is applied and its answer lost, with four
    export workers, until retries run out: escrowed; the escrow retry of the next cycle
    (faults gone) finds and links each object: still one object per source object."""
    engine, job_id, _, target = make_job(
        users=6, settings={"TransientRetries": "2", "ExportConcurrency": "4"}
    )

    def after(done: str, object_type: str, ref: str) -> None:
        if done in ("create", "update"):
            raise TransientError(f"{done} {ref}: no answer (fault injected)")

    target.after_write = after
    guarded(lambda: engine.run_cycle(job_id))
    assert len(target.list("User")) == 6
    assert len(engine.escrows(job_id)) == 6
    target.after_write = None
    clock.advance(timedelta(days=1))
    guarded(lambda: engine.run_cycle(job_id))
    assert len(target.list("User")) == 6 and engine.escrows(job_id) == []


class Throttling(MemoryDirectory):
    """Parallel-writes memory target; the first create of each of the first ``throttled``
    users is refused 429 with ``retry_after`` (not applied), every create takes 5 ms."""

    capabilities = MemoryDirectory.capabilities | {Capability.PARALLEL_WRITES}

    def __init__(self, throttled: int, retry_after: float) -> None:
        super().__init__()
        self._throttled = {f"user{n}@example.org" for n in range(throttled)}
        self._refused: set[str] = set()
        self._guard = threading.Lock()
        self.retry_after = retry_after
        self.refusals = 0

    def create(self, object_type: str, attributes: Any) -> str:
        time.sleep(0.005)  # noqa: TID251 - a remote target's round trip
        name = attributes.get("userName")
        with self._guard:
            if name in self._throttled and name not in self._refused:
                self._refused.add(name)
                self.refusals += 1
                raise TransientError("429 Too Many Requests", retry_after=self.retry_after)
        return super().create(object_type, attributes)


def _throttled_job(tmp_path: Any, target: MemoryDirectory, users: int) -> tuple[SyncEngine, str]:
    source = MemoryDirectory()
    fill(source, users)
    engine = SyncEngine(tmp_path / "s.db", SystemClock())
    job = engine.create_job("memoryToMemory", source, target, settings={"ExportConcurrency": "4"})
    assert job.id is not None
    engine.start(job.id)
    return engine, job.id


def test_stop_during_a_long_retry_after_with_four_workers(tmp_path: Any) -> None:
    """Evidence (passes): a 429 Retry-After 30 s holds every worker at the gate; the runner's
    stop flag is raised 0.5 s later: the cycle stops within a few seconds (no deadlock, no
    wait for the window), the job stays started, and the next cycle converges with one
    object per source object and nothing escrowed."""
    target = Throttling(throttled=1, retry_after=30.0)
    engine, job_id = _throttled_job(tmp_path, target, 40)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    guarded(lambda: engine.run_cycle(job_id, stop=stop.is_set), timeout=10)
    assert time.monotonic() - began < 5
    assert len(target.list("User")) < 40  # it did stop before the end
    target.retry_after = 0.0
    guarded(lambda: engine.run_cycle(job_id))
    assert len(target_users(target)) == 40 and len(target.list("User")) == 40
    assert engine.escrows(job_id) == []
    engine.close()


def test_many_workers_at_the_gate_do_not_spin(tmp_path: Any) -> None:
    """Evidence (passes): eight 429s with Retry-After 1.5 s among four workers: the cycle
    waits about one window, and the process spends little CPU meanwhile (no busy wait)."""
    target = Throttling(throttled=8, retry_after=1.5)
    engine, job_id = _throttled_job(tmp_path, target, 12)
    cpu, wall = time.process_time(), time.monotonic()
    execution = guarded(lambda: engine.run_cycle(job_id))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert execution.count_exported == 12 and len(target.list("User")) == 12
    assert wall < 4.5, f"{wall:.1f} s"
    assert cpu < 0.5 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s: busy waiting"
    engine.close()


class Exploding(Throttling):
    """Throttles user0 (Retry-After 1 s) and raises a plain RuntimeError (a connector bug)
    from the create of user1, while user0's worker is waiting outside the lock."""

    def create(self, object_type: str, attributes: Any) -> str:
        if attributes.get("userName") == "user1@example.org":
            time.sleep(0.05)  # noqa: TID251 - after user0's 429
            raise RuntimeError("connector bug (fault injected)")
        return super().create(object_type, attributes)


def test_an_exception_while_the_lock_is_released(tmp_path: Any) -> None:
    """Evidence (passes): a worker's target call raises a non-connector exception while
    another waits out a Retry-After without the lock: no 'release unlocked lock', no hang;
    the bad object is escrowed, every other one is written."""
    target = Exploding(throttled=1, retry_after=1.0)
    engine, job_id = _throttled_job(tmp_path, target, 8)
    execution = guarded(lambda: engine.run_cycle(job_id))
    assert execution.state is not TaskExecutionResult.FAILED, execution
    assert len(target.list("User")) == 7
    assert [e.anchor for e in engine.escrows(job_id)] == ["s000001"]
    engine.close()


@pytest.mark.parametrize("workers", ["1", "4"])
def test_no_write_after_the_lease_expired_during_a_retry_after(
    tmp_path: Any, clock: ManualClock, workers: str
) -> None:
    """What I did: a 40 s lease (SyncEngine.lease_duration), four export workers, and a
    429 Retry-After 60 s (within MAX_RETRY_SLEEP) on the first create; before every target
    write a second runner (another host) tries to take the job's lease.

    What should happen: rule 3, "the runner stops writing to the target once its own expiry
    passes": either the wait keeps the lease renewed, or the runner stops (LeaseLost)
    before writing; no write is sent while another runner could hold the job.

    Was: CycleContext.wait renews once, before the sleep, for lease_duration
    (40 s), then sleeps 60 s in slices without renewing again, and the retried call is sent
    without a check_lease; with four workers those at the back-off gate (hold_off) neither
    renew nor check it either. The create at +60 s goes out on a lease that expired 20 s
    earlier, after the other runner took the job (fails with 1 worker and with 4)."""
    target = Throttling(throttled=1, retry_after=60.0)
    source = MemoryDirectory()
    fill(source, 12)
    engine = SyncEngine(tmp_path / "s.db", clock)
    engine.lease_duration = timedelta(seconds=40)
    job = engine.create_job(
        "memoryToMemory", source, target, settings={"ExportConcurrency": workers}
    )
    assert job.id is not None
    job_id = job.id
    engine.start(job_id)
    other = SqliteStateStore(tmp_path / "s.db")
    taken: list[str] = []

    def before(operation: str, object_type: str, ref: Any) -> None:
        if taken:
            return
        now = clock.now()
        if other.acquire_lease(job_id, "elsewhere:1:other", now, now + timedelta(minutes=5)):
            taken.append(f"{operation} at +{clock.monotonic():.0f} s")

    target.before_write = before
    try:
        guarded(lambda: engine.run_cycle(job_id))
    except LeaseLost:
        pass  # stopping is right; writing after the expiry is not
    other.close()
    engine.close()
    assert not taken, f"another runner took the lease and this one still wrote: {taken}"


class _SlowListing:
    """A SCIM client stand-in: groups in a dict; the index's listing (``attributes=``)
    reads its snapshot, then waits for ``release``; the first POST is applied and its
    answer lost (TransientError)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.listing_read = threading.Event()
        self.release = threading.Event()
        self.lose_next_post = True

    def get(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        if "attributes" in params:
            snapshot = [dict(g) for g in self.groups.values()]
            if not self.listing_read.is_set():
                self.listing_read.set()
                assert self.release.wait(GUARD)
            return {"Resources": snapshot, "totalResults": len(snapshot)}
        name = params["filter"].split('"')[1]
        found = [g for g in self.groups.values() if g.get("displayName") == name]
        return {"Resources": found, "totalResults": len(found)}

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        made = {"id": f"g{len(self.groups) + 1}", "displayName": body.get("displayName")}
        self.groups[made["id"]] = made
        if self.lose_next_post:
            self.lose_next_post = False
            raise TransientError("POST /Groups: no answer (fault injected after the write)")
        return made


def test_scim_find_index_rebuilt_across_a_lost_post_still_finds_the_group() -> None:
    """What I did: ScimTarget with its find index (find_cache_seconds 60) on a stand-in
    client. Worker B's find starts rebuilding the Group index (the listing has read the
    app, no group yet); worker A's create POSTs group G, which the app applies, and the
    answer is lost, so create drops the index (_forget) and raises TransientError; then B's
    listing returns and stores its index. A's retry looks G up, as create_after_doubt does.

    What should happen: the lookup finds the group the lost POST made (the commit's
    promise: "the next find asks the app"), so it is completed, not created twice.

    Was: ScimTarget._index stores the index it built from a listing that started
    before the POST, after the _forget (no generation check), stamped with the listing's
    start time; the retry's find trusts it, answers None, and the engine POSTs G again: two
    groups named G (displayName is not unique in SCIM)."""
    target = ScimTarget("http://127.0.0.1:9/scim/v2", "token")
    client = _SlowListing()
    target.client = client  # type: ignore[assignment]
    found_by_b: list[Any] = []
    b = threading.Thread(
        target=lambda: found_by_b.append(target.find("Group", "displayName", "Other")),
        daemon=True,
    )
    b.start()
    assert client.listing_read.wait(GUARD)
    try:
        target.create("Group", {"displayName": "G"})
        raise AssertionError("the POST's answer was to be lost")
    except TransientError:
        pass
    client.release.set()
    b.join(GUARD)
    assert not b.is_alive() and found_by_b == [None]
    assert len(client.groups) == 1
    assert target.find("Group", "displayName", "G") == "g1", "the lost POST's group is hidden"
