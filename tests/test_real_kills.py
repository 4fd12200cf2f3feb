"""Real processes, really killed: a runner SIGKILLed at random moments while the source keeps
changing, and two runners on one state file, must still leave the target exactly equal to the
mapped source. tests/crash/worker.py is the runner; tests/crash/sqlite_directory.py is the
durable directory on both sides.

The runner's target answers each write after 2 ms (``--write-delay-ms``), like a remote
directory, so kills often land between a target write and the engine's record of it; half the
kills are aimed there (right after the k-th target write), the rest fall at a random time. The
source changes made while the runner is down favour the objects whose writes were in flight:
renamed, deleted, or changed back to what they were.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import SyncEngine, SystemClock
from tests.crash.sqlite_directory import SqliteDirectory

ROOT = Path(__file__).resolve().parent.parent
USER_ATTRIBUTES = (
    "userName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "department",
    "jobTitle",
    "employeeId",
    "mobilePhone",
    "city",
)
OPTIONAL = ("givenName", "surname", "department", "jobTitle", "employeeId", "mobilePhone", "city")
DEPARTMENTS = ("Sales", "R&D", "Ops", "Finance", "Legal")
CITIES = ("Oslo", "Lyon", "Porto", "Graz", "Turku")
KEYS = {"User": "userName", "Group": "displayName"}
WRITE_DELAY_MS = "2"
sleep = SystemClock().sleep


def objects(directory: SqliteDirectory, object_type: str) -> dict[str, dict[str, Any]]:
    return directory.list(object_type)


# --------------------------------------------------------------------------- processes
class Worker:
    """One ``python -m tests.crash.worker`` process, its output in files (it may be killed)."""

    def __init__(self, paths: dict[str, Path], job_id: str, mode: str, seed: int, n: int) -> None:
        self.out = paths["dir"] / f"worker{n}.out"
        self.err = paths["dir"] / f"worker{n}.err"
        command = [
            sys.executable, "-m", "tests.crash.worker",
            "--state", str(paths["state"]),
            "--source", str(paths["source"]),
            "--target", str(paths["target"]),
            "--job", job_id,
            "--mode", mode,
            "--seed", str(seed),
        ]  # fmt: skip
        if mode == "loop":
            command += ["--write-delay-ms", WRITE_DELAY_MS]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if "ready=1" in self.out.read_text():
                return
            sleep(0.005)
        pytest.fail(f"the worker did not get ready:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL and reap it (a zombie would still count as a live lease holder)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def killed_not_crashed(self) -> None:
        """A loop worker must only ever end by our SIGKILL: anything else is an error in it."""
        if self.process.returncode != -signal.SIGKILL:
            pytest.fail(f"the worker ended by itself ({self.process.returncode}):\n{self.tail()}")

    def counts(self) -> dict[str, int]:
        """The last counts line the worker printed."""
        for line in reversed(self.out.read_text().splitlines()):
            if line.startswith("cycles="):
                return {k: int(v) for k, v in (p.split("=") for p in line.split())}
        return {}

    def tail(self) -> str:
        out = self.out.read_text().splitlines()[-5:]
        err = self.err.read_text().splitlines()[-25:]
        return "\n".join(["stdout:", *out, "stderr:", *err])


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Every worker a test starts is killed and reaped, whatever happens."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def start(
    workers: list[Worker], paths: dict[str, Path], job_id: str, mode: str, seed: int = 0
) -> Worker:
    worker = Worker(paths, job_id, mode, seed, len(workers))
    workers.append(worker)
    return worker


def kill_soon(worker: Worker, target: SqliteDirectory, rng: random.Random, changes: int) -> None:
    """SIGKILL right after the k-th target write of this run (a write whose record may not be
    committed yet; ``changes`` source changes are waiting, so about as many writes), or at a
    random time; then check the worker had not died by itself."""
    base = target.last_seq()
    worker.wait_ready()
    if rng.random() < 0.5:
        writes, deadline = base + rng.randrange(1, changes + 2), time.monotonic() + 0.3
        while target.last_seq() < writes and time.monotonic() < deadline:
            sleep(0.0005)
    else:
        sleep(rng.uniform(0.01, 0.15))
    worker.kill()
    worker.killed_not_crashed()


def settle(workers: list[Worker], paths: dict[str, Path], job_id: str) -> str:
    """Run the settle worker to its end; returns its output (the caller checks convergence)."""
    worker = start(workers, paths, job_id, "settle")
    try:
        worker.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        worker.kill()
    return f"settle worker exit code {worker.process.returncode}\n{worker.tail()}"


# ------------------------------------------------------------------------------ source
def new_user(rng: random.Random, name: str, managers: list[str]) -> dict[str, Any]:
    given = rng.choice(("Ada", "Alan", "Grace", "Linus", "Barbara"))
    attributes: dict[str, Any] = {
        "userName": f"{name}@example.org",
        "displayName": f"{given} {name.title()}",
        "mail": f"{name}@example.org",
        "givenName": given,
        "surname": name.title(),
        "department": rng.choice(DEPARTMENTS),
        "jobTitle": rng.choice(("Engineer", "Manager", "Clerk")),
        "employeeId": str(rng.randrange(10_000, 99_999)),
        "mobilePhone": f"+47 {rng.randrange(10_000_000, 99_999_999)}",
        "city": rng.choice(CITIES),
    }
    for optional in rng.sample(OPTIONAL, rng.randrange(0, 3)):
        del attributes[optional]
    if managers and rng.random() < 0.7:
        attributes["manager"] = rng.choice(managers)
    return attributes


class SourceWriter:
    """Random changes to the source as a directory's admins make them.

    References stay consistent the way Active Directory keeps them: a deleted user leaves every
    group and stops being anyone's manager in the same batch (those updates come first, so no
    live object ever references a deleted one). ``focus`` holds the source objects behind the
    target's last writes; changes pick them more often than the rest.
    """

    def __init__(self, source: SqliteDirectory, rng: random.Random) -> None:
        self.source = source
        self.rng = rng
        self.serial = 0
        self.focus: set[tuple[str, str]] = set()
        self.before: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.watermarks = {"User": "0", "Group": "0"}

    # -- set-up and bookkeeping
    def seed(self, users: int, groups: int) -> None:
        anchors = [f"s{n:04d}" for n in range(users)]
        for n, anchor in enumerate(anchors):  # the first eight users manage the others
            self.source.put("User", anchor, new_user(self.rng, self.fresh(), anchors[:n][:8]))
        for n in range(groups):
            members = sorted(self.rng.sample(anchors, self.rng.randrange(0, 15)))
            body: dict[str, Any] = {
                "displayName": f"Team {n}",
                "description": f"team {n}",
                "members": members,
            }
            self.source.put("Group", f"g{n:03d}", body)

    def fresh(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(('ann', 'bob', 'cy', 'dee'))}{self.serial:04d}"

    def users(self) -> dict[str, dict[str, Any]]:
        return objects(self.source, "User")

    def taken(self, user_name: str, anchor: str) -> bool:
        return any(
            a["userName"].lower() == user_name.lower()
            for other, a in self.users().items()
            if other != anchor
        )

    def put(self, object_type: str, anchor: str, attributes: dict[str, Any]) -> None:
        self.before[(object_type, anchor)] = self.source.get(object_type, anchor)
        self.source.put(object_type, anchor, attributes)

    def remove(self, object_type: str, anchor: str) -> None:
        self.before[(object_type, anchor)] = self.source.get(object_type, anchor)
        self.source.remove(object_type, anchor)

    def watch(self, target: SqliteDirectory) -> None:
        """Focus on the source objects behind the target's last few writes (read as a delta of
        the target, which is a source too)."""
        self.focus.clear()
        for object_type, key in KEYS.items():
            pages = list(target.read(object_type, self.watermarks[object_type], 10_000))
            self.watermarks[object_type] = pages[-1].watermark
            recent = [c.attributes for p in pages for c in p.changes if c.attributes][-6:]
            names = {str(a[key]).lower() for a in recent if key in a}
            for anchor, attributes in objects(self.source, object_type).items():
                if str(attributes.get(key, "")).lower() in names:
                    self.focus.add((object_type, anchor))

    def pick(self, object_type: str = "User") -> tuple[str, dict[str, Any]] | None:
        live = objects(self.source, object_type)
        focused = sorted(a for t, a in self.focus if t == object_type and a in live)
        pool = focused if focused and self.rng.random() < 0.7 else sorted(live)
        if not pool:
            return None
        anchor = self.rng.choice(pool)
        return anchor, live[anchor]

    # -- the changes
    def batch(self, size: int) -> None:
        operations = (
            self.add, self.modify, self.modify, self.rename, self.rename, self.drop_attribute,
            self.delete, self.delete, self.revert, self.revert, self.revert, self.readd_new,
            self.reuse_name, self.membership, self.membership, self.manager, self.group_change,
        )  # fmt: skip
        for _ in range(size):
            self.rng.choice(operations)()

    def add(self) -> None:
        self.put("User", f"s{9000 + self.serial:04d}", self.new())

    def new(self) -> dict[str, Any]:
        return new_user(self.rng, self.fresh(), sorted(self.users()))

    def modify(self) -> None:
        if picked := self.pick():
            anchor, attributes = picked
            attributes["department"] = self.rng.choice(DEPARTMENTS)
            attributes["displayName"] = f"{attributes['displayName']} {self.rng.randrange(9)}"
            self.put("User", anchor, attributes)

    def rename(self) -> None:
        """A change of the matching attribute."""
        if picked := self.pick():
            anchor, attributes = picked
            attributes["userName"] = f"{self.fresh()}@example.org"
            self.put("User", anchor, attributes)

    def drop_attribute(self) -> None:
        if picked := self.pick():
            anchor, attributes = picked
            present = [n for n in (*OPTIONAL, "manager") if n in attributes]
            if present:
                del attributes[self.rng.choice(present)]
                self.put("User", anchor, attributes)

    def delete(self, picked: tuple[str, dict[str, Any]] | None = None) -> None:
        picked = picked or self.pick()
        if picked is None:
            return
        anchor, _ = picked
        for other, them in self.users().items():
            if them.get("manager") == anchor:
                del them["manager"]
                self.put("User", other, them)
        for group, body in objects(self.source, "Group").items():
            if anchor in body.get("members", []):
                body["members"] = [m for m in body["members"] if m != anchor]
                self.put("Group", group, body)
        self.remove("User", anchor)

    def revert(self) -> None:
        """Undo the last change of an object: values flip back, a creation is deleted again, a
        deleted user comes back with its old attributes (a restore from the recycle bin)."""
        keys = sorted(self.before)
        focused = [k for k in keys if k in self.focus]
        if not keys:
            return
        object_type, anchor = self.rng.choice(focused if focused else keys)
        old = self.before[(object_type, anchor)]
        live = self.source.get(object_type, anchor)
        if old is None:
            if live is not None and object_type == "User":
                self.delete((anchor, live))
            elif live is not None:
                self.remove(object_type, anchor)
            return
        users = self.users()
        if object_type == "Group":
            old["members"] = [m for m in old.get("members", []) if m in users]
        else:
            if self.taken(old["userName"], anchor):
                old["userName"] = f"{self.fresh()}@example.org"
            if old.get("manager") not in users or old.get("manager") == anchor:
                old.pop("manager", None)
        self.put(object_type, anchor, old)

    def readd_new(self) -> None:
        """A deleted user's anchor back with new attributes."""
        gone = sorted(a for t, a in self.before if t == "User" and self.source.get(t, a) is None)
        if gone:
            self.put("User", self.rng.choice(gone), self.new())

    def reuse_name(self) -> None:
        """A new anchor with the userName of a deleted user (deleted and created again)."""
        gone = [
            (a, old)
            for (t, a), old in sorted(self.before.items())
            if t == "User" and old is not None and self.source.get(t, a) is None
        ]
        if gone:
            anchor, old = self.rng.choice(gone)
            attributes = self.new()
            if not self.taken(old["userName"], anchor):
                attributes["userName"] = old["userName"]
            self.put("User", f"{anchor}r{self.serial}", attributes)

    def membership(self) -> None:
        picked, users = self.pick("Group"), sorted(self.users())
        if picked is None or not users:
            return
        group, body = picked
        members = body.get("members", [])
        if members and self.rng.random() < 0.5:
            members.remove(self.rng.choice(members))
        else:
            focused = sorted(a for t, a in self.focus if t == "User" and a in users)
            candidates = [u for u in focused or users if u not in members]
            if candidates:
                members.append(self.rng.choice(candidates))
        body["members"] = members
        self.put("Group", group, body)

    def manager(self) -> None:
        if picked := self.pick():
            anchor, attributes = picked
            others = [u for u in sorted(self.users()) if u != anchor]
            if others and self.rng.random() < 0.8:
                attributes["manager"] = self.rng.choice(others)
            else:
                attributes.pop("manager", None)
            self.put("User", anchor, attributes)

    def group_change(self) -> None:
        if self.rng.random() < 0.2:
            n = self.serial
            self.put("Group", f"g{n:03d}x", {"displayName": f"Team {n}x"})
            self.fresh()
            return
        if picked := self.pick("Group"):
            group, body = picked
            if "description" in body and self.rng.random() < 0.3:
                del body["description"]
            else:
                body["description"] = f"changed {self.rng.randrange(1000)}"
            self.put("Group", group, body)


