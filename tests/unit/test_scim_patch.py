"""The SCIM target's wire shapes, without a server: POST bodies, PATCH operations, chunks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ValueDelta
from connectors.scim.patch import (
    CORE_USER,
    ENTERPRISE_USER,
    chunked,
    equality_filter,
    flatten,
    operations,
    parse_path,
    resource,
)

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
            "roles": [],
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
        "roles": ["a", "b"],
    }
    wire = {**resource(CORE_USER, attributes), "id": "1", "meta": {"version": 'W/"1"'}}
    assert attributes == flatten(wire)


def test_one_changed_attribute_is_one_operation() -> None:
    assert [{"op": "replace", "path": WORK, "value": "b@x"}] == operations({WORK: "b@x"}, None)
    assert [{"op": "replace", "path": MANAGER, "value": {"value": "m2"}}] == operations(
        {MANAGER: "m2"}, None
    )
    assert [{"op": "remove", "path": DEPARTMENT}] == operations({DEPARTMENT: None}, None)
    assert [{"op": "remove", "path": "roles"}] == operations({"roles": []}, None)


def test_missing_elements_are_added_whole_and_merged() -> None:
    """Once the target knows the work address is missing, its parts go as one new element."""
    ops = operations(
        {
            'addresses[type eq "work"].locality': "Paris",
            'addresses[type eq "work"].country': "FR",
            WORK: "a@x",
        },
        frozenset({("emails", "work")}),
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


def test_paths() -> None:
    path = parse_path(DEPARTMENT)
    assert (ENTERPRISE_USER, "department", None, None) == (
        path.schema,
        path.attribute,
        path.type,
        path.sub,
    )
    assert ("emails", "work", "value") == (
        parse_path(WORK).attribute,
        parse_path(WORK).type,
        parse_path(WORK).sub,
    )
    for bad in ("", "a b", 'emails[value eq "x"].value', "urn:x", "name.given.name"):
        with pytest.raises(ValueError):
            parse_path(bad)


@given(st.text())
def test_filter_values_cannot_escape_their_quotes(value: str) -> None:
    """The comparison value is one JSON string, whatever it holds."""
    text = equality_filter("userName", value)
    assert text.startswith("userName eq ")
    assert value == json.loads(text.removeprefix("userName eq "))


def test_filter_literals() -> None:
    assert "active eq true" == equality_filter("active", True)
    assert "x eq 3" == equality_filter("x", 3)
