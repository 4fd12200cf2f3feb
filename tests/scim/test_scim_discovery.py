"""The SCIM connector's discover against the real scim2-server: User (core and enterprise
extension) and Group from /Schemas and /ResourceTypes, in Entra's attribute names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import CredentialsError, UnreachableError
from connectors.discovery import Discoverable
from connectors.scim import ScimSource, ScimTarget
from connectors.scim.paths import parse
from tests.scim.server import ENTERPRISE_SCHEMA, ScimServer


@pytest.mark.parametrize("kind", [ScimSource, ScimTarget])
def test_discover_users_and_groups(scim_server: ScimServer, kind: type[ScimSource]) -> None:
    connector = kind(scim_server.url, scim_server.token.reveal())
    assert isinstance(connector, Discoverable)
    try:
        found = connector.discover()
    finally:
        connector.close()
    assert [o.name for o in found.objects] == ["User", "Group"]
    user = {a.name: a for a in found.objects[0].attributes}
    group = {a.name: a for a in found.objects[1].attributes}
    assert user["id"].anchor and user["userName"].required
    manager = user[f"{ENTERPRISE_SCHEMA}:manager"]
    assert manager.type == "Reference" and manager.referenced_objects == ("User",)
    assert f"{ENTERPRISE_SCHEMA}:department" in user
    assert user["active"].type == "Boolean" and user["name.givenName"].type == "String"
    assert 'emails[type eq "work"].value' in user
    assert 'phoneNumbers[type eq "mobile"].value' in user
    assert 'addresses[type eq "work"].postalCode' in user
    assert user["groups"].type == "Reference" and user["groups"].mutability == "ReadOnly"
    members = group["members"]
    assert members.type == "Reference" and members.multivalued
    assert members.referenced_objects == ("User", "Group")
    assert group["displayName"].required
    for name in [*user, *group]:
        parse(name)


def test_discover_refused_token_and_server_down(
    make_scim_server: Callable[[str], ScimServer],
) -> None:
    server = make_scim_server("down")
    wrong = ScimSource(server.url, "not-the-token")
    with pytest.raises(CredentialsError):
        wrong.discover()
    wrong.close()
    server.stop()
    gone = ScimTarget(server.url, server.token.reveal(), timeout=2.0)
    with pytest.raises(UnreachableError):
        gone.discover()
    gone.close()