# ---------------------------------------------------------------------------- checking
def compare(source: SqliteDirectory, target: SqliteDirectory) -> list[str]:
    """Differences between the target and the mapped source, one short line each."""
    problems: list[str] = []
    source_users = objects(source, "User")
    actual_users: dict[str, dict[str, Any]] = {}
    ref_of: dict[str, str] = {}
    for ref, attributes in objects(target, "User").items():
        name = attributes.get("userName", f"<no userName {ref}>")
        if name in actual_users:
            problems.append(f"duplicate target User {name!r} ({ref_of[name]}, {ref})")
        actual_users[name], ref_of[name] = attributes, ref

    def target_ref(anchor: str) -> str:
        if anchor not in source_users:
            return f"<harness bug: reference to deleted source user {anchor}>"
        name = source_users[anchor]["userName"]
        return ref_of.get(name, f"<no target User {name}>")

    expected_users: dict[str, dict[str, Any]] = {}
    for attributes in source_users.values():
        mapped = {k: attributes[k] for k in USER_ATTRIBUTES if k in attributes}
        mapped["active"] = "True"
        if "manager" in attributes:
            mapped["manager"] = target_ref(attributes["manager"])
        expected_users[attributes["userName"]] = mapped
    problems += _diff("User", expected_users, actual_users)

    actual_groups: dict[str, dict[str, Any]] = {}
    for ref, attributes in objects(target, "Group").items():
        name = attributes.get("displayName", f"<no displayName {ref}>")
        if name in actual_groups:
            problems.append(f"duplicate target Group {name!r} ({ref})")
        actual_groups[name] = {**attributes, "members": sorted(attributes.get("members", []))}
    expected_groups = {
        attributes["displayName"]: {
            **attributes,
            "members": sorted(target_ref(m) for m in attributes.get("members", [])),
        }
        for attributes in objects(source, "Group").values()
    }
    problems += _diff("Group", expected_groups, actual_groups)
    return problems


