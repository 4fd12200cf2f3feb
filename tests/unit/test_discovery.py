"""Discovery without servers: the pure merge (engine.discovery) and what the LDAP and SCIM
connectors make of subschema definitions and /Schemas documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from connectors.discovery import (
    MAX_DISCOVERED_ATTRIBUTES,
    MAX_DISCOVERED_OBJECTS,
    MAX_DISCOVERED_TOTAL,
    DiscoveredAttribute,
    DiscoveredObject,
    DiscoveredSchema,
    DiscoveryError,
)
from connectors.ldap.config import LdapObjectType
from connectors.ldap.discovery import describe as describe_ldap
from connectors.scim.discovery import describe as describe_scim
from connectors.scim.paths import parse
from engine import discovery
from engine.errors import DiscoveryNotSupported, NotFoundError
from engine.model import (
    AttributeDefinition,
    AttributeType,
    DirectoryDefinition,
    MetadataEntry,
    Mutability,
    ObjectDefinition,
    SynchronizationRule,
    SynchronizationSchema,
)
from engine.templates import load_builtin

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

FOUND = DiscoveredSchema(
    objects=(
        DiscoveredObject(
            name="user",  # names compare case-insensitively
            attributes=(
                DiscoveredAttribute(name="UID", required=True),  # known: kept as it is
                DiscoveredAttribute(name="mail", multivalued=True),
                DiscoveredAttribute(name="jpegPhoto", type="Binary", multivalued=True),
                DiscoveredAttribute(
                    name="manager", type="Reference", referenced_objects=("User", "Group")
                ),
                DiscoveredAttribute(name="createTimestamp", type="DateTime", mutability="ReadOnly"),
            ),
        ),
        DiscoveredObject(name="Device", attributes=(DiscoveredAttribute(name="serial"),)),
    ),
    discoverabilities=("AttributeNames", "AttributeDataTypes"),
)


def schema(version: str | None = None) -> SynchronizationSchema:
    user = ObjectDefinition(
        name="User",
        attributes=(
            AttributeDefinition(name="entryUUID", anchor=True, mutability=Mutability.READ_ONLY),
            AttributeDefinition(name="uid", type=AttributeType.INTEGER, case_exact=True),
        ),
        metadata=(MetadataEntry(key="ObjectClasses", value="inetOrgPerson"),),
    )
    return SynchronizationSchema(
        version=version,
        directories=(
            DirectoryDefinition(id="src", name="Source", objects=(user,)),
            DirectoryDefinition(id="tgt", name="Target"),
        ),
        synchronization_rules=(
            SynchronizationRule(source_directory_name="Source", target_directory_name="Target"),
        ),
    )


def test_merge_keeps_what_exists_and_appends_the_rest() -> None:
    before = schema("7")
    after, directory = discovery.apply(before, "src", FOUND, NOW)
    user, device = directory.objects
    assert user.attributes[:2] == before.directories[0].objects[0].attributes  # untouched
    assert user.metadata == before.directories[0].objects[0].metadata
    added = {a.name: a for a in user.attributes[2:]}
    assert list(added) == ["mail", "jpegPhoto", "manager", "createTimestamp"]
    assert added["mail"].multivalued and added["mail"].type is AttributeType.STRING
    assert added["jpegPhoto"].type is AttributeType.BINARY
    assert added["manager"].type is AttributeType.REFERENCE
    names = [r.referenced_object_name for r in added["manager"].referenced_objects]
    assert names == ["User", "Group"]
    assert added["createTimestamp"].mutability is Mutability.READ_ONLY
    assert device.name == "Device" and [a.name for a in device.attributes] == ["serial"]
    assert directory.discoverabilities == "AttributeNames, AttributeDataTypes"
    assert directory.discovery_date_time == NOW
    assert directory.version == discovery.version_of(FOUND)
    assert after.version == "8"
    assert after.directories[0] == directory and after.directories[1] == before.directories[1]
    assert after.synchronization_rules == before.synchronization_rules


def test_discovering_twice_changes_nothing_but_the_time() -> None:
    once, _ = discovery.apply(schema("7"), "src", FOUND, NOW)
    later = NOW + timedelta(hours=1)
    twice, directory = discovery.apply(once, "src", FOUND, later)
    assert twice.version == "8"  # nothing added: not bumped again
    assert directory.discovery_date_time == later
    assert attrs.evolve(twice.directories[0], discovery_date_time=NOW) == once.directories[0]


def test_version_of_tells_schemas_apart() -> None:
    other = attrs.evolve(FOUND, objects=FOUND.objects[:1])
    assert discovery.version_of(FOUND) == discovery.version_of(attrs.evolve(FOUND))
    assert discovery.version_of(FOUND) != discovery.version_of(other)


@pytest.mark.parametrize(
    ("version", "bumped"), [(None, "1"), ("", "1"), ("41", "42"), ("Date:2019~###~x", "1")]
)
def test_bump(version: str | None, bumped: str) -> None:
    assert discovery.bump(version) == bumped


def test_directories_by_id_or_name_and_their_side() -> None:
    current = schema()
    assert discovery.find_directory(current, "src").id == "src"
    assert discovery.find_directory(current, "target").id == "tgt"
    with pytest.raises(NotFoundError, match="nope"):
        discovery.find_directory(current, "nope")
    assert discovery.side_of(current, current.directories[0]) == "source"
    assert discovery.side_of(current, current.directories[1]) == "target"
    lonely = DirectoryDefinition(id="x", name="Elsewhere")
    with pytest.raises(DiscoveryNotSupported, match="neither"):
        discovery.side_of(current, lonely)


# --------------------------------------------------------------------------- LDAP subschema
OBJECT_CLASSES = [
    "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
    "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( userPassword $ seeAlso ) )",
    "( 9.9.1 NAME 'worker' SUP person STRUCTURAL MAY ( manager $ mail $ jpegPhoto $ badge ) )",
    "( 9.9.2 NAME 'loop' SUP loop MAY cn )",  # a broken subschema must not hang discovery
]
ATTRIBUTE_TYPES = [
    "( 2.5.4.0 NAME 'objectClass' SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )",
    "( 2.5.4.41 NAME 'name' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{32768} )",
    "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
    "( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )",
    "( 2.5.4.35 NAME 'userPassword' SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{128} )",
    "( 2.5.4.49 NAME 'distinguishedName' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
    "( 2.5.4.34 NAME 'seeAlso' SUP distinguishedName )",
    "( 9.9.3 NAME 'manager' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 SINGLE-VALUE )",
    "( 9.9.4 NAME 'mail' SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
    "( 9.9.5 NAME 'jpegPhoto' SYNTAX 1.3.6.1.4.1.1466.115.121.1.28 )",
    "( 9.9.6 NAME 'badge' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE NO-USER-MODIFICATION )",
]


def test_ldap_subschema_to_attributes() -> None:
    types = [
        LdapObjectType(name="User", base_dn="o=x", object_classes=("worker",)),
        LdapObjectType(name="Group", base_dn="o=x", object_classes=("loop", "unknownClass")),
    ]
    found = describe_ldap(types, OBJECT_CLASSES, ATTRIBUTE_TYPES)
    user, group = found.objects
    by_name = {a.name: a for a in user.attributes}
    assert list(by_name) == ["sn", "cn", "objectClass", "manager", "mail", "jpegPhoto", "badge",
                             "userPassword", "seeAlso"]  # fmt: skip
    assert by_name["cn"].required and by_name["cn"].type == "String"  # syntax through SUP
    assert not by_name["mail"].required and by_name["mail"].multivalued
    assert by_name["manager"].type == "Reference" and not by_name["manager"].multivalued
    assert by_name["manager"].referenced_objects == ("User", "Group")
    assert by_name["seeAlso"].type == "Reference"  # DN syntax inherited
    assert by_name["jpegPhoto"].type == "Binary" and by_name["userPassword"].type == "Binary"
    assert by_name["badge"].type == "Integer" and by_name["badge"].mutability == "ReadOnly"
    assert [a.name for a in group.attributes] == ["cn"]
    assert "ReferenceAttributes" in found.discoverabilities


def test_ldap_classes_from_the_filter_when_none_are_configured() -> None:
    reader = LdapObjectType(name="People", base_dn="o=x", filter="(&(objectclass=person)(cn=a*))")
    (people,) = describe_ldap([reader], OBJECT_CLASSES, ATTRIBUTE_TYPES).objects
    assert [a.name for a in people.attributes] == ["sn", "cn", "objectClass", "userPassword",
                                                   "seeAlso"]  # fmt: skip


# ------------------------------------------------------------------------------ SCIM schemas
def _attribute(name: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "multiValued": False, "required": False, **extra}


SCHEMAS = [
    {
        "id": "urn:ietf:params:scim:schemas:core:2.0:User",
        "attributes": [
            _attribute("userName", required=True),
            _attribute("active", "boolean"),
            _attribute("name", "complex", subAttributes=[_attribute("givenName")]),
            _attribute(
                "emails",
                "complex",
                multiValued=True,
                subAttributes=[
                    _attribute("value"),
                    _attribute("type", canonicalValues=["work", "home"]),
                    _attribute("primary", "boolean"),
                ],
            ),
            _attribute("roles", "complex", multiValued=True, subAttributes=[_attribute("value")]),
            _attribute(
                "groups",
                "complex",
                multiValued=True,
                mutability="readOnly",
                subAttributes=[
                    _attribute("value"),
                    _attribute("$ref", "reference", referenceTypes=["Group"]),
                ],
            ),
            _attribute("profileUrl", "reference", referenceTypes=["external"]),
            _attribute("password", mutability="writeOnly"),
        ],
    },
    {
        "id": ENTERPRISE,
        "attributes": [
            _attribute("department"),
            _attribute(
                "manager",
                "complex",
                subAttributes=[
                    _attribute("value"),
                    _attribute("$ref", "reference", referenceTypes=["User"]),
                ],
            ),
        ],
    },
    {
        "id": "urn:ietf:params:scim:schemas:core:2.0:Group",
        "attributes": [
            _attribute("displayName", required=True),
            _attribute(
                "members",
                "complex",
                multiValued=True,
                subAttributes=[
                    _attribute("value", mutability="immutable"),
                    _attribute("$ref", "reference", referenceTypes=["User", "Group"]),
                ],
            ),
        ],
    },
]
RESOURCE_TYPES = [
    {"name": "User", "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
     "schemaExtensions": [{"schema": ENTERPRISE, "required": False}]},
    {"name": "Group", "schema": "urn:ietf:params:scim:schemas:core:2.0:Group"},
    {"name": "Device", "schema": "urn:example:Device"},  # the connector has no Devices
]  # fmt: skip


@pytest.mark.parametrize("resource_types", [RESOURCE_TYPES, None])
def test_scim_schemas_to_entra_names(resource_types: list[dict[str, Any]] | None) -> None:
    found = describe_scim(SCHEMAS, resource_types)
    assert [o.name for o in found.objects] == ["User", "Group"]
    user = {a.name: a for a in found.objects[0].attributes}
    group = {a.name: a for a in found.objects[1].attributes}
    assert list(user) == [
        "id", "externalId", "userName", "active", "name.givenName",
        'emails[type eq "work"].value', 'emails[type eq "home"].value', "roles.value",
        "groups", "profileUrl", "password", f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager",
    ]  # fmt: skip
    assert user["id"].anchor and user["id"].mutability == "ReadOnly"
    assert user["userName"].required and user["active"].type == "Boolean"
    assert user["roles.value"].multivalued and not user['emails[type eq "work"].value'].multivalued
    assert user["groups"].type == "Reference" and user["groups"].mutability == "ReadOnly"
    assert user["profileUrl"].type == "String"  # an external URL, not a resource
    assert user["password"].mutability == "WriteOnly"
    manager = user[f"{ENTERPRISE}:manager"]
    assert manager.type == "Reference" and manager.referenced_objects == ("User",)
    members = group["members"]
    assert members.multivalued and members.referenced_objects == ("User", "Group")
    for name in [*user, *group]:
        parse(name)  # every name is one the SCIM connector can read and write


def test_scim_names_match_the_template() -> None:
    """What the ldapToScim template names, discovery names alike (so nothing is doubled)."""
    template = load_builtin("ldapToScim").schema
    assert template is not None
    directory = discovery.find_directory(template, "scim-target")
    found = describe_scim(SCHEMAS, RESOURCE_TYPES)
    merged = discovery.merge(directory, found, NOW)
    for old, new in zip(directory.objects, merged.objects, strict=False):
        names = [(a.name or "").lower() for a in new.attributes]
        assert len(names) == len(set(names))
        assert new.attributes[: len(old.attributes)] == old.attributes


# ------------------------------------------------- what a directory's answer may hold
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.mark.parametrize(
    ("key", "attribute"),
    [
        ("attributes", None),
        ("subAttributes", {"name": "name", "type": "complex", "subAttributes": "x"}),
        ("referenceTypes", {"name": "boss", "type": "reference", "referenceTypes": {"a": 1}}),
        (
            "canonicalValues",
            {"name": "emails", "type": "complex", "multiValued": True,
             "subAttributes": [{"name": "type", "canonicalValues": 3}, {"name": "value"}]},
        ),
    ],
)  # fmt: skip
def test_scim_lists_of_the_wrong_shape_are_the_services_error(
    key: str, attribute: dict[str, Any] | None
) -> None:
    """Not a TypeError (a 500), nor a string read character by character: DiscoveryError,
    a ConnectorError naming the key."""
    attributes: Any = 7 if attribute is None else [attribute]
    with pytest.raises(DiscoveryError, match=key):
        describe_scim([{"id": USER_URN, "attributes": attributes}], None)


def test_scim_flattening_is_bounded_while_it_runs() -> None:
    subs: list[dict[str, Any]] = [
        {"name": "type", "canonicalValues": [f"t{i}" for i in range(600)]}
    ]
    subs += [{"name": f"s{j}"} for j in range(600)]
    emails = {"name": "emails", "type": "complex", "multiValued": True, "subAttributes": subs}
    with pytest.raises(DiscoveryError, match=str(MAX_DISCOVERED_ATTRIBUTES)):
        describe_scim([{"id": USER_URN, "attributes": [emails]}], None)


def test_ldap_subschema_ldap3_cannot_parse_is_the_servers_error() -> None:
    kind = LdapObjectType(name="User", base_dn="o=x", object_classes=("worker",))
    for classes, types in [(["( x SUP"], []), (OBJECT_CLASSES, ["garbage"])]:
        with pytest.raises(DiscoveryError, match="subschema is malformed"):
            describe_ldap([kind], classes, types)


def test_the_engine_bounds_what_any_connector_found() -> None:
    """A Discoverable that is not one of ours is bounded too, before anything is merged."""
    many = tuple(DiscoveredAttribute(name=f"a{i}") for i in range(MAX_DISCOVERED_ATTRIBUTES + 1))
    huge = DiscoveredSchema(objects=(DiscoveredObject(name="User", attributes=many),))
    with pytest.raises(DiscoveryError, match="per object"):
        discovery.apply(schema(), "src", huge, NOW)
    objects = tuple(DiscoveredObject(name=f"o{i}") for i in range(MAX_DISCOVERED_OBJECTS + 1))
    with pytest.raises(DiscoveryError, match="object types"):
        discovery.apply(schema(), "src", DiscoveredSchema(objects=objects), NOW)
    wide = tuple(
        DiscoveredObject(name=f"o{i}", attributes=many[:MAX_DISCOVERED_ATTRIBUTES])
        for i in range(MAX_DISCOVERED_TOTAL // MAX_DISCOVERED_ATTRIBUTES + 1)
    )
    with pytest.raises(DiscoveryError, match="in all"):
        discovery.apply(schema(), "src", DiscoveredSchema(objects=wide), NOW)
