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

#: attribute types, spelt as Graph's attributeType so the engine maps them one to one
STRING, INTEGER, BOOLEAN, BINARY, DATETIME, REFERENCE = (
    "String", "Integer", "Boolean", "Binary", "DateTime", "Reference"
)  # fmt: skip
#: mutabilities, spelt as Graph's mutability
READ_WRITE, READ_ONLY, IMMUTABLE, WRITE_ONLY = ("ReadWrite", "ReadOnly", "Immutable", "WriteOnly")


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


def by_name(objects: Sequence[DiscoveredObject]) -> dict[str, DiscoveredObject]:
    """Objects keyed by lower-cased name: directory names compare case-insensitively."""
    return {o.name.lower(): o for o in objects}
