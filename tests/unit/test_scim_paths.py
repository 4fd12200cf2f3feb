"""Entra's flat SCIM names <-> resources, and filter escaping (pure functions)."""

from __future__ import annotations

import pytest

from connectors.scim.paths import (
    ENTERPRISE,
    USER_ATTRIBUTES,
    USER_SCHEMA,
    ScimPath,
    build_resource,
    equals_filter,
    flatten,
    parse,
    patch_value,
    unquote,
)

RESOURCE = {
    "id": "u1",
    "userName": "ada@example.org",
    "active": False,
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "Emails": [
        {"type": "home", "value": "ada@home"},
        {"type": "Work", "value": "ada@work", "primary": True},
    ],
    "phoneNumbers": [{"type": "mobile", "value": "+1 555"}],
    "addresses": [{"type": "work", "locality": "London", "country": "GB"}],
    "entitlements": [{"value": "a"}, {"value": "b"}],
    ENTERPRISE: {"department": "R&D", "manager": {"value": "m1", "$ref": "../Users/m1"}},
}


def test_parse() -> None:
    assert parse('emails[type eq "work"].value') == ScimPath("emails", "value", ("type", "work"))
    assert parse("name.givenName") == ScimPath("name", "givenName")
    assert parse(f"{ENTERPRISE}:manager") == ScimPath("manager", schema=ENTERPRISE)
    for bad in ('emails[type co "x"].value', 'emails[type eq "x"]', "urn:x:", ""):
        with pytest.raises(ValueError):
            parse(bad)


def test_flatten_entra_names() -> None:
    flat = flatten(RESOURCE, [*USER_ATTRIBUTES, "entitlements.value"])
    assert flat == {
        "userName": "ada@example.org",
        "active": False,
        "name.givenName": "Ada",
        "name.familyName": "Lovelace",
        'emails[type eq "work"].value': "ada@work",
        'phoneNumbers[type eq "mobile"].value': "+1 555",
        'addresses[type eq "work"].locality': "London",
        'addresses[type eq "work"].country': "GB",
        f"{ENTERPRISE}:department": "R&D",
        f"{ENTERPRISE}:manager": "m1",
        "entitlements.value": ["a", "b"],
    }
    group = {"displayName": "g", "members": [{"value": "u1"}, {"value": "u2"}]}
    assert flatten(group, ["displayName", "members"]) == {
        "displayName": "g",
        "members": ["u1", "u2"],
    }


def test_build_resource_is_the_inverse() -> None:
    flat = flatten(RESOURCE, [*USER_ATTRIBUTES, "entitlements.value"])
    built = build_resource([USER_SCHEMA], {**flat, "title": None})
    assert built["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert built[ENTERPRISE]["manager"] == {"value": "m1"}
    assert "title" not in built
    assert flatten(built, [*USER_ATTRIBUTES, "entitlements.value"]) == flat
    assert build_resource([], {"members": ["a", "b"]}) == {
        "schemas": [],
        "members": [{"value": "a"}, {"value": "b"}],
    }


def test_patch_values() -> None:
    assert patch_value(f"{ENTERPRISE}:manager", "m2") == {"value": "m2"}
    assert patch_value("members", ["a"]) == [{"value": "a"}]
    assert patch_value("name.givenName", "Ada") == "Ada"


def test_filter_escaping() -> None:
    assert equals_filter("userName", 'a"b') == 'userName eq "a\\"b"'
    assert equals_filter("userName", "a\\b") == 'userName eq "a\\\\b"'
    assert equals_filter("active", True) == "active eq true"
    assert unquote('"a\\"b\\\\c"') == 'a"b\\c'
