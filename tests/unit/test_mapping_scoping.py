"""The pure core: mapping, diff, scoping, settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigurationError, MappingError
from engine.mapping import compile_mapping, diff, map_object
from engine.model import (
    Filter,
    FilterClause,
    FilterGroup,
    FilterOperand,
    KeyValuePair,
    SynchronizationSchema,
    from_graph,
)
from engine.scoping import compile_scope
from engine.settings import JobSettings, quarantine_delay

SCHEMA = from_graph(
    {
        "directories": [
            {
                "name": "T",
                "objects": [{"name": "User", "attributes": [{"name": "code", "caseExact": True}]}],
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
                                "targetAttributeName": "userName",
                                "matchingPriority": 2,
                                "source": {"type": "Attribute", "name": "upn"},
                            },
                            {
                                "targetAttributeName": "mail",
                                "matchingPriority": 1,
                                "source": {"type": "Attribute", "name": "mail"},
                            },
                            {
                                "targetAttributeName": "code",
                                "source": {"type": "Attribute", "name": "code"},
                            },
                            {
                                "targetAttributeName": "company",
                                "source": {"type": "Constant", "name": "ACME"},
                            },
                            {
                                "targetAttributeName": "title",
                                "defaultValue": "Staff",
                                "source": {"type": "Attribute", "name": "title"},
                            },
                            {
                                "targetAttributeName": "initialPassword",
                                "flowType": "ObjectAddOnly",
                                "source": {"type": "Attribute", "name": "pw"},
                            },
                            {
                                "targetAttributeName": "proxies",
                                "flowType": "ValueAddOnly",
                                "source": {"type": "Attribute", "name": "proxies"},
                            },
                        ],
                    }
                ],
            }
        ],
    },
    SynchronizationSchema,
)
RULE = SCHEMA.synchronization_rules[0]
MAPPING = compile_mapping(SCHEMA, RULE, RULE.object_mappings[0])


def test_map_object_direct_constant_default() -> None:
    """Direct attributes (any case), constants and defaultValue for missing sources."""
    got = map_object(MAPPING, {"UPN": "a@x", "mail": "m@x", "code": "Ab"})
    assert {
        "userName": "a@x",
        "mail": "m@x",
        "code": "Ab",
        "company": "ACME",
        "title": "Staff",
    } == got


def test_matching_order_follows_priority() -> None:
    """Matching attributes are tried lowest matchingPriority first."""
    assert ("mail", "userName") == MAPPING.matching


def test_diff_honours_case_exact_and_flow_types() -> None:
    """caseExact decides case-only changes; ObjectAddOnly never updates; ValueAddOnly adds."""
    exported = {"userName": "a@x", "code": "ab", "initialPassword": "p1", "proxies": ["x"]}
    desired = {"userName": "A@X", "code": "AB", "initialPassword": "p2", "proxies": ["y"]}
    assert {"code": "AB", "proxies": ["x", "y"]} == diff(MAPPING, desired, exported)


def test_diff_against_unknown_values_sets_everything_and_clears_the_rest() -> None:
    """Joining an object whose values we do not know writes every desired value and clears
    every other mapped attribute, except add-only ones (ObjectAddOnly, ValueAddOnly)."""
    assert {"userName": "a", "mail": None, "code": "c", "company": None, "title": None} == diff(
        MAPPING, {"userName": "a", "code": "c"}, None
    )


def test_bad_function_sources_are_refused_at_compile_time() -> None:
    """A Function mapping that cannot be compiled is refused, naming the target attribute."""
    schema = from_graph(
        {
            "synchronizationRules": [
                {
                    "objectMappings": [
                        {
                            "sourceObjectName": "User",
                            "targetObjectName": "User",
                            "attributeMappings": [
                                {
                                    "targetAttributeName": "userName",
                                    "matchingPriority": 1,
                                    "source": {"type": "Function", "name": "ToLower"},
                                }
                            ],
                        }
                    ]
                }
            ]
        },
        SynchronizationSchema,
    )
    with pytest.raises(MappingError, match="userName"):
        compile_mapping(
            schema,
            schema.synchronization_rules[0],
            schema.synchronization_rules[0].object_mappings[0],
        )


def clause(op: str, name: str = "dept", *values: str) -> FilterClause:
    return FilterClause(
        operator_name=op,
        source_operand_name=name,
        target_operand=FilterOperand(values=values) if values else None,
    )


def scope(*groups: list[FilterClause]) -> Any:
    return compile_scope(Filter(groups=tuple(FilterGroup(clauses=tuple(g)) for g in groups)))


@pytest.mark.parametrize(
    ("clauses", "attributes", "expected"),
    [
        ([clause("EQUALS", "dept", "Sales")], {"dept": "Sales"}, True),
        ([clause("EQUALS", "dept", "Sales")], {"dept": "sales"}, False),  # case-sensitive
        ([clause("NOT EQUALS", "dept", "Sales")], {"dept": "R&D"}, True),
        ([clause("NOT EQUALS", "dept", "Sales")], {}, False),  # null is never in scope
        ([clause("IS NULL")], {}, True),
        ([clause("IS NOT NULL")], {"dept": ""}, False),
        ([clause("IS TRUE", "on")], {"on": "True"}, True),
        ([clause("IS FALSE", "on")], {"on": False}, True),
        ([clause("REGEX MATCH", "n", "^[1-9][0-9]$")], {"n": "42"}, True),
        ([clause("NOT REGEX MATCH", "n", "^[1-9][0-9]$")], {"n": "7"}, True),
        ([clause("NOT REGEX MATCH", "n", "x")], {}, False),
        ([clause("Greater_Than", "n", "10")], {"n": "11"}, True),
        ([clause("Greater_Than_OR_EQUALS", "n", "10")], {"n": 10}, True),
        ([clause("Less_Than", "n", "10")], {"n": "abc"}, False),
        ([clause("Includes", "mail", "@corp")], {"mail": "a@corp.com"}, True),
        ([clause("Excludes", "mail", "@corp")], {"mail": "a@corp.com"}, False),
        ([clause("ENDS_WITH", "mail", ".com")], {"mail": "a@corp.com"}, True),
        ([clause("EQUALS", "tags", "b")], {"tags": ["a", "b"]}, True),  # any value
        ([clause("NOT EQUALS", "tags", "b")], {"tags": ["a", "b"]}, False),  # no value may
        ([clause("NOT EQUALS", "tags", "c")], {"tags": ["a", "b"]}, True),
        ([clause("Excludes", "tags", "x")], {"tags": ["ax", "b"]}, False),
        ([clause("IS NULL", "tags")], {"tags": []}, True),
        ([clause("&", "flags", "2")], {"flags": "6"}, True),
        ([clause("!&", "flags", "2")], {"flags": "5"}, True),
        ([clause("STARTS_WITH", "mail", "adm")], {"mail": "admin@x"}, True),
        ([clause("equals", "dept", "Sales")], {"DEPT": "Sales"}, True),  # names ignore case
        (
            [clause("EQUALS", "dept", "Sales"), clause("IS NOT NULL", "mail")],
            {"dept": "Sales"},
            False,
        ),  # AND inside a group
    ],
)
def test_scoping_operators(
    clauses: list[FilterClause], attributes: dict[str, Any], expected: bool
) -> None:
    """Each operator behaves as Entra documents, including null and case rules."""
    assert expected == scope(clauses)(attributes)


def test_groups_are_ored() -> None:
    """An object is in scope when any group holds."""
    predicate = scope([clause("EQUALS", "dept", "A")], [clause("EQUALS", "dept", "B")])
    assert predicate({"dept": "B"}) and not predicate({"dept": "C"})


def test_bad_scoping_filters_are_refused() -> None:
    """Unknown operators, missing operands and bad regexes fail at compile time."""
    for bad in (
        clause("SOUNDS LIKE", "dept", "x"),
        clause("EQUALS", "dept"),
        clause("REGEX MATCH", "dept", "("),
    ):
        with pytest.raises(MappingError):
            scope([bad])


@given(st.text(max_size=8), st.text(max_size=8))
def test_equals_and_not_equals_partition_present_values(value: str, operand: str) -> None:
    """For any present value exactly one of EQUALS and NOT EQUALS holds; for empty, neither."""
    eq = scope([clause("EQUALS", "a", operand)])({"a": value})
    ne = scope([clause("NOT EQUALS", "a", operand)])({"a": value})
    assert (eq != ne) if value else (not eq and not ne)


values = st.one_of(st.none(), st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3))


@given(
    st.dictionaries(st.sampled_from(["userName", "mail", "code", "company", "title"]), values),
    st.dictionaries(st.sampled_from(["userName", "mail", "code", "company", "title"]), values),
)
def test_applying_the_diff_reaches_the_desired_state(
    desired: dict[str, Any], exported: dict[str, Any]
) -> None:
    """For Always attributes, exported + diff equals desired (up to case where not caseExact)."""
    desired = {k: v for k, v in desired.items() if v not in (None, [], "")}
    exported = {k: v for k, v in exported.items() if v not in (None, [], "")}
    delta = diff(MAPPING, desired, exported)
    applied = {**exported, **delta}
    applied = {k: v for k, v in applied.items() if v is not None}

    def norm(d: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            vs = v if isinstance(v, list) else [v]
            out[k] = sorted(x if k == "code" else x.lower() for x in vs)
        return out

    assert norm(desired) == norm(applied)


def test_settings_defaults_and_validation() -> None:
    """Defaults are Entra's where it has one, but a failure shows at once (issue #18): the
    first failed cycle, and 10 objects failing alike, quarantine; bad values are refused
    naming the setting."""
    defaults = JobSettings.parse(())
    assert 500 == defaults.delete_threshold
    assert 10 == defaults.escrow_minimum and 0.4 == defaults.escrow_proportion
    assert 1 == defaults.unreachable_cycles
    assert timedelta(0) == defaults.escrow_delay(1)
    assert timedelta(minutes=5) == defaults.escrow_delay(2)
    assert timedelta(days=1) == defaults.escrow_delay(40)
    custom = JobSettings.parse(
        [KeyValuePair(name="EscrowRetryBackoff", value="PT1M, PT1H")],
        {"SyncNotificationSettings": '{"DeleteThresholdEnabled": false}'},
    )
    assert custom.delete_threshold is None
    assert timedelta(hours=1) == custom.escrow_delay(7)
    for name, value in (
        ("PageSize", "0"),
        ("EscrowMaxAge", "soon"),
        ("QuarantineEscrowProportion", "3"),
    ):
        with pytest.raises(ConfigurationError, match=name):
            JobSettings.parse([KeyValuePair(name=name, value=value)])
    with pytest.raises(ConfigurationError, match="HardDeletesEnabled"):
        JobSettings.parse((), {"HardDeletesEnabled": "perhaps"})


@given(st.integers(min_value=0, max_value=1000))
def test_quarantine_backoff_grows_and_is_capped(series: int) -> None:
    """Quarantine backoff never shrinks and never exceeds a day."""
    interval = timedelta(minutes=40)
    now, after = quarantine_delay(interval, series), quarantine_delay(interval, series + 1)
    assert interval <= now <= after <= timedelta(days=1)


def test_flow_always_rides_along_with_any_update() -> None:
    """flowBehavior FlowAlways sends an unchanged attribute whenever the object is updated."""
    schema = from_graph(
        {
            "synchronizationRules": [
                {
                    "objectMappings": [
                        {
                            "sourceObjectName": "User",
                            "targetObjectName": "User",
                            "attributeMappings": [
                                {
                                    "targetAttributeName": "userName",
                                    "matchingPriority": 1,
                                    "source": {"type": "Attribute", "name": "userName"},
                                },
                                {
                                    "targetAttributeName": "title",
                                    "source": {"type": "Attribute", "name": "title"},
                                },
                                {
                                    "targetAttributeName": "company",
                                    "flowBehavior": "FlowAlways",
                                    "source": {"type": "Constant", "name": "ACME"},
                                },
                            ],
                        }
                    ]
                }
            ]
        },
        SynchronizationSchema,
    )
    rule = schema.synchronization_rules[0]
    mapping = compile_mapping(schema, rule, rule.object_mappings[0])
    exported = {"userName": "a", "title": "x", "company": "ACME"}
    assert {"title": "y", "company": "ACME"} == diff(
        mapping, {"userName": "a", "title": "y", "company": "ACME"}, exported
    )
