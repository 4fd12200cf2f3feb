"""Property: whatever the source does and wherever a crash hits, recovery converges exactly.

Seeded random rounds: random source operations, a cycle killed at a random target write or
store commit (write-ahead intents included), more random source operations while the engine
is down, then a new engine on the same state file. After recovery the target must equal the
source mapped by the memoryToMemory template: one object per live source object, no extra
object, no stale value, no escrow left.

A third of the seeds run with DeleteGracePeriod. CI runs ``CRASH_SEEDS`` seeds (default 40);
run many more with
``SYNCJOB_CRASH_SEEDS=2000 .venv/bin/python -m pytest tests/test_crash_property.py``.
References are kept the way Active Directory keeps them (a deleted user leaves every group
and every report's manager in the same change); dangling references are issue #8's subject.
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryDirectory
from engine import ManualClock, SqliteStateStore, SyncEngine
from engine.store import Checkpoint, encode_values
from engine.store.base import Intent, IntentBatch, Lease
from tests.test_proofs import Crash, arm, disarm

CRASH_SEEDS = int(os.environ.get("SYNCJOB_CRASH_SEEDS", "40"))
USER_KEYS = ("userName", "displayName", "mail", "department", "jobTitle", "city")


class CrashingStore(SqliteStateStore):
    """Dies before or after its n-th commit or write-ahead record."""

    crash_at: tuple[int, str] | None = None
    calls = 0

    def _tick(self, when: str) -> None:
        if self.crash_at == (self.calls, when):
            raise Crash

    def commit(self, job_id: str, checkpoint: Checkpoint) -> None:
        self.calls += 1
        self._tick("before")
        super().commit(job_id, checkpoint)
        self._tick("after")

    def write_intents(self, job_id: str, intents: Any, lease: Lease | None) -> None:
        self.calls += 1
        self._tick("before")
        super().write_intents(job_id, intents, lease)
        self._tick("after")


class World:
    """The source directory and the random operations a real directory sees."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.source = MemoryDirectory()
        self.names = itertools.count()
        self.anchors = itertools.count()
        self.deleted: dict[str, dict[str, Any]] = {}
        for _ in range(12):
            self.add_user()
        for g in range(3):
            members = rng.sample(sorted(self.users()), 4)
            self.source.put("Group", f"g{g}", {"displayName": f"Group {g}", "members": members})

    def users(self) -> dict[str, dict[str, Any]]:
        return self.source.list("User")

    def free_name(self) -> str:
        return f"u{next(self.names)}@example.org"

    def add_user(self, anchor: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        anchor = anchor or f"a{next(self.anchors):04d}"
        name = self.free_name()
        attributes = attributes or {
            "userName": name,
            "displayName": f"User {name}",
            "mail": name,
            "department": self.rng.choice(["Sales", "Ops", "R&D"]),
            "city": self.rng.choice(["Oslo", "Lima"]),
        }
        users = self.users()
        if users and self.rng.random() < 0.4:
            attributes["manager"] = self.rng.choice(sorted(users))
        self.source.put("User", anchor, attributes)

    def delete_user(self, anchor: str) -> None:
        self.deleted[anchor] = dict(self.users()[anchor])
        self.source.remove("User", anchor)
        for other, attributes in self.users().items():  # AD: references go with the object
            if attributes.get("manager") == anchor:
                self.source.put(
                    "User", other, {k: v for k, v in attributes.items() if k != "manager"}
                )
        for group, attributes in self.source.list("Group").items():
            if anchor in attributes.get("members", []):
                members = [m for m in attributes["members"] if m != anchor]
                self.source.put("Group", group, {**attributes, "members": members})

    def taken(self) -> set[str]:
        return {a["userName"].lower() for a in self.users().values()}

    def step(self) -> None:
        """One random source operation."""
        rng, users = self.rng, self.users()
        anchors = sorted(users)
        op = rng.choice(
            [
                "add",
                "modify",
                "rename",
                "drop",
                "delete",
                "readd",
                "readd_new",
                "manager",
                "member",
                "rehire",
                "group_text",
            ]
        )
        if op == "add" or not anchors:
            self.add_user()
            return
        anchor = rng.choice(anchors)
        attributes = dict(users[anchor])
        if op == "modify":
            attributes["displayName"] = f"Changed {rng.randrange(10**6)}"
            attributes["jobTitle"] = rng.choice(["Engineer", "Analyst"])
            self.source.put("User", anchor, attributes)
        elif op == "rename":
            attributes["userName"] = self.free_name()
            self.source.put("User", anchor, attributes)
        elif op == "drop":
            for key in ("department", "city", "jobTitle", "manager"):
                attributes.pop(key, None)
            self.source.put("User", anchor, attributes)
        elif op == "delete":
            self.delete_user(anchor)
        elif op in ("readd", "readd_new") and self.deleted:
            old_anchor = rng.choice(sorted(self.deleted))
            old = self.deleted.pop(old_anchor)
            old.pop("manager", None)
            if op == "readd_new" or old["userName"].lower() in self.taken():
                old = {**old, "userName": self.free_name(), "department": "Finance"}
            self.source.put("User", old_anchor, old)
        elif op == "manager":
            if rng.random() < 0.3:
                attributes.pop("manager", None)
            else:
                attributes["manager"] = rng.choice(anchors)
            self.source.put("User", anchor, attributes)
        elif op == "member":
            group = rng.choice(sorted(self.source.list("Group")))
            g = dict(self.source.list("Group")[group])
            members = list(g.get("members", []))
            if anchor in members:
                members.remove(anchor)
            else:
                members.append(anchor)
            self.source.put("Group", group, {**g, "members": members})
        elif op == "rehire":  # delete X, and a new user takes X's userName at once
            name = attributes["userName"]
            self.delete_user(anchor)
            self.add_user(attributes={"userName": name, "displayName": "Rehired", "mail": name})
        elif op == "group_text":
            group = rng.choice(sorted(self.source.list("Group")))
            g = dict(self.source.list("Group")[group])
            if rng.random() < 0.5:
                g["description"] = f"d{rng.randrange(100)}"
            else:
                g.pop("description", None)
            self.source.put("Group", group, g)

    def expected(self) -> tuple[dict[str, Any], dict[str, Any]]:
        users = self.users()
        names = {a: attrs["userName"] for a, attrs in users.items()}
        expected_users = {}
        for attrs in users.values():
            row = {k: attrs[k] for k in USER_KEYS if attrs.get(k) not in (None, "")}
            row["active"] = "True"
            if attrs.get("manager") in names:
                row["manager"] = names[attrs["manager"]]
            expected_users[attrs["userName"]] = row
        expected_groups = {
            g["displayName"]: {
                "description": g.get("description"),
                "members": sorted(names[m] for m in g.get("members", []) if m in names),
            }
            for g in self.source.list("Group").values()
        }
        return expected_users, expected_groups


def actual(target: MemoryDirectory) -> tuple[dict[str, Any], dict[str, Any]]:
    users = target.list("User")
    names = {ref: attrs["userName"] for ref, attrs in users.items()}
    got_users: dict[str, Any] = {}
    for attrs in users.values():
        row = dict(attrs)
        if "manager" in row:
            row["manager"] = names.get(row["manager"], f"dangling:{row['manager']}")
        assert attrs["userName"] not in got_users, f"duplicate user {attrs['userName']}"
        got_users[attrs["userName"]] = row
    got_groups: dict[str, Any] = {}
    for attrs in target.list("Group").values():
        assert attrs["displayName"] not in got_groups, "duplicate group"
        members = attrs.get("members", [])
        got_groups[attrs["displayName"]] = {
            "description": attrs.get("description"),
            "members": sorted(names.get(m, f"dangling:{m}") for m in members),
        }
    return got_users, got_groups


def settle(engine: SyncEngine, job_id: str, clock: ManualClock) -> None:
    """Cycles until nothing is exported and no escrow or staged delete is left (escrow
    backoff and a delete grace period waited out)."""
    for _ in range(8):
        execution = engine.run_cycle(job_id)
        clock.advance(timedelta(days=2))
        if execution.count_exports == 0 and not engine.escrows(job_id):
            if not engine.store.staged_deletes(job_id):
                return


def run_seed(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    clock = ManualClock()
    world = World(rng)
    target = MemoryDirectory(id_prefix="t")
    path = tmp_path / f"s{seed}.db"
    engine = SyncEngine(path, clock)
    page = str(rng.choice([2, 3, 500]))
    concurrency = str(rng.choice([1, 1, 3]))  # ExportConcurrency: writes on a pool of threads
    settings = {"PageSize": page, "ExportConcurrency": concurrency}
    if seed % 3 == 1:  # not from rng: the other seeds keep the rounds they always had
        # deletes disable first and go an hour later (settle's clock moves two days a
        # cycle); a crash between a disable and its delete staged again is among the points
        settings["DeleteGracePeriod"] = "PT1H"
    job_id = engine.create_job("memoryToMemory", world.source, target, settings=settings).id
    assert job_id is not None
    engine.start(job_id)
    engine.close()
    for round_ in range(4):
        for _ in range(rng.randrange(1, 12)):
            world.step()
        store = CrashingStore(path)
        engine = SyncEngine(store, clock)
        engine.attach(job_id, world.source, target)
        crash_write = rng.random() < 0.5
        n = rng.randrange(1, 25)
        when = rng.choice(["before", "after"])
        arm(target, store, ("write" if crash_write else "commit", n, when))  # type: ignore[arg-type]
        try:
            engine.run_cycle(job_id)
        except Crash:
            pass
        disarm(target)
        del engine, store  # dropped without close(), as a killed process
        for _ in range(rng.randrange(0, 6)):  # the source moves while the engine is down
            world.step()
        revived = SyncEngine(path, clock)
        revived.attach(job_id, world.source, target)
        settle(revived, job_id, clock)
        point = "write" if crash_write else "store"
        context = f"seed {seed} round {round_} page {page} crash at {point} {n} {when}"
        assert world.expected() == actual(target), context
        assert [] == revived.escrows(job_id), context
        assert [] == revived.store.pending_intents(job_id), context
        revived.close()


@pytest.mark.parametrize("seed", range(CRASH_SEEDS))
def test_random_crashes_and_source_changes_converge(seed: int, tmp_path: Path) -> None:
    """Random source operations, a crash at a random write or commit, more changes while
    down: a new engine converges to exactly the mapped source."""
    run_seed(seed, tmp_path)


def test_intent_round_trip_keeps_binary_matching_values(tmp_path: Path) -> None:
    """Intents survive the store with their matching values, binary ones included."""
    store = SqliteStateStore(tmp_path / "s.db")
    batch = IntentBatch("m", "User", ("userName", "bin"))
    batch.upsert("a", ("x", b"\x00"))
    batch.updates.append(("b", "ref-b", ("y", b"\x01")))
    batch.deletes.append(("c", "ref-c", encode_values({"userName": ["z", "w"]})))
    store.write_intents("j", [batch], None)
    assert [
        Intent("m", "a", "upsert", "User", None, (("userName", "x"), ("bin", b"\x00"))),
        Intent("m", "b", "update", "User", "ref-b", (("userName", "y"), ("bin", b"\x01"))),
        Intent("m", "c", "delete", "User", "ref-c", (("userName", "z"),)),
    ] == store.pending_intents("j")
    store.commit("j", Checkpoint(clear_intents=True))
    assert [] == store.pending_intents("j")
