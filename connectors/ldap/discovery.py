"""What an LDAP server's subschema (RFC 4512 §4.2) says about the configured object types.

Only the object types the connector was configured with are described (their
``object_classes``, with every superclass): a server defines hundreds of object classes, and
an object type of the engine is a choice of entries, not a class. An attribute's type comes
from its syntax (inherited through ``SUP``); it is multi-valued unless ``SINGLE-VALUE``,
required when a class MUSTs it, read-only when ``NO-USER-MODIFICATION``. DN-valued
attributes are references to any of the configured types (the first one most likely: a
manager is a User).

:func:`describe` is pure (definitions in, data out); :func:`discover` reads the subschema
entry through an :class:`LdapClient`, so its failures are the connector's usual errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.protocol.rfc4512 import AttributeTypeInfo, ObjectClassInfo

from connectors.base import ConnectorError
from connectors.discovery import (
    BINARY,
    BOOLEAN,
    DATETIME,
    INTEGER,
    READ_ONLY,
    REFERENCE,
    STRING,
    DiscoveredAttribute,
    DiscoveredObject,
    DiscoveredSchema,
    DiscoveryError,
    check_bounds,
)
from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapClient

_SYNTAX = "1.3.6.1.4.1.1466.115.121.1."
#: RFC 4517 syntaxes by Graph attribute type; any other syntax is a String
SYNTAX_TYPES: dict[str, str] = {
    _SYNTAX + "12": REFERENCE,  # DN
    _SYNTAX + "27": INTEGER,
    _SYNTAX + "7": BOOLEAN,
    _SYNTAX + "24": DATETIME,  # GeneralizedTime
    _SYNTAX + "53": DATETIME,  # UTCTime
    _SYNTAX + "5": BINARY,
    _SYNTAX + "8": BINARY,  # certificate
    _SYNTAX + "9": BINARY,  # certificate list
    _SYNTAX + "10": BINARY,  # certificate pair
    _SYNTAX + "28": BINARY,  # JPEG
    _SYNTAX + "40": BINARY,  # octet string (userPassword)
    _SYNTAX + "49": BINARY,  # supported algorithm
    "1.2.840.113549.1.9.22.1": BINARY,  # userPKCS12 (PFX), RFC 2798
}
DISCOVERABILITIES = ("AttributeNames", "AttributeDataTypes", "AttributeReadOnly",
                     "ReferenceAttributes")  # fmt: skip
_CLASS_TERM = re.compile(r"\(objectClass=([A-Za-z][A-Za-z0-9-]*)\)", re.IGNORECASE)
#: the longest SUP chain followed: a loop in a broken subschema must not hang discovery
_MAX_DEPTH = 32


def describe(
    types: Sequence[LdapObjectType],
    object_class_definitions: Iterable[str],
    attribute_type_definitions: Iterable[str],
) -> DiscoveredSchema:
    """Each type's attributes: MUST then MAY of its classes and their superclasses, in the
    order the classes and the subschema give them, each attribute once. A definition
    ldap3 cannot parse (it raises LDAPSchemaError, or IndexError on a truncated one) is the
    server's fault: DiscoveryError, not a 500."""
    try:
        classes = ObjectClassInfo.from_definition(list(object_class_definitions))
        attributes = AttributeTypeInfo.from_definition(list(attribute_type_definitions))
    except (LDAPException, LookupError, ValueError, TypeError) as exc:
        raise DiscoveryError(
            f"the LDAP server's subschema is malformed ({type(exc).__name__}): an objectClasses "
            "or attributeTypes definition is not RFC 4512"
        ) from None
    names = tuple(t.name for t in types)
    objects = []
    for kind in types:
        must: dict[str, None] = {}
        may: dict[str, None] = {}
        for info in _with_superclasses(classes, kind.object_classes or _filter_classes(kind)):
            must.update(dict.fromkeys(info.must_contain or ()))
            may.update(dict.fromkeys(info.may_contain or ()))
        found: dict[str, DiscoveredAttribute] = {}
        for name, required in [*((n, True) for n in must), *((n, False) for n in may)]:
            attribute = _attribute(attributes, name, required, names)
            if attribute.name.lower() not in found:
                found[attribute.name.lower()] = attribute
        objects.append(DiscoveredObject(name=kind.name, attributes=tuple(found.values())))
    found_schema = DiscoveredSchema(objects=tuple(objects), discoverabilities=DISCOVERABILITIES)
    return check_bounds(found_schema, "the LDAP server's subschema")


def _filter_classes(kind: LdapObjectType) -> list[str]:
    """The classes an object type's filter asks for, when its definition names none (a
    type that only reads, configured by ``Filter`` alone)."""
    return _CLASS_TERM.findall(kind.filter)


def _with_superclasses(classes: Mapping[str, Any], names: Iterable[str]) -> list[Any]:
    """The classes named and every class they inherit from, each once, subclasses first."""
    seen: dict[str, Any] = {}
    pending = [(name, 0) for name in names]
    while pending:
        name, depth = pending.pop(0)
        info = classes.get(name)
        if info is None or depth > _MAX_DEPTH or info.oid in seen:
            continue
        seen[info.oid] = info
        pending.extend((sup, depth + 1) for sup in info.superior or ())
    return list(seen.values())


def _attribute(
    attributes: Mapping[str, Any], name: str, required: bool, types: tuple[str, ...]
) -> DiscoveredAttribute:
    info = attributes.get(name)
    if info is None:  # a class names an attribute the subschema lacks: say what we know
        return DiscoveredAttribute(name=name, multivalued=True, required=required)
    kind = SYNTAX_TYPES.get(_syntax(attributes, info) or "", STRING)
    return DiscoveredAttribute(
        name=(info.name or [name])[0],
        type=kind,
        multivalued=not info.single_value,
        required=required,
        mutability=READ_ONLY if info.no_user_modification else "ReadWrite",
        referenced_objects=types if kind == REFERENCE else (),
    )


def _syntax(attributes: Mapping[str, Any], info: Any) -> str | None:
    """The attribute's syntax OID, inherited from its superior types when it has none."""
    for _ in range(_MAX_DEPTH):
        if info.syntax:
            return str(info.syntax)
        superior = (info.superior or [None])[0]
        info = attributes.get(superior) if superior else None
        if info is None:
            return None
    return None


def discover(client: LdapClient, types: Sequence[LdapObjectType]) -> DiscoveredSchema:
    """Read the subschema entry the root DSE names (RFC 4512 §5.1; ``cn=Subschema`` when it
    names none) and describe ``types`` with it."""
    root = client.search("", "(objectClass=*)", ["subschemaSubentry"], scope=ldap3.BASE)
    subschema = _first(root, "subschemaSubentry") or "cn=Subschema"
    entries = client.search(
        subschema,
        "(objectClass=subschema)",
        ["objectClasses", "attributeTypes"],
        scope=ldap3.BASE,
    )
    if not entries:
        raise ConnectorError(
            f"the subschema entry {subschema!r} is not readable on {client.endpoint.shown_url}"
        )
    raw = entries[0].get("raw_attributes") or {}
    return describe(types, _texts(raw, "objectClasses"), _texts(raw, "attributeTypes"))


def _texts(raw: Mapping[str, Sequence[bytes]], name: str) -> list[str]:
    values = next((v for k, v in raw.items() if k.lower() == name.lower()), ())
    return [bytes(v).decode("utf-8", "replace") for v in values]


def _first(entries: Sequence[Mapping[str, Any]], name: str) -> str | None:
    raw = (entries[0].get("raw_attributes") or {}) if entries else {}
    values = _texts(raw, name)
    return values[0] if values else None
