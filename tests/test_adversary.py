"""Adversarial tests: each one failed on the code it was written against (see the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine


def big_group_job(
    tmp_path: Path, clock: ManualClock, users: int = 70
) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory(id_prefix="t")
    for n in range(users):
        source.put("User", f"u{n:03d}", {"userName": f"u{n:03d}", "displayName": f"U{n}"})
    source.put("Group", "g", {"displayName": "G", "members": [f"u{n:03d}" for n in range(users)]})
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    return engine, job_id, source, target


def group_members(target: MemoryDirectory) -> list[str]:
    (group,) = target.list("Group").values()
    return sorted(group.get("members") or [])


def user_refs(target: MemoryDirectory) -> dict[str, str]:
    return {a["userName"]: ref for ref, a in target.list("User").items()}


def test_large_group_recreated_after_object_gone_keeps_its_reverse_index(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A group of 70 members deleted in the target (ObjectGone) is created again; the
    checkpoint holds both its unlink and its references. A member deleted later must still
    leave the group (its referrers are found through the reverse index)."""
    engine, job_id, source, target = big_group_job(tmp_path, clock)
    (gref,) = target.list("Group")
    target.delete("Group", gref, soft=False)
    source.put(
        "Group",
        "g",
        {"displayName": "G", "description": "d", "members": [f"u{n:03d}" for n in range(70)]},
    )
    engine.run_cycle(job_id)
    assert len(group_members(target)) == 70
    gone = user_refs(target)["u005"]
    source.remove("User", "u005")
    engine.run_cycle(job_id)
    assert gone not in group_members(target)
    assert len(group_members(target)) == 69


# ----------------------------------------------------------------------- value deltas, pure
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connectors.base import ValueDelta  # noqa: E402
from connectors.memory import _applied  # noqa: E402
from engine.mapping import compile_mapping, diff  # noqa: E402
from engine.model import SynchronizationSchema, from_graph  # noqa: E402

FLOWS = {
    "always": ("Always", "FlowWhenChanged"),
    "valueAdd": ("ValueAddOnly", "FlowWhenChanged"),
    "multiAdd": ("MultiValueAddOnly", "FlowWhenChanged"),
    "attrAdd": ("AttributeAddOnly", "FlowWhenChanged"),
    "flowAlways": ("Always", "FlowAlways"),
}
_SCHEMA = from_graph(
    {
        "directories": [
            {
                "name": "T",
                "objects": [
                    {
                        "name": "User",
                        "attributes": [{"name": n, "multivalued": True} for n in FLOWS],
                    }
                ],
            }
        ],
        "synchronizationRules": [
            {
                "id": "r",
                "sourceDirectoryName": "S",
                "targetDirectoryName": "T",
                "objectMappings": [
                    {
                        "sourceObjectName": "User",
                        "targetObjectName": "User",
                        "attributeMappings": [
                            {
                                "targetAttributeName": "key",
                                "matchingPriority": 1,
                                "source": {"type": "Attribute", "name": "key"},
                            },
                            *(
                                {
                                    "targetAttributeName": n,
                                    "flowType": f,
                                    "flowBehavior": b,
                                    "source": {"type": "Attribute", "name": n},
                                }
                                for n, (f, b) in FLOWS.items()
                            ),
                        ],
                    }
                ],
            }
        ],
    },
    SynchronizationSchema,
)
FLOW_MAPPING = compile_mapping(
    _SCHEMA, _SCHEMA.synchronization_rules[0], _SCHEMA.synchronization_rules[0].object_mappings[0]
)


def _apply(target: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for name, value in delta.items():
        new = _applied(value, out.get(name)) if isinstance(value, ValueDelta) else value
        out.pop(name, None)
        if new is not None and new != []:
            out[name] = new
    return out


def _norm(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: sorted({x.lower() for x in (v if isinstance(v, list) else [v])})
        for k, v in values.items()
    }


def test_value_add_only_never_removes_a_value_with_value_deltas() -> None:
    """ValueAddOnly: a value gone from the source stays in the target. Without value deltas
    diff sends nothing; with them it must not send the shorter list as a replacement."""
    exported = {"valueAdd": ["x", "y"]}
    desired = {"valueAdd": ["x"]}
    assert "valueAdd" not in diff(FLOW_MAPPING, desired, exported)
    assert "valueAdd" not in diff(FLOW_MAPPING, desired, exported, value_deltas=True)


def test_attribute_add_only_is_not_updated_with_value_deltas() -> None:
    """AttributeAddOnly: an attribute that has a value is never updated, list or not."""
    exported = {"attrAdd": ["x", "y"]}
    desired = {"attrAdd": ["x", "z"]}
    assert "attrAdd" not in diff(FLOW_MAPPING, desired, exported)
    assert "attrAdd" not in diff(FLOW_MAPPING, desired, exported, value_deltas=True)


_lists = st.lists(st.sampled_from(["a", "A", "b", "B", "c"]), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(FLOWS)), _lists),
    st.dictionaries(st.sampled_from(sorted(FLOWS)), _lists),
)
def test_value_deltas_reach_what_whole_values_reach(
    desired: dict[str, Any], exported: dict[str, Any]
) -> None:
    """Sending value deltas leaves the target as sending whole values would (up to case and
    order), for every flowType."""
    target = dict(exported)  # the target holds what was exported
    whole = _apply(target, diff(FLOW_MAPPING, desired, exported))
    deltas = _apply(target, diff(FLOW_MAPPING, desired, exported, value_deltas=True))
    assert _norm(whole) == _norm(deltas)