def _diff(kind: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    lines = [f"missing {kind} {k!r}" for k in sorted(expected.keys() - actual.keys())]
    lines += [f"extra {kind} {k!r}: {actual[k]}" for k in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        for name in sorted(want.keys() | got.keys()):
            if want.get(name) != got.get(name):
                lines.append(
                    f"{kind} {key!r}.{name}: expected {want.get(name)!r}, got {got.get(name)!r}"
                )
    return lines


def differences(paths: dict[str, Path], job_id: str) -> str:
    """The target against the mapped source, and escrows left: "" when converged."""
    with (
        SqliteDirectory(paths["source"]) as source,
        SqliteDirectory(paths["target"]) as target,
        SyncEngine(paths["state"]) as engine,
    ):
        problems = compare(source, target)
        escrows = engine.escrows(job_id)
    problems += [f"escrow left: {e.mapping} {e.anchor}: {e.error}" for e in escrows]
    if not problems:
        return ""
    more = f"\n... and {len(problems) - 30} more" if len(problems) > 30 else ""
    return (
        f"the target did not converge ({len(problems)} differences):\n"
        + "\n".join(problems[:30])
        + more
    )


def make_job(
    tmp_path: Path, rng: random.Random, users: int
) -> tuple[dict[str, Path], str, SourceWriter, SqliteDirectory]:
    """A started memoryToMemory job over a seeded source; returns the paths, the job id, the
    source's writer and a reader of the target."""
    paths = {
        "dir": tmp_path,
        "state": tmp_path / "state.sqlite",
        "source": tmp_path / "source.sqlite",
        "target": tmp_path / "target.sqlite",
    }
    source = SqliteDirectory(paths["source"], id_prefix="s")
    target = SqliteDirectory(paths["target"], id_prefix="t")
    writer = SourceWriter(source, rng)
    writer.seed(users, groups=4)
    with SyncEngine(paths["state"]) as engine:
        job = engine.create_job(
            "memoryToMemory",
            source,
            target,
            settings={"PageSize": "5", "EscrowRetryBackoff": "PT0S"},
        )
        assert job.id is not None
        engine.start(job.id)
    return paths, job.id, writer, target


# ------------------------------------------------------------------------------- tests
def test_sigkill_at_random_moments_converges(tmp_path: Path, workers: list[Worker]) -> None:
    """A runner SIGKILLed at 30 random moments while the source changes converges exactly."""
    rng = random.Random(int(os.environ.get("SYNCJOB_KILL_SEED", "20260101")))
    paths, job_id, writer, target = make_job(tmp_path, rng, users=60)
    with writer.source, target:
        seen = 0
        for round_ in range(30):
            changes, seen = writer.source.last_seq() - seen, writer.source.last_seq()
            kill_soon(start(workers, paths, job_id, "loop", round_), target, rng, changes)
            writer.watch(target)
            writer.batch(rng.randrange(1, 8))
    settled = settle(workers, paths, job_id)
    diff = differences(paths, job_id)
    assert not diff, f"{diff}\n{settled}"


def test_two_processes_on_one_state_file(tmp_path: Path, workers: list[Worker]) -> None:
    """Two runners on one state file: the lease refuses one while the other runs; exact result."""
    rng = random.Random(7)
    paths, job_id, writer, target = make_job(tmp_path, rng, users=40)
    with writer.source, target:
        pair = [start(workers, paths, job_id, "loop", seed) for seed in (1, 2)]
        for worker in pair:
            worker.wait_ready()
        for _ in range(6):
            sleep(0.5)
            writer.watch(target)
            writer.batch(rng.randrange(2, 6))
        sleep(0.3)
        for worker in pair:
            worker.kill()
            worker.killed_not_crashed()
    counts = [worker.counts() for worker in pair]
    settled = settle(workers, paths, job_id)
    problems = [differences(paths, job_id)]
    if sum(c.get("elsewhere", 0) for c in counts) == 0:
        problems.append(f"no JobRunningElsewhere in either worker's output: {counts}")
    assert not any(problems), "\n".join(p for p in problems if p) + f"\n{settled}"
