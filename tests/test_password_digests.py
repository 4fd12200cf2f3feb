"""Passwords a mapping writes are kept in the state file as keyed digests, never in clear: a
random initial password (ObjectAddOnly RandomString, as scimToAd's unicodePwd) and one that
flows from the source on every update. An unchanged password is not sent again when another
attribute changes; a changed one is; one a link kept in clear is compared by its digest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from connectors.base import ObjectError
from connectors.memory import MemoryDirectory
from engine import SyncEngine
from engine.model import TaskExecutionResult, to_graph
from engine.password_values import password_name
from tests.conftest import user

RANDOM = 'RandomString(16, 2, 2, 2, 2, "\\"")'


def with_passwords(engine: SyncEngine, job_id: str) -> None:
    """The job's users also get a random unicodePwd on create and the source's password as
    userPassword on every write."""
    schema = to_graph(engine.get_schema(job_id))
    source, target = schema["directories"]
    next(o for o in source["objects"] if o["name"] == "User")["attributes"].append(
        {"name": "password"}
    )
    users = next(o for o in target["objects"] if o["name"] == "User")
    users["attributes"] += [{"name": "unicodePwd"}, {"name": "userPassword"}]
    mapping = schema["synchronizationRules"][0]["objectMappings"][0]
    mapping["attributeMappings"] += [
        {
            "targetAttributeName": "unicodePwd",
            "source": {"type": "Function", "expression": RANDOM},
            "flowType": "ObjectAddOnly",
        },
        {
            "targetAttributeName": "userPassword",
            "source": {"type": "Attribute", "name": "password"},
            "flowType": "Always",
        },
    ]
    engine.update_schema(job_id, schema)


def state_bytes(path: Path) -> bytes:
    """Every byte of the state file and its WAL, as whoever copies the file gets them."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def updates_of(target: MemoryDirectory) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    original = target.update

    def spy(object_type: str, ref: str, delta: Any) -> Any:
        seen.append(dict(delta))
        return original(object_type, ref, delta)

    target.update = spy  # type: ignore[method-assign]
    return seen


def test_passwords_are_kept_as_digests_and_flow_only_when_changed(
    make_job: Any, tmp_path: Path
) -> None:
    engine, job_id, source, target = make_job()
    with_passwords(engine, job_id)
    for n in range(3):
        source.put("User", f"s{n}", user(n, password=f"Source-secret-{n}"))
    assert engine.run_cycle(job_id).state is TaskExecutionResult.SUCCEEDED
    made = {u["userName"]: u for u in target.list("User").values()}
    randoms = [u["unicodePwd"] for u in made.values()]
    assert len(set(randoms)) == 3 and all(len(p) == 16 for p in randoms)
    assert made["user1@example.org"]["userPassword"] == "Source-secret-1"
    path = tmp_path / "state.db"
    clear = [*randoms, *(f"Source-secret-{n}" for n in range(3))]
    data = state_bytes(path)
    assert b"user1@example.org" in data  # values are there to be found, in clear
    assert not [p for p in clear if p.encode() in data]

    updates = updates_of(target)
    source.put("User", "s1", user(1, password="Source-secret-1", department="Research"))
    engine.run_cycle(job_id)
    assert updates == [{"department": "Research"}]  # the unchanged password is not sent

    source.put("User", "s1", user(1, password="Changed-secret-1", department="Research"))
    engine.run_cycle(job_id)
    assert updates[1:] == [{"userPassword": "Changed-secret-1"}]
    assert b"Changed-secret-1" not in state_bytes(path)
    engine.run_cycle(job_id)  # nothing changed: nothing sent
    assert len(updates) == 2
    engine.close()


def test_a_password_stored_in_clear_is_digested_as_read(make_job: Any, tmp_path: Path) -> None:
    """A link that still holds a password in clear (state from before digests, in a store
    that was not sealed) is compared by its digest: not sent again, and written back sealed."""
    engine, job_id, source, target = make_job()
    with_passwords(engine, job_id)
    source.put("User", "s0", user(0, password="Old-secret-0"))
    engine.run_cycle(job_id)
    with sqlite3.connect(tmp_path / "state.db") as db:
        [(exported,)] = db.execute("SELECT exported FROM links").fetchall()
        values = json.loads(exported)
        assert set(values["unicodePwd"]) == set(values["userPassword"]) == {"$hmac"}
        values.update(unicodePwd="Old-random-0", userPassword="Old-secret-0")
        db.execute("UPDATE links SET exported=?", (json.dumps(values),))
    db.close()
    updates = updates_of(target)
    source.put("User", "s0", user(0, password="Old-secret-0", department="Research"))
    engine.run_cycle(job_id)
    assert updates == [{"department": "Research"}]
    with sqlite3.connect(tmp_path / "state.db") as db:
        [(exported,)] = db.execute("SELECT exported FROM links").fetchall()
    db.close()
    assert "Old-secret-0" not in exported and "Old-random-0" not in exported
    engine.close()


def test_only_password_names_are_sealed() -> None:
    """pass|pwd: not certificates or public keys, whose values must stay values."""
    assert all(map(password_name, ["unicodePwd", "userPassword", "password", "PASSWORD"]))
    names = ["userCertificate", "publicKey", "sshPublicKey", "apiToken", "mail", "department"]
    assert not any(map(password_name, names))


def test_a_target_error_quoting_the_password_keeps_it_out_of_the_state(
    make_job: Any, tmp_path: Path
) -> None:
    """A target that quotes what it refused (some SCIM servers echo the request): the
    escrow's error and the failure's record show the password masked."""
    engine, job_id, source, target = make_job()
    with_passwords(engine, job_id)
    source.put("User", "s0", user(0, password="Quoted-secret-0"))

    def refusing(object_type: str, attributes: Any) -> str:
        raise ObjectError(f"invalid password policy: {dict(attributes)}")

    target.create = refusing  # type: ignore[method-assign]
    assert engine.run_cycle(job_id).count_escrowed == 1
    [escrow] = engine.escrows(job_id)
    assert "invalid password policy" in escrow.error and "Quoted-secret-0" not in escrow.error
    assert b"Quoted-secret-0" not in state_bytes(tmp_path / "state.db")
    engine.close()
