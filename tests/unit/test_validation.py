"""Schemas are checked when saved: what would run wrongly or silently is refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from connectors.memory import MemoryDirectory
from engine import ManualClock, MappingError, SyncEngine
from engine.mapping import mapping_key
from engine.model import SynchronizationSchema, from_graph, to_graph
from engine.templates import builtin_templates
from engine.validation import validate_schema

TEMPLATE = to_graph(builtin_templates()["memoryToMemory"].schema)


def schema(change: Callable[[dict[str, Any]], object]) -> SynchronizationSchema:
    """The memoryToMemory schema after ``change`` edits its Graph JSON."""
    body = copy.deepcopy(TEMPLATE)
    change(body)
    return from_graph(body, SynchronizationSchema)


def users(body: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = body["synchronizationRules"][0]["objectMappings"][0]
    return mapping


def target_user(body: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = body["directories"][1]["objects"][0]
    return obj


def refused(change: Callable[[dict[str, Any]], object], words: str) -> None:
    with pytest.raises(MappingError, match=words):
        validate_schema(schema(change))


def test_the_template_passes() -> None:
    """The built-in memoryToMemory schema is valid."""
    validate_schema(schema(lambda body: None))


def test_unknown_object_names_are_refused() -> None:
    """A sourceObjectName or targetObjectName the directory does not define is refused."""
    refused(
        lambda b: users(b).update(sourceObjectName="Person"),
        r"objectMappings\[0\]\.sourceObjectName: .*defines no object 'Person'",
    )
    refused(
        lambda b: users(b).update(targetObjectName="user"),
        "defines no object 'user' .did you mean User",
    )


def test_object_names_are_free_when_the_directory_lists_no_objects() -> None:
    """A directory without object definitions (or not described at all) constrains nothing."""
    validate_schema(
        schema(
            lambda b: (
                b["directories"][0].update(objects=[]),
                users(b).update(sourceObjectName="Person"),
            )
        )
    )


def test_unknown_target_attribute_is_refused() -> None:
    """A targetAttributeName the target object does not define is refused, with its path."""
    refused(
        lambda b: users(b)["attributeMappings"].append(
            {"targetAttributeName": "shoeSize", "source": {"type": "Attribute", "name": "x"}}
        ),
        r"attributeMappings\[12\]: the target object User defines no attribute 'shoeSize'",
    )


def test_objects_need_one_anchor() -> None:
    """A mapped object whose definition has no anchor attribute (or two) is refused."""

    def no_anchor(body: dict[str, Any]) -> None:
        target_user(body)["attributes"][0]["anchor"] = False

    refused(no_anchor, "target object User must define exactly one anchor")

    def two(body: dict[str, Any]) -> None:
        target_user(body)["attributes"][1]["anchor"] = True

    refused(two, "it defines 2")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda b: b["synchronizationRules"].append(copy.deepcopy(b["synchronizationRules"][0])),
            "duplicate rule id",
        ),
        (
            lambda b: b["directories"].append(copy.deepcopy(b["directories"][0])),
            r"\$\.directories\[2\]: duplicate directory 'Memory Source'",
        ),
        (
            lambda b: b["directories"][0]["objects"].append(
                copy.deepcopy(b["directories"][0]["objects"][0])
            ),
            "duplicate object 'User'",
        ),
        (
            lambda b: target_user(b)["attributes"].append({"name": "MAIL"}),
            "duplicate attribute 'mail'",
        ),
        (
            lambda b: users(b)["attributeMappings"].append(
                copy.deepcopy(users(b)["attributeMappings"][1])
            ),
            "duplicate targetAttributeName 'displayname'",
        ),
    ],
)
def test_duplicates_are_refused(change: Callable[[dict[str, Any]], object], words: str) -> None:
    """Two rules, directories, objects, attributes or target mappings of one name: refused."""
    refused(change, words)


def test_reference_matching_attribute_is_refused() -> None:
    """A Reference attribute cannot be the matching attribute (every user would escrow)."""

    def match_on_manager(body: dict[str, Any]) -> None:
        for am in users(body)["attributeMappings"]:
            am["matchingPriority"] = 1 if am["targetAttributeName"] == "manager" else 0

    refused(match_on_manager, "manager is a Reference and cannot be a matching attribute")


@pytest.mark.parametrize(
    "source",
    [
        {"type": "Attribute", "name": "mail", "expression": "[mail"},
        {"type": "Attribute", "name": "mail", "expression": "[upn]"},
        {"type": "Constant", "name": "x", "expression": '"y"'},
        {
            "type": "Function",
            "name": "ToLower",
            "parameters": [
                {"key": "source", "value": {"type": "Attribute", "name": "a", "expression": "(("}}
            ],
        },
    ],
)
def test_expressions_are_checked_everywhere(source: dict[str, Any]) -> None:
    """Unparsable or contradicting expressions are refused in any source, at any depth."""

    def put(body: dict[str, Any]) -> None:
        users(body)["attributeMappings"][4]["source"] = source

    refused(put, r"attributeMappings\[4\]\.source")


def test_disabled_mappings_are_checked_too() -> None:
    """A disabled mapping with a bad expression or regex is refused now, not when enabled."""

    def bad(body: dict[str, Any]) -> None:
        users(body)["enabled"] = False
        users(body)["attributeMappings"][4]["source"] = {
            "type": "Function",
            "expression": "Nope([x])",
        }

    refused(bad, "unknown function Nope")

    def bad_regex(body: dict[str, Any]) -> None:
        users(body)["scope"] = {
            "groups": [
                {
                    "clauses": [
                        {
                            "operatorName": "REGEX MATCH",
                            "sourceOperandName": "x",
                            "targetOperand": {"values": ["("]},
                        }
                    ]
                }
            ]
        }

    refused(bad_regex, r"objectMappings\[0\]\.scope: invalid regular expression")


def second_users_mapping(name: str | None) -> Callable[[dict[str, Any]], object]:
    def change(body: dict[str, Any]) -> None:
        other = copy.deepcopy(users(body))
        other["name"] = name
        other["scope"] = {
            "groups": [
                {
                    "clauses": [
                        {
                            "operatorName": "EQUALS",
                            "sourceOperandName": "department",
                            "targetOperand": {"values": ["Sales"]},
                        }
                    ]
                }
            ]
        }
        body["synchronizationRules"][0]["objectMappings"].append(other)

    return change


def test_two_user_mappings_get_their_own_keys() -> None:
    """A second User->User mapping in a rule keys its state by its name; the first keeps the
    historical key, so stored watermarks stay valid."""
    parsed = schema(second_users_mapping("Sales users"))
    validate_schema(parsed)
    rule = parsed.synchronization_rules[0]
    keys = [mapping_key(rule, m) for m in rule.object_mappings]
    assert [
        "memoryToMemory:User:User",
        "memoryToMemory:Group:Group",
        "memoryToMemory:User:User:Sales users",
    ] == keys


def test_two_user_mappings_with_one_name_are_refused() -> None:
    """Two User->User mappings that their names cannot tell apart are refused."""
    refused(second_users_mapping("Users"), r"objectMappings\[2\]: .* needs its own name")
    refused(second_users_mapping(None), "from User to User in one rule needs its own name")


def test_second_user_mapping_provisions_its_users(clock: ManualClock) -> None:
    """Through cycles, the second mapping reads from its own watermark: its users arrive."""
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(clock=clock)
    job_id = engine.create_job("memoryToMemory", source, target).id or ""
    engine.start(job_id)
    source.put("User", "u1", {"userName": "first", "department": "Eng"})
    engine.run_cycle(job_id)
    body = to_graph(engine.get_schema(job_id))
    users(body)["scope"] = {
        "groups": [
            {
                "clauses": [
                    {
                        "operatorName": "EQUALS",
                        "sourceOperandName": "department",
                        "targetOperand": {"values": ["Eng"]},
                    }
                ]
            }
        ]
    }
    second_users_mapping("Sales users")(body)
    engine.update_schema(job_id, body)
    source.put("User", "u2", {"userName": "sales", "department": "Sales"})
    engine.run_cycle(job_id)
    engine.run_cycle(job_id)
    assert {"first", "sales"} == {u["userName"] for u in target.list("User").values()}
