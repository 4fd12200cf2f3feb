"""The LDAP connector's discover against a real slapd: the configured types' attributes from
the server's subschema (inetOrgPerson and groupOfNames with their superclasses)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import CredentialsError, UnreachableError
from connectors.discovery import Discoverable, DiscoveredAttribute
from connectors.ldap import LdapSource, LdapTarget
from tests.ldap.ldap_objects import endpoint, make_container, object_types
from tests.ldap.slapd import Slapd


def _by_name(found: object, object_name: str) -> dict[str, DiscoveredAttribute]:
    objects = {o.name: o for o in getattr(found, "objects")}
    return {a.name: a for a in objects[object_name].attributes}


@pytest.mark.parametrize("side", ["source", "target"])
def test_discover_inet_org_person_and_group(slapd_source: Slapd, side: str) -> None:
    types = object_types(make_container(slapd_source))
    connector = (
        LdapSource(endpoint(slapd_source), types, delta_mode="timestamp")
        if side == "source"
        else LdapTarget(endpoint(slapd_source), types)
    )
    assert isinstance(connector, Discoverable)
    try:
        found = connector.discover()
    finally:
        connector.close()
    assert [o.name for o in found.objects] == ["User", "Group"]
    user = _by_name(found, "User")
    assert user["manager"].type == "Reference"
    assert user["manager"].referenced_objects == ("User", "Group")
    assert user["jpegPhoto"].type == "Binary" and user["userPassword"].type == "Binary"
    assert user["mail"].multivalued and user["mail"].type == "String"
    assert not user["employeeNumber"].multivalued  # SINGLE-VALUE in inetorgperson.schema
    assert user["cn"].required and user["sn"].required  # MUST of person, a superclass
    assert not user["uid"].required and user["uid"].type == "String"
    assert "telephoneNumber" in user and "ou" in user  # MAY of organizationalPerson
    assert "member" not in user  # only the configured classes
    group = _by_name(found, "Group")
    assert group["member"].type == "Reference" and group["member"].multivalued
    assert group["member"].required and group["cn"].required
    assert "AttributeDataTypes" in found.discoverabilities


def test_discover_refused_bind_and_server_down(make_slapd: Callable[..., Slapd]) -> None:
    server = make_slapd("down")
    types = object_types("dc=example,dc=org")
    wrong = LdapTarget(endpoint(server, password="wrong"), types)
    with pytest.raises(CredentialsError):
        wrong.discover()
    wrong.close()
    server.stop()
    source = LdapSource(endpoint(server, connect_timeout=2.0), types, delta_mode="timestamp")
    with pytest.raises(UnreachableError):
        source.discover()
    source.close()
