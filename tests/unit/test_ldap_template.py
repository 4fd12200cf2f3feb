"""The ldapToLdap template: object types from the schema's directory definitions (metadata
and attribute definitions), endpoints from the secrets; no server needed."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ldap import LdapSource, LdapTarget
from engine import ConfigurationError, to_graph
from engine.model import SynchronizationSchema, from_graph
from engine.templates import builtin_templates
from engine.templates._ldap import build_source, build_target, object_types

SECRETS = {
    "SourceUrl": "ldap://127.0.0.1:1389",
    "SourceUserName": "cn=admin,dc=src",
    "SourcePassword": "not-a-real-one",
    "SourceBaseDn": "dc=src",
    "Url": "ldaps://127.0.0.1:1636",
    "UserName": "cn=admin,dc=dst",
    "Password": "not-a-real-one",
    "BaseDn": "dc=dst",
}


def schema() -> SynchronizationSchema:
    return builtin_templates()["ldapToLdap"].schema


def test_the_template_needs_both_sides_secrets_and_builds_ldap_connectors() -> None:
    template = builtin_templates()["ldapToLdap"]
    assert set(template.required_secrets) == set(SECRETS)
    source, target = build_source(SECRETS, schema()), build_target(SECRETS, schema())
    assert isinstance(source, LdapSource) and isinstance(target, LdapTarget)
    assert "not-a-real-one" not in repr(source) + repr(target)


def test_object_types_come_from_the_directory_definitions() -> None:
    """Container relative to the base DN, filter, object classes, RDN attribute; the anchor,
    Reference, Binary and multi-valued attribute definitions."""
    directory = schema().directories[0]
    users, groups = object_types(directory, "dc=src")
    assert (users.name, users.base_dn, users.filter, users.object_classes, users.rdn_attribute) == (
        "User", "ou=people,dc=src", "(objectClass=inetOrgPerson)", ("inetOrgPerson",), "uid"
    )  # fmt: skip
    assert users.anchor_attribute == "entryUUID"
    assert users.references == ("manager",) and users.binary == ("jpegphoto",)
    assert "mail" in users.multivalued
    assert (groups.base_dn, groups.rdn_attribute, groups.references) == (
        "ou=groups,dc=src", "cn", ("member",)
    )  # fmt: skip


def edited(change: dict[str, Any]) -> SynchronizationSchema:
    body = to_graph(schema())
    user = body["directories"][0]["objects"][0]
    user["metadata"] = [{"key": k, "value": v} for k, v in change.items()]
    return from_graph(body, SynchronizationSchema)


def test_metadata_overrides_the_template_defaults() -> None:
    custom = edited(
        {
            "BaseDn": "ou=staff,o=corp",
            "Filter": "(employeeType=staff)",
            "ObjectClasses": "inetOrgPerson, posixAccount",
            "RdnAttribute": "cn",
        }
    )
    users = object_types(custom.directories[0], "dc=src")[0]
    assert (users.base_dn, users.filter, users.object_classes, users.rdn_attribute) == (
        "ou=staff,o=corp", "(employeeType=staff)", ("inetOrgPerson", "posixAccount"), "cn"
    )  # fmt: skip
    plain = object_types(edited({}).directories[0], "dc=src")[0]
    assert (plain.base_dn, plain.filter, plain.rdn_attribute) == ("dc=src", "(objectClass=*)", "cn")


def test_bad_secrets_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="SourceDeltaMode"):
        build_source({**SECRETS, "SourceDeltaMode": "changelog"}, schema())
    assert build_source({**SECRETS, "SourceDeltaMode": "Timestamp"}, schema()).delta_mode == (
        "timestamp"
    )
    # Active Directory's modes need the objectGUID anchor (the template's is entryUUID)
    with pytest.raises(ConfigurationError, match="objectGUID"):
        build_source({**SECRETS, "SourceDeltaMode": "dirsync"}, schema())
