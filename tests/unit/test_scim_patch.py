"""The SCIM target's wire shapes, without a server: POST bodies, PATCH operations, chunks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ValueDelta
from connectors.scim.patch import chunked, operations, resource
from connectors.scim.paths import ENTERPRISE as ENTERPRISE_USER
from connectors.scim.paths import USER_ATTRIBUTES, equals_filter, flatten
from connectors.scim.paths import USER_SCHEMA as CORE_USER

WORK = 'emails[type eq "work"].value'
DEPARTMENT = f"{ENTERPRISE_USER}:department"
MANAGER = f"{ENTERPRISE_USER}:manager"


def test_user_body_as_entra_posts_it() -> None:
    body = resource(
        CORE_USER,
        {
            "userName": "ada",
            "active": True,
            "name.givenName": "Ada",
            "name.familyName": "Lovelace",
            WORK: "ada@x",
            'phoneNumbers[type eq "mobile"].value': "+1",
            'addresses[type eq "work"].locality': "Paris",
            'addresses[type eq "work"].postalCode': "75001",
            DEPARTMENT: "R&D",
            MANAGER: "m-id",
            "title": None,
            "roles.value": [],
        },
    )
    assert {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": "ada",
        "active": True,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"type": "work", "primary": True, "value": "ada@x"}],
        "phoneNumbers": [{"type": "mobile", "value": "+1"}],
        "addresses": [{"type": "work", "locality": "Paris", "postalCode": "75001"}],
        ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-id"}},
    } == body


def test_core_only_body_has_no_extension_schema() -> None:
    assert {"schemas": [CORE_USER], "userName": "u"} == resource(CORE_USER, {"userName": "u"})


def test_flatten_inverts_resource() -> None:
    attributes = {
        "userName": "ada",
        "active": False,
        "name.givenName": "Ada",
        WORK: "ada@x",
        'addresses[type eq "work"].locality': "Paris",
        DEPARTMENT: "R&D",
        MANAGER: "m-id",
        "roles.value": ["a", "b"],
    }
    wire = {**resource(CORE_USER, attributes), "id": "1", "meta": {"version": 'W/"1"'}}
    assert attributes == flatten(wire, [*USER_ATTRIBUTES, "roles.value"])


def test_one_changed_attribute_is_one_operation() -> None:
    assert [{"op": "replace", "path": WORK, "value": "b@x"}] == operations({WORK: "b@x"}, None)
    assert [{"op": "replace", "path": MANAGER, "value": {"value": "m2"}}] == operations(
        {MANAGER: "m2"}, None
    )
    assert [{"op": "remove", "path": DEPARTMENT}] == operations({DEPARTMENT: None}, None)
    assert [{"op": "remove", "path": "roles.value"}] == operations({"roles.value": []}, None)
    assert [
        {"op": "replace", "path": "roles", "value": [{"value": "a"}, {"value": "b"}]}
    ] == operations({"roles.value": ["a", "b"]}, None)
    assert [{"op": "replace", "path": "active", "value": False}] == operations(
        {"active": False}, None
    )
    with pytest.raises(ValueError):
        operations({"title": ["a", "b"]}, None)


def test_missing_elements_are_added_whole_and_merged() -> None:
    """Once the target knows the work address is missing, its parts go as one new element."""
    ops = operations(
        {
            'addresses[type eq "work"].locality': "Paris",
            'addresses[type eq "work"].country': "FR",
            WORK: "a@x",
        },
        {"emails": [{"type": "Work", "value": "old@x"}]},
    )
    assert [
        {
            "op": "add",
            "path": "addresses",
            "value": [{"type": "work", "locality": "Paris", "country": "FR"}],
        },
        {"op": "replace", "path": WORK, "value": "a@x"},
    ] == ops


def test_value_delta_removes_by_filter_and_adds_in_one_operation() -> None:
    ops = operations({"members": ValueDelta(add=("c", "d"), remove=('a"1',))}, None)
    assert [
        {"op": "remove", "path": 'members[value eq "a\\"1"]'},
        {"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "d"}]},
    ] == ops


def test_chunks_bound_values_per_request() -> None:
    parts = list(chunked(tuple("r" * 30), tuple(str(n) for n in range(220)), 100))
    assert [100, 100, 50] == [len(r) + len(a) for r, a in parts]
    assert 30 == len(parts[0][0])
    assert [str(n) for n in range(220)] == [v for _, a in parts for v in a]
    assert [] == list(chunked((), (), 100))
    with pytest.raises(ValueError):
        list(chunked(("a",), (), 0))


@given(st.text())
def test_filter_values_cannot_escape_their_quotes(value: str) -> None:
    """The comparison value is one quoted string, whatever it holds."""
    text = equals_filter("userName", value).removeprefix("userName eq ")
    assert text.startswith('"') and text.endswith('"')
    assert '"' not in text[1:-1].replace("\\\\", "").replace('\\"', "")


def test_filter_literals() -> None:
    assert "active eq true" == equals_filter("active", True)
    assert "x eq 3" == equals_filter("x", 3)
