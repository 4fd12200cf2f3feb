"""Value-level changes of multi-valued attributes, and targets whose refs move on a rename.

A target that declares VALUE_DELTAS gets one new group member as one value to add; one that
does not gets the whole list. A target whose refs are names (an LDAP DN) returns the new ref
from the update that renamed the object; the link follows, the referrers are written again,
and a crash in the middle of such an update is settled by finding the object again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.base import Delta, ValueDelta
from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine
from engine.store.base import IntentBatch, decode_intents, encode_intents
from tests.crash.sqlite_directory import SqliteDirectory


class RecordingDirectory(MemoryDirectory):
    """The memory directory, noting every update delta it is sent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deltas: list[tuple[str, dict[str, Any]]] = []

    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        self.deltas.append((object_type, dict(delta)))
        return super().update(object_type, ref, delta)


class Died(BaseException):
    """The process dies here (BaseException: nothing in the engine catches it)."""


class RenamingDirectory(RecordingDirectory):
    """A target whose ref is the user's name, like an LDAP DN: changing ``userName`` moves
    the object to a new ref, which update returns. ``die_after_rename`` kills the "process"
    once a rename has reached the target."""

    die_after_rename = False

    def create(self, object_type: str, attributes: Any) -> str:
        ref = f"name={attributes.get('userName') or attributes.get('displayName')}"
        self.put(object_type, ref, dict(attributes))
        return ref

    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        super().update(object_type, ref, delta)
        name = delta.get("userName")
        if object_type != "User" or not isinstance(name, str) or ref == f"name={name}":
            return None
        current = self.get(object_type, ref) or {}
        self.remove(object_type, ref)
        self.put(object_type, f"name={name}", current)
        if self.die_after_rename:
            raise Died
        return f"name={name}"


def group_job(
    tmp_path: Path, clock: ManualClock, target: Any
) -> tuple[SyncEngine, str, MemoryDirectory]:
    source = MemoryDirectory()
    for n in range(5):
        source.put("User", f"u{n}", {"userName": f"u{n}", "displayName": f"U{n}"})
    source.put("Group", "g", {"displayName": "G", "members": ["u0", "u1", "u2"]})
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    return engine, job_id, source


def members(target: Any) -> list[str]:
    (group,) = target.list("Group").values()
    return sorted(group["members"])


def test_one_new_member_is_one_value_to_add(tmp_path: Path, clock: ManualClock) -> None:
    """Adding a member and removing another in the source sends exactly those two values."""
    target = RecordingDirectory(id_prefix="t")
    engine, job_id, source = group_job(tmp_path, clock, target)
    refs = {a["userName"]: ref for ref, a in target.list("User").items()}
    target.deltas.clear()
    source.put("Group", "g", {"displayName": "G", "members": ["u0", "u2", "u3"]})
    engine.run_cycle(job_id)
    assert [("Group", {"members": ValueDelta(add=(refs["u3"],), remove=(refs["u1"],))})] == (
        target.deltas
    )
    assert sorted(refs[u] for u in ("u0", "u2", "u3")) == members(target)


def test_a_target_without_value_deltas_gets_the_whole_list(
    tmp_path: Path, clock: ManualClock
) -> None:
    target = SqliteDirectory(tmp_path / "target.sqlite", id_prefix="t")
    engine, job_id, source = group_job(tmp_path, clock, target)
    source.put("Group", "g", {"displayName": "G", "members": ["u0", "u2", "u3"]})
    engine.run_cycle(job_id)
    (group,) = target.list("Group").values()
    users = {a["userName"]: ref for ref, a in target.list("User").items()}
    assert sorted(users[u] for u in ("u0", "u2", "u3")) == sorted(group["members"])
    target.close()


def test_a_rename_moves_the_link_and_rewrites_the_referrers(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The update returns the new ref: the link follows it, so the next update goes to the
    right object, and the group naming the old ref gets the new one in the same cycle."""
    target = RenamingDirectory()
    engine, job_id, source = group_job(tmp_path, clock, target)
    source.put("User", "u1", {"userName": "u1-renamed", "displayName": "U1"})
    engine.run_cycle(job_id)
    assert ["name=u0", "name=u1-renamed", "name=u2"] == members(target)
    source.put("User", "u1", {"userName": "u1-renamed", "displayName": "U1 again"})
    engine.run_cycle(job_id)
    assert "U1 again" == (target.get("User", "name=u1-renamed") or {})["displayName"]
    assert target.get("User", "name=u1") is None
    assert not engine.escrows(job_id)


def test_a_rename_in_doubt_is_found_again_after_a_crash(tmp_path: Path, clock: ManualClock) -> None:
    """The process dies after the update renamed the object but before the new ref was
    checkpointed: the next cycle finds the object by the values the update was sent with."""
    target = RenamingDirectory()
    engine, job_id, source = group_job(tmp_path, clock, target)

    source.put("User", "u1", {"userName": "u1-renamed", "displayName": "U1"})
    target.die_after_rename = True
    try:
        engine.run_cycle(job_id)
    except Died:
        pass
    target.die_after_rename = False
    engine = SyncEngine(tmp_path / "s.db", clock)
    engine.attach(job_id, source, target)
    source.put("User", "u1", {"userName": "u1-renamed", "displayName": "U1 later"})
    engine.run_cycle(job_id)
    assert "U1 later" == (target.get("User", "name=u1-renamed") or {})["displayName"]
    assert ["name=u0", "name=u1-renamed", "name=u2"] == members(target)
    assert not engine.escrows(job_id)


def test_update_intents_written_before_they_carried_values_still_read() -> None:
    """An intent record of an older version (updates without matching values) is read."""
    batch = IntentBatch("m", "User", ("userName",))
    batch.updates.append(("b", "r-b", "x"))
    text = encode_intents([batch]).replace('["b","r-b","x"]', '["b","r-b"]')
    (intent,) = decode_intents(text)
    assert ("b", "update", "r-b", ()) == (
        intent.anchor,
        intent.op,
        intent.target_ref,
        intent.matching,
    )