# ------------------------------------------------------- value deltas through whole cycles
import json  # noqa: E402

import engine.templates as _templates  # noqa: E402


def proxies_schema(flow_type: str = "Always") -> dict[str, Any]:
    """memoryToMemory plus a multi-valued, case-insensitive ``proxies`` on users."""
    path = Path(_templates.__file__).with_name("memoryToMemory.json")
    schema = json.loads(path.read_text())["schema"]
    for directory in schema["directories"]:
        directory["objects"][0]["attributes"].append({"name": "proxies", "multivalued": True})
    users = schema["synchronizationRules"][0]["objectMappings"][0]
    users["attributeMappings"].append(
        {
            "targetAttributeName": "proxies",
            "flowType": flow_type,
            "source": {"type": "Attribute", "name": "proxies", "expression": "[proxies]"},
        }
    )
    return schema


def proxies_job(
    tmp_path: Path, clock: ManualClock, proxies: list[str], flow_type: str = "Always"
) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory(id_prefix="t")
    source.put("User", "u", {"userName": "u", "proxies": proxies})
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = (
        engine.create_job("memoryToMemory", source, target, schema=proxies_schema(flow_type)).id
        or ""
    )
    engine.start(job_id)
    engine.run_cycle(job_id)
    return engine, job_id, source, target


def target_proxies(target: MemoryDirectory) -> list[str]:
    (user,) = target.list("User").values()
    return sorted(user.get("proxies") or [])


def test_value_add_only_list_keeps_a_value_the_source_dropped(
    tmp_path: Path, clock: ManualClock
) -> None:
    """ValueAddOnly on a VALUE_DELTAS target: the source drops one value and adds none; the
    target keeps both (as it does on a target without value deltas)."""
    engine, job_id, source, target = proxies_job(tmp_path, clock, ["a", "b"], "ValueAddOnly")
    source.put("User", "u", {"userName": "u", "proxies": ["a"]})
    engine.run_cycle(job_id)
    assert target_proxies(target) == ["a", "b"]


