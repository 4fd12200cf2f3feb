"""Schema discovery: an optional connector capability, and the plain data it returns.

Graph's ``directoryDefinition/discover`` asks the live directory what its objects and
attributes are. Only some directories can say (an LDAP server's subschema, a SCIM service's
``/Schemas``), so this is a separate protocol rather than part of :class:`Source` or
:class:`Target`: the engine checks ``isinstance(connector, Discoverable)`` and refuses the
request for a connector that is not. What a connector returns is plain data in the
connector's own terms (no Graph model): the engine merges it into the job's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from connectors.base import ConnectorError

#: attribute types, spelt as Graph's attributeType so the engine maps them one to one
STRING, INTEGER, BOOLEAN, BINARY, DATETIME, REFERENCE = (
    "String", "Integer", "Boolean", "Binary", "DateTime", "Reference"
)  # fmt: skip
#: mutabilities, spelt as Graph's mutability
READ_WRITE, READ_ONLY, IMMUTABLE, WRITE_ONLY = ("ReadWrite", "ReadOnly", "Immutable", "WriteOnly")

#: What one discovery may add (README "Limits"). A directory's answer is input from outside:
#: a few KB of SCIM ``/Schemas`` (canonical types x sub-attributes) flatten to hundreds of
#: thousands of attribute definitions, which every schema GET/PUT and every cycle's connector
#: build would then carry. Real directories stay far below: an Active Directory user with
#: every auxiliary class has about a thousand attributes, a SCIM User about a hundred.
MAX_DISCOVERED_ATTRIBUTES = 5_000  # per object
MAX_DISCOVERED_OBJECTS = 100
MAX_DISCOVERED_TOTAL = 10_000  # attributes over all the objects of one discovery


class DiscoveryError(ConnectorError):
    """The directory's description of its schema is malformed (JSON or a definition of the
    wrong shape) or larger than the bounds above: the directory's fault, not the caller's,
    so it is a ConnectorError (502 at the API) and nothing is stored."""


@attrs.frozen(kw_only=True)
class DiscoveredAttribute:
    """One attribute as the directory describes it. ``referenced_objects`` names the object
    types (of the same directory) a Reference may point at, most likely first."""

    name: str
    type: str = STRING
    multivalued: bool = False
    required: bool = False
    anchor: bool = False
    mutability: str = READ_WRITE
    referenced_objects: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DiscoveredObject:
    name: str
    attributes: tuple[DiscoveredAttribute, ...] = ()


@attrs.frozen(kw_only=True)
class DiscoveredSchema:
    """What one discovery found. ``discoverabilities`` are Graph's flags for what the
    directory could tell (``AttributeNames``, ``AttributeDataTypes``, ...)."""

    objects: tuple[DiscoveredObject, ...] = ()
    discoverabilities: tuple[str, ...] = ()


@runtime_checkable
class Discoverable(Protocol):
    """A connector that can read its directory's schema; raises the connector errors of
    :mod:`connectors.base` (CredentialsError, UnreachableError, ...) like any other call."""

    def discover(self) -> DiscoveredSchema: ...


def check_bounds(found: DiscoveredSchema, where: str = "the directory") -> DiscoveredSchema:
    """``found`` unchanged, or DiscoveryError when it exceeds the bounds. Connectors call it
    (and stop early while building, see MAX_DISCOVERED_ATTRIBUTES); the engine calls it
    again on whatever any Discoverable returned, before merging."""
    if len(found.objects) > MAX_DISCOVERED_OBJECTS:
        raise DiscoveryError(
            f"{where} describes {len(found.objects)} object types; discovery admits at most "
            f"{MAX_DISCOVERED_OBJECTS}"
        )
    total = 0
    for obj in found.objects:
        count = len(obj.attributes)
        total += count
        if count > MAX_DISCOVERED_ATTRIBUTES:
            raise too_many_attributes(where, obj.name)
        if total > MAX_DISCOVERED_TOTAL:
            raise DiscoveryError(
                f"{where} describes more than {MAX_DISCOVERED_TOTAL} attributes in all; "
                "discovery admits no more"
            )
    return found


def too_many_attributes(where: str, object_name: str) -> DiscoveryError:
    """The refusal of an object with more than MAX_DISCOVERED_ATTRIBUTES attributes."""
    return DiscoveryError(
        f"{where} describes more than {MAX_DISCOVERED_ATTRIBUTES} attributes for "
        f"{object_name!r}; discovery admits at most {MAX_DISCOVERED_ATTRIBUTES} per object"
    )


def by_name(objects: Sequence[DiscoveredObject]) -> dict[str, DiscoveredObject]:
    """Objects keyed by lower-cased name: directory names compare case-insensitively."""
    return {o.name.lower(): o for o in objects}
