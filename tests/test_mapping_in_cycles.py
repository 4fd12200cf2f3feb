"""Attribute mappings in full, through real cycles: expressions, flow types, references."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from connectors.memory import MemoryDirectory
from engine import ConfigurationError, ManualClock, SyncEngine
from engine.expressions import syntax
from engine.model import AttributeMappingSource, from_graph, to_graph
from engine.validation import attributes_read


def schema_with(engine: SyncEngine, job_id: str, **mappings: dict[str, Any]) -> dict[str, Any]:
    """The job's schema with User attribute mappings replaced or added by target name; a new
    target attribute is also defined in the target directory, and a source attribute the
    mapping reads in the source directory, as a schema must."""
    schema = to_graph(engine.get_schema(job_id))
    users = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    target_user = next(
        o
        for d in schema["directories"]
        if d["name"] == "Memory Target"
        for o in d["objects"]
        if o["name"] == "User"
    )
    source_user = next(
        o
        for d in schema["directories"]
        if d["name"] == "Memory Source"
        for o in d["objects"]
        if o["name"] == "User"
    )
    defined = {a["name"] for a in target_user["attributes"]}
    readable = {a["name"].lower() for a in source_user["attributes"]}
    for target, mapping in mappings.items():
        if target not in defined:
            target_user["attributes"].append({"name": target})
        source = from_graph(mapping.get("source"), AttributeMappingSource)
        for name in attributes_read(source) if source is not None else ():
            if name.lower() not in readable:
                source_user["attributes"].append({"name": name})
                readable.add(name.lower())
        users[:] = [m for m in users if m["targetAttributeName"] != target]
        users.append({"targetAttributeName": target, **mapping})
    return schema


def function(expression: str, **extra: Any) -> dict[str, Any]:
    return {"source": {"type": "Function", "expression": expression}, **extra}


@pytest.fixture
def job(clock: ManualClock) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(clock=clock, random=random.Random(7))
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    return engine, job_id, source, target


def only_user(target: MemoryDirectory) -> dict[str, Any]:
    users = list(target.list("User").values())
    assert 1 == len(users)
    return users[0]


def test_function_mappings_flow(job: Any) -> None:
    """Expression mappings are evaluated per object and their results exported."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            displayName=function('Join(" ", [givenName], [surname])'),
            mail=function(
                'ToLower(Replace(Join(".", NormalizeDiacritics([givenName]), '
                '[surname]), " ", , , "", , ))'
            ),
            department=function('Switch([department], "Other", "S", "Sales", "E", "Engineering")'),
        ),
    )
    source.put(
        "User",
        "u1",
        {"userName": "zoe", "givenName": "Zoë", "surname": "Van Dyke", "department": "E"},
    )
    engine.run_cycle(job_id)
    user = only_user(target)
    assert "Zoë Van Dyke" == user["displayName"]
    assert "zoe.vandyke" == user["mail"]
    assert "Engineering" == user["department"]


def test_expression_errors_are_refused_when_the_schema_is_saved(job: Any) -> None:
    """A schema whose expression does not parse is refused, naming the attribute."""
    engine, job_id, _, _ = job
    with pytest.raises(ConfigurationError, match=r"displayName: .*Join takes 2 or more"):
        engine.update_schema(job_id, schema_with(engine, job_id, displayName=function('Join(" ")')))
    with pytest.raises(ConfigurationError, match="syntax error"):
        engine.update_schema(
            job_id, schema_with(engine, job_id, displayName=function('Join(" ", [a]'))
        )