def test_a_value_whose_case_changed_unflowed_is_removed_later(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A case-only change does not flow (not caseExact), but the link then remembers the new
    case; removing the value later must remove it from the target, whatever its case there."""
    engine, job_id, source, target = proxies_job(tmp_path, clock, ["Alice", "b"])
    source.put("User", "u", {"userName": "u", "proxies": ["alice", "b"]})
    engine.run_cycle(job_id)
    assert target_proxies(target) == ["Alice", "b"]  # case-only: no write, as in Entra
    source.put("User", "u", {"userName": "u", "proxies": ["b"]})
    engine.run_cycle(job_id)
    assert target_proxies(target) == ["b"]


def test_a_member_recreated_after_object_gone_is_followed_by_its_large_group(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A member of a 70-member group deleted in the target is created again with a new ref:
    the group (value deltas, member rows in the store) names the new ref, not the old."""
    engine, job_id, source, target = big_group_job(tmp_path, clock)
    old = user_refs(target)["u003"]
    target.delete("User", old, soft=False)
    source.put("User", "u003", {"userName": "u003", "displayName": "again"})
    engine.run_cycle(job_id)
    new = user_refs(target)["u003"]
    assert new != old
    assert new in group_members(target) and old not in group_members(target)
    assert len(group_members(target)) == 70
    run = engine.run_cycle(job_id)  # nothing changed: nothing written
    assert run.count_exported == 0


# ------------------------------------------------------------------------ concurrent export
from engine import SystemClock  # noqa: E402


class JitterTarget(MemoryDirectory):
    """A memory target whose writes take a while: creating every fourth user (u00, u04, ...)
    takes longer, so the workers overlap and finish out of order, the same way every run."""

    def find(self, *args: Any) -> Any:
        SystemClock().sleep(0.001)
        return super().find(*args)

    def create(self, object_type: str, attributes: Any) -> Any:
        name = str(attributes.get("userName") or "")
        SystemClock().sleep(0.02 if name[-2:].isdigit() and int(name[-2:]) % 4 == 0 else 0.001)
        return super().create(object_type, attributes)

    def update(self, *args: Any) -> Any:
        SystemClock().sleep(0.001)
        return super().update(*args)


def managers_world() -> MemoryDirectory:
    """Users whose managers are in the same page, later in anchor order than some of them."""
    source = MemoryDirectory()
    for n in range(40):
        attributes: dict[str, Any] = {"userName": f"u{n:02d}", "displayName": f"U{n}"}
        if n % 4:
            attributes["manager"] = f"u{n - n % 4:02d}"  # u00 manages u01..u03, ...
        source.put("User", f"u{n:02d}", attributes)
    source.put("Group", "g", {"displayName": "G", "members": [f"u{n:02d}" for n in range(40)]})
    return source


def run_world(tmp_path: Path, concurrency: int) -> tuple[Any, ...]:
    source, target = managers_world(), JitterTarget(id_prefix="t")
    engine = SyncEngine(tmp_path / f"c{concurrency}.db", ManualClock())
    settings = {"ExportConcurrency": str(concurrency)}
    job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
    engine.start(job_id)
    first = engine.run_cycle(job_id)
    for n in range(0, 40, 3):
        source.put("User", f"u{n:02d}", {**(source.get("User", f"u{n:02d}") or {}), "city": "X"})
    second = engine.run_cycle(job_id)
    names = {ref: a["userName"] for ref, a in target.list("User").items()}
    users = {
        a["userName"]: {k: (names.get(v, v) if k == "manager" else v) for k, v in a.items()}
        for a in target.list("User").values()
    }
    (group,) = target.list("Group").values()
    counts = [(r.count_exported, r.count_imported, r.count_escrowed) for r in (first, second)]
    return users, sorted(names[m] for m in group["members"]), counts, target.writes


def test_concurrent_export_with_same_page_references_is_the_sequential_outcome(
    tmp_path: Path,
) -> None:
    """Managers in the same page as their reports: with 4 workers the target, the counters
    and the number of writes are those of one worker."""
    one, four = run_world(tmp_path, 1), run_world(tmp_path, 4)
    assert one[0] == four[0] and one[1] == four[1]
    assert one[2:] == four[2:]


def test_value_add_only_on_join_adds_to_what_the_target_has(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Joining an object we did not write (values unknown): 'add-only flows only ever add'
    (mapping.diff). A VALUE_DELTAS target can be sent the values to add; a replacement
    removes the target's own values."""
    source, target = MemoryDirectory(), MemoryDirectory(id_prefix="t")
    target.put("User", "t1", {"userName": "u", "proxies": ["x"]})
    source.put("User", "u", {"userName": "u", "proxies": ["a"]})
    engine = SyncEngine(tmp_path / "s.db", clock)
    schema = proxies_schema("ValueAddOnly")
    job_id = engine.create_job("memoryToMemory", source, target, schema=schema).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    assert target_proxies(target) == ["a", "x"]


# ------------------------------------------------------------------ renamed refs, recovery
class Crash(BaseException):
    """The process dies here."""


def test_an_update_in_doubt_does_not_move_the_link_to_a_disabled_leftover(
    tmp_path: Path, clock: ManualClock
) -> None:
    """B left the source: its target object is disabled and unlinked. A then takes B's old
    userName, and the process dies before that update reaches the target. Settling the update
    in doubt finds B's leftover by A's new userName and moves A's link onto it: A's own
    object (still active, under its old name) is then managed by nobody, for ever."""
    source, target = MemoryDirectory(), MemoryDirectory(id_prefix="t")
    source.put("User", "A", {"userName": "a", "displayName": "A"})
    source.put("User", "B", {"userName": "b", "displayName": "B"})
    engine = SyncEngine(tmp_path / "s.db", clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.set_secrets(None, {"HardDeletesEnabled": "False"})
    engine.start(job_id)
    engine.run_cycle(job_id)
    refs = {a["userName"]: ref for ref, a in target.list("User").items()}
    source.remove("User", "B")
    engine.run_cycle(job_id)
    assert target.get("User", refs["b"])["active"] is False  # disabled, unlinked

    source.put("User", "A", {"userName": "b", "displayName": "A"})

    def die(operation: str, object_type: str, ref: str | None) -> None:
        raise Crash

    target.before_write = die
    try:
        engine.run_cycle(job_id)
    except Crash:
        pass
    target.before_write = None
    engine = SyncEngine(tmp_path / "s.db", clock)
    engine.attach(job_id, source, target)
    engine.run_cycle(job_id)
    # A's own object is the one that carries A now; B's leftover is not taken over
    assert target.get("User", refs["b"])["displayName"] == "B"  # not taken over
    assert target.get("User", refs["a"])["userName"] == "b"  # as without the crash


def test_concurrent_export_logs_in_the_order_of_the_page(tmp_path: Path) -> None:
    """The provisioning log of a page written on 4 workers lists its objects in the page's
    order, as with one worker (not in the order the target happened to answer)."""
    logs = []
    for concurrency in (1, 4):
        source = MemoryDirectory()
        for n in range(30):
            source.put("User", f"u{n:02d}", {"userName": f"u{n:02d}"})
        engine = SyncEngine(tmp_path / f"l{concurrency}.db", ManualClock())
        settings = {"ExportConcurrency": str(concurrency)}
        target = JitterTarget(id_prefix="t")
        job_id = engine.create_job("memoryToMemory", source, target, settings=settings).id or ""
        engine.start(job_id)
        engine.run_cycle(job_id)
        logs.append([(r.anchor, r.action) for r in engine.store.provisioning_logs(job_id)])
    assert logs[0] == logs[1]
