"""The Active Directory templates' defaults, read from their schemas (no server needed): the
domain root as the container, Entra's filters, objectGUID anchors, timestamp deltas unless
SourceDeltaMode says otherwise, and the RangeSize metadata."""

from __future__ import annotations

import pytest

from connectors.ldap import LdapSource
from engine import ConfigurationError, MappingError, to_graph
from engine.model import SynchronizationSchema, from_graph
from engine.templates import AD_DELTA_MODE, builtin_templates
from engine.templates._ldap import build_source, check_schema, object_types

SOURCE = {
    "SourceUrl": "ldap://127.0.0.1:1389",
    "SourceUserName": "Administrator@example.org",
    "SourcePassword": "not-a-real-one",
    "SourceBaseDn": "DC=example,DC=org",
}


@pytest.mark.parametrize("name", ["adToScim", "adToLdap"])
def test_users_and_groups_under_the_domain_root_anchored_on_object_guid(name: str) -> None:
    template = builtin_templates()[name]
    assert set(SOURCE) <= set(template.required_secrets)
    users, groups = object_types(template.schema.directories[0], SOURCE["SourceBaseDn"])
    assert (users.base_dn, users.filter) == (
        "DC=example,DC=org", "(&(objectClass=user)(objectCategory=person))"
    )  # fmt: skip
    assert (groups.base_dn, groups.filter) == ("DC=example,DC=org", "(objectClass=group)")
    assert users.anchor_attribute == groups.anchor_attribute == "objectGUID"
    assert users.references == ("manager",) and groups.ranged == ()
    assert groups.references == ("member",) and "member" in groups.multivalued
    assert template.build_source is not None
    source = template.build_source(SOURCE, template.schema)
    assert isinstance(source, LdapSource) and source.delta_mode == AD_DELTA_MODE
    assert "not-a-real-one" not in repr(source)
    mapped = {
        m.target_attribute_name: m.source.expression if m.source else None
        for m in template.schema.synchronization_rules[0].object_mappings[0].attribute_mappings
    }
    if name == "adToScim":
        assert mapped["userName"] == "[userPrincipalName]"
        assert mapped["active"] == "IsAccountEnabled([userAccountControl])"
    else:
        assert mapped["uid"] == "[sAMAccountName]"


def test_range_size_metadata_asks_for_members_in_ranges() -> None:
    body = to_graph(builtin_templates()["adToScim"].schema)
    group = body["directories"][0]["objects"][1]
    group["metadata"].append({"key": "RangeSize", "value": "1500"})
    schema = from_graph(body, SynchronizationSchema)
    groups = object_types(schema.directories[0], "DC=example,DC=org")[1]
    assert (groups.range_size, groups.ranged) == (1500, ("member",))
    group["metadata"][-1]["value"] = "many"
    wrong = from_graph(body, SynchronizationSchema)
    with pytest.raises(MappingError, match="RangeSize"):  # refused when the schema is saved
        check_schema(wrong, True)
    with pytest.raises(ConfigurationError, match="RangeSize"):
        build_source(SOURCE, wrong)