def test_evaluation_failure_escrows_only_that_object(job: Any) -> None:
    """An expression that cannot be computed for one object escrows it; others flow."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id, schema_with(engine, job_id, jobTitle=function('DateAdd("d", 1, CDate([hired]))'))
    )
    source.put("User", "ok", {"userName": "a", "hired": "2020-01-01"})
    source.put("User", "bad", {"userName": "b", "hired": "someday"})
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed and 1 == len(target.list("User"))
    assert "not a date" in engine.escrows(job_id)[0].error


def test_a_value_too_long_escrows_only_that_object(job: Any) -> None:
    """Nested Replace calls stop at the value limit before the value is built, escrowing the
    object that would make it; one more nesting is refused when the schema is saved."""
    engine, job_id, source, target = job

    def nested(levels: int) -> str:
        text = "[nickName]"
        for _ in range(levels):
            text = f'Replace({text}, "a", , , "{"a" * 100}", , )'
        return text

    with pytest.raises(ConfigurationError, match=r"jobTitle: 'Replace\(.* times longer"):
        engine.update_schema(job_id, schema_with(engine, job_id, jobTitle=function(nested(5))))
    engine.update_schema(job_id, schema_with(engine, job_id, jobTitle=function(nested(4))))
    source.put("User", "ok", {"userName": "a", "nickName": "b"})
    source.put("User", "bad", {"userName": "b", "nickName": "a" * 100})
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed and 1 == len(target.list("User"))
    assert "Replace: the value would be 100,000,000 characters" in engine.escrows(job_id)[0].error


def test_ignore_flow_if_null_or_empty_never_clears(job: Any) -> None:
    """IgnoreFlowIfNullOrEmpty drops the attribute from the flow: the target keeps its value."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(engine, job_id, department=function("IgnoreFlowIfNullOrEmpty([department])")),
    )
    source.put("User", "u1", {"userName": "a", "department": "Sales"})
    engine.run_cycle(job_id)
    source.put("User", "u1", {"userName": "a", "displayName": "A"})
    engine.run_cycle(job_id)
    assert {
        "userName": "a",
        "displayName": "A",
        "department": "Sales",
        "active": "True",
    } == only_user(target)


def test_object_add_only_flows_on_create_only(job: Any, clock: ManualClock) -> None:
    """An ObjectAddOnly mapping (a random initial password) is set once, never updated."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            password=function("Redact(RandomString(12,2,2,2,2))", flowType="ObjectAddOnly"),
        ),
    )
    source.put("User", "u1", {"userName": "a", "displayName": "A"})
    engine.run_cycle(job_id)
    first = only_user(target)["password"]
    assert 12 == len(first)
    source.put("User", "u1", {"userName": "a", "displayName": "B"})
    writes = target.writes
    engine.run_cycle(job_id)
    assert first == only_user(target)["password"]
    assert writes + 1 == target.writes
    records = engine.provisioning_logs(job_id)
    assert first not in repr(records)


def test_select_unique_value_checks_the_target(job: Any) -> None:
    """SelectUniqueValue picks the first candidate no target object holds yet."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            mail=function(
                'SelectUniqueValue(Join("@", [givenName], "x.org"), '
                'Join("@", Join(".", [givenName], [surname]), "x.org"))',
                flowType="ObjectAddOnly",
            ),
        ),
    )
    target.create("User", {"userName": "other", "mail": "ada@x.org"})
    source.put("User", "u1", {"userName": "a", "givenName": "ada", "surname": "l"})
    engine.run_cycle(job_id)
    mails = sorted(u["mail"] for u in target.list("User").values())
    assert ["ada.l@x.org", "ada@x.org"] == mails


def test_default_value_and_constant(job: Any) -> None:
    """defaultValue fills a null source; constants flow as they are."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            city={"source": {"type": "Attribute", "name": "city"}, "defaultValue": "Paris"},
            jobTitle={"source": {"type": "Constant", "name": "Staff"}},
        ),
    )
    source.put("User", "u1", {"userName": "a"})
    engine.run_cycle(job_id)
    assert "Paris" == only_user(target)["city"] and "Staff" == only_user(target)["jobTitle"]


def test_multi_valued_flow_types(job: Any) -> None:
    """MultiValueAddOnly adds new values and never removes target values."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            proxyAddresses={
                "source": {"type": "Attribute", "name": "proxyAddresses"},
                "flowType": "MultiValueAddOnly",
            },
        ),
    )
    source.put("User", "u1", {"userName": "a", "proxyAddresses": ["smtp:a@x"]})
    engine.run_cycle(job_id)
    source.put("User", "u1", {"userName": "a", "proxyAddresses": ["smtp:b@x"]})
    engine.run_cycle(job_id)
    assert ["smtp:a@x", "smtp:b@x"] == only_user(target)["proxyAddresses"]


def test_attribute_add_only_fills_but_never_overwrites(job: Any) -> None:
    """AttributeAddOnly sets an attribute the target lacks and leaves a set one alone."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            city={"source": {"type": "Attribute", "name": "city"}, "flowType": "AttributeAddOnly"},
        ),
    )
    source.put("User", "u1", {"userName": "a"})
    engine.run_cycle(job_id)
    source.put("User", "u1", {"userName": "a", "city": "Oslo"})
    engine.run_cycle(job_id)
    assert "Oslo" == only_user(target)["city"]
    source.put("User", "u1", {"userName": "a", "city": "Lima"})
    engine.run_cycle(job_id)
    assert "Oslo" == only_user(target)["city"]


def test_matching_priority_tries_attributes_in_order(job: Any) -> None:
    """With several matching attributes, a miss on the first tries the next."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(
            engine,
            job_id,
            userName={"source": {"type": "Attribute", "name": "userName"}, "matchingPriority": 1},
            employeeId={
                "source": {"type": "Attribute", "name": "employeeId"},
                "matchingPriority": 2,
            },
        ),
    )
    existing = target.create("User", {"userName": "old-name", "employeeId": "42"})
    source.put("User", "u1", {"userName": "new-name", "employeeId": "42"})
    engine.run_cycle(job_id)
    assert [existing] == list(target.list("User"))
    assert "new-name" == target.get("User", existing)["userName"]  # type: ignore[index]


# ------------------------------------------------------------------------------ references
def test_manager_and_members_resolve_through_links(job: Any) -> None:
    """manager and group members become target refs, even when the manager is read after
    the report in the same cycle."""
    engine, job_id, source, target = job
    source.put("User", "a-report", {"userName": "report", "manager": "z-boss"})
    source.put("User", "z-boss", {"userName": "boss"})
    source.put("Group", "g1", {"displayName": "Team", "members": ["a-report", "z-boss"]})
    run = engine.run_cycle(job_id)
    assert 0 == run.count_escrowed
    by_name = {u["userName"]: ref for ref, u in target.list("User").items()}
    report = target.get("User", by_name["report"])
    assert report is not None and by_name["boss"] == report["manager"]
    group = next(iter(target.list("Group").values()))
    assert sorted([by_name["report"], by_name["boss"]]) == sorted(group["members"])


def test_unresolved_reference_is_kept_and_resolved_next_cycle(job: Any, clock: ManualClock) -> None:
    """A reference to an object not provisioned yet is escrowed, not dropped, and flows once
    the referenced object exists."""
    engine, job_id, source, target = job
    source.put("User", "report", {"userName": "report", "manager": "boss"})
    target.fail_object("User", "boss-name", times=1)
    source.put("User", "boss", {"userName": "boss-name"})
    first = engine.run_cycle(job_id)
    assert 1 == first.count_escrowed  # the boss itself failed
    escrows = {e.anchor: e.error for e in engine.escrows(job_id)}
    assert "ReferenceNotResolved" in escrows["report"]
    clock.advance(timedelta(minutes=1))
    engine.run_cycle(job_id)
    by_name = {u["userName"]: ref for ref, u in target.list("User").items()}
    report = target.get("User", by_name["report"])
    assert report is not None and by_name["boss-name"] == report["manager"]
    assert [] == engine.escrows(job_id)


def test_reference_to_an_unmapped_type_is_refused(job: Any) -> None:
    """A Reference attribute needs a mapping that provisions the referenced type."""
    engine, job_id, _, _ = job
    schema = to_graph(engine.get_schema(job_id))
    schema["synchronizationRules"][0]["objectMappings"][0]["enabled"] = False
    with pytest.raises(ConfigurationError, match="refers to User objects"):
        engine.update_schema(job_id, schema)


def test_expressions_are_compiled_once_per_schema(job: Any, monkeypatch: Any) -> None:
    """Cycles never parse expressions: they were compiled when the schema was saved."""
    engine, job_id, source, target = job
    engine.update_schema(
        job_id,
        schema_with(engine, job_id, displayName=function('Join(" ", [givenName], [surname])')),
    )

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("parsed during a cycle")

    monkeypatch.setattr(syntax._PARSER, "parse", refuse)
    for n in range(20):
        source.put("User", f"u{n}", {"userName": f"u{n}", "givenName": "A", "surname": str(n)})
    assert 20 == engine.run_cycle(job_id).count_exported
    assert (
        "A 7"
        == next(u for u in target.list("User").values() if u["userName"] == "u7")["displayName"]
    )
