"""What a SCIM service's ``/Schemas`` and ``/ResourceTypes`` (RFC 7643 §6-7, RFC 7644 §4) say
about its Users and Groups, in the flat attribute names Entra uses for a SCIM app.

Names follow :mod:`connectors.scim.paths`, so every discovered name can be mapped, read and
written as it is:

* a simple attribute is its name; an extension's is ``<schema URN>:<name>``;
* a complex attribute holding a resource id (a ``value`` and a ``$ref`` whose
  ``referenceTypes`` name resource types: ``manager``, ``members``, ``groups``) is one
  Reference named after the attribute;
* another single-valued complex attribute gives ``name.sub`` per sub-attribute
  (``name.givenName``);
* a multi-valued complex attribute with a ``type`` gives ``attr[type eq "t"].sub`` per
  canonical type and sub-attribute (``emails[type eq "work"].value``), ``type``, ``primary``
  and ``display`` excepted; without canonical types, ``attr.sub`` as a list.

``id`` (the anchor) and ``externalId`` are common attributes no schema lists (RFC 7643 §3.1):
they come first. Only the resource types the connector reads and writes (User, Group) are
described. :func:`describe` is pure; :func:`discover` does the two GETs.

The answers are input from outside: every list the RFC defines (``Resources``,
``attributes``, ``subAttributes``, ``referenceTypes``, ``canonicalValues``,
``schemaExtensions``) must be a JSON array (or absent/null), else the whole answer is refused
with :class:`~connectors.discovery.DiscoveryError` (502 at the API); and what an object may
flatten to is bounded (``MAX_DISCOVERED_ATTRIBUTES``), checked while flattening so a small
answer cannot make a huge one first. Sub-attributes are read one level deep only (RFC 7643
§2.3.8: a sub-attribute is not complex), so nesting cannot grow the result either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.base import ConnectorError
from connectors.discovery import (
    BINARY,
    BOOLEAN,
    DATETIME,
    IMMUTABLE,
    INTEGER,
    MAX_DISCOVERED_ATTRIBUTES,
    READ_ONLY,
    READ_WRITE,
    REFERENCE,
    STRING,
    WRITE_ONLY,
    DiscoveredAttribute,
    DiscoveredObject,
    DiscoveredSchema,
    DiscoveryError,
    check_bounds,
    too_many_attributes,
)
from connectors.scim.client import ScimClient, ScimNotFound, ScimRefused
from connectors.scim.paths import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA

#: what the connector can read and write, with the schemas assumed when /ResourceTypes is absent
RESOURCE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "User": (USER_SCHEMA, (ENTERPRISE,)),
    "Group": (GROUP_SCHEMA, ()),
}
DISCOVERABILITIES = ("AttributeNames", "AttributeDataTypes", "AttributeReadOnly",
                     "ReferenceAttributes")  # fmt: skip
_TYPES = {"string": STRING, "boolean": BOOLEAN, "integer": INTEGER, "datetime": DATETIME,
          "binary": BINARY, "decimal": STRING, "reference": STRING}  # fmt: skip
_MUTABILITY = {"readonly": READ_ONLY, "immutable": IMMUTABLE, "writeonly": WRITE_ONLY}
_NOT_FLATTENED = frozenset({"type", "primary", "display"})
_COMMON = (
    DiscoveredAttribute(name="id", anchor=True, mutability=READ_ONLY),
    DiscoveredAttribute(name="externalId"),
)


def describe(
    schemas: Iterable[Mapping[str, Any]], resource_types: Iterable[Mapping[str, Any]] | None
) -> DiscoveredSchema:
    """User and Group from the schemas' resources (``/Schemas``' ``Resources``) and the
    resource types' (None: the service has no /ResourceTypes, RFC 7643's defaults apply)."""
    by_id = {str(s.get("id", "")).lower(): s for s in schemas if isinstance(s, Mapping)}
    wanted = _resource_types(resource_types)
    objects = []
    for name, (core, extensions) in wanted.items():
        found: dict[str, DiscoveredAttribute] = {a.name.lower(): a for a in _COMMON}
        for urn in (core, *extensions):
            schema = by_id.get(urn.lower())
            prefix = "" if urn.lower() == core.lower() else f"{urn}:"
            for attribute in _attributes(schema, prefix, tuple(wanted), name):
                found.setdefault(attribute.name.lower(), attribute)
        if len(found) > MAX_DISCOVERED_ATTRIBUTES:
            raise too_many_attributes(_WHERE, name)
        objects.append(DiscoveredObject(name=name, attributes=tuple(found.values())))
    found_schema = DiscoveredSchema(objects=tuple(objects), discoverabilities=DISCOVERABILITIES)
    return check_bounds(found_schema, _WHERE)


_WHERE = "the SCIM service's /Schemas"


def _list(item: Mapping[str, Any] | None, key: str, what: str) -> list[Any]:
    """``item[key]`` as the JSON array RFC 7643 defines it (absent or null: empty); any
    other shape makes the whole answer malformed, rather than a TypeError (a 500) or a
    string read character by character."""
    value = None if item is None else item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DiscoveryError(
            f"the SCIM service's answer is malformed: {key} of {what} is a "
            f"{type(value).__name__}, not a JSON array"
        )
    return value


def _resource_types(
    resource_types: Iterable[Mapping[str, Any]] | None,
) -> dict[str, tuple[str, tuple[str, ...]]]:
    if resource_types is None:
        return dict(RESOURCE_TYPES)
    wanted: dict[str, tuple[str, tuple[str, ...]]] = {}
    known = {k.lower(): k for k in RESOURCE_TYPES}
    for item in resource_types:
        if not isinstance(item, Mapping):
            continue
        name = known.get(str(item.get("name") or item.get("id") or "").lower())
        if name is None or name in wanted:
            continue
        extensions = tuple(
            str(e["schema"])
            for e in _list(item, "schemaExtensions", f"resource type {name!r}")
            if isinstance(e, Mapping) and isinstance(e.get("schema"), str)
        )
        core = item.get("schema")
        wanted[name] = (core if isinstance(core, str) and core else RESOURCE_TYPES[name][0],
                        extensions)  # fmt: skip
    return wanted


def _attributes(
    schema: Mapping[str, Any] | None, prefix: str, types: tuple[str, ...], object_name: str
) -> list[DiscoveredAttribute]:
    """The schema's attributes, flattened; refused as soon as they pass the bound."""
    out: list[DiscoveredAttribute] = []
    where = f"schema {str((schema or {}).get('id', ''))!r}"
    for item in _list(schema, "attributes", where):
        if len(out) > MAX_DISCOVERED_ATTRIBUTES:
            raise too_many_attributes(_WHERE, object_name)
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name = prefix + item["name"]
        multi = bool(item.get("multiValued"))
        required = bool(item.get("required"))
        if str(item.get("type", "")).lower() != "complex":
            out.append(_simple(name, item, multi, required, types))
            continue
        subs = [s for s in _list(item, "subAttributes", repr(name)) if isinstance(s, Mapping)]
        sub_names = {str(s.get("name", "")).lower(): s for s in subs}
        referenced = _referenced(sub_names.get("$ref"), types, f"{name}.$ref")
        if "value" in sub_names and referenced:
            out.append(
                DiscoveredAttribute(
                    name=name,
                    type=REFERENCE,
                    multivalued=multi,
                    required=required,
                    mutability=_mutability(item),
                    referenced_objects=referenced,
                )
            )
            continue
        kinds = _canonical(sub_names.get("type"), f"{name}.type") if multi else []
        for sub in subs:
            sub_name = str(sub.get("name", ""))
            if not sub_name or (multi and sub_name.lower() in _NOT_FLATTENED):
                continue
            mutability = _mutability(sub) if sub.get("mutability") else _mutability(item)
            if kinds:
                for kind in kinds:
                    path = f'{name}[type eq "{kind}"].{sub_name}'
                    out.append(_simple(path, sub, False, False, types, mutability))
                    if len(out) > MAX_DISCOVERED_ATTRIBUTES:  # types x subs: stop early
                        raise too_many_attributes(_WHERE, object_name)
            else:
                out.append(_simple(f"{name}.{sub_name}", sub, multi, False, types, mutability))
    if len(out) > MAX_DISCOVERED_ATTRIBUTES:
        raise too_many_attributes(_WHERE, object_name)
    return out


def _simple(
    name: str,
    item: Mapping[str, Any],
    multi: bool,
    required: bool,
    types: tuple[str, ...],
    mutability: str | None = None,
) -> DiscoveredAttribute:
    referenced = _referenced(item, types, repr(name))
    return DiscoveredAttribute(
        name=name,
        type=REFERENCE if referenced else _TYPES.get(str(item.get("type", "")).lower(), STRING),
        multivalued=multi,
        required=required,
        mutability=mutability or _mutability(item),
        referenced_objects=referenced,
    )


def _referenced(
    item: Mapping[str, Any] | None, types: tuple[str, ...], what: str
) -> tuple[str, ...]:
    """The resource types a reference attribute names (``external`` and ``uri`` are URLs)."""
    if item is None or str(item.get("type", "")).lower() != "reference":
        return ()
    known = {t.lower(): t for t in types}
    named = [known.get(str(r).lower()) for r in _list(item, "referenceTypes", what)]
    return tuple(dict.fromkeys(n for n in named if n))


def _canonical(item: Mapping[str, Any] | None, what: str) -> list[str]:
    values = _list(item, "canonicalValues", what)
    return [v for v in values if isinstance(v, str) and v and '"' not in v and "]" not in v]


def _mutability(item: Mapping[str, Any]) -> str:
    return _MUTABILITY.get(str(item.get("mutability", "")).lower(), READ_WRITE)


def discover(client: ScimClient) -> DiscoveredSchema:
    """``GET /Schemas`` and ``GET /ResourceTypes`` (a service refusing the latter with a 4xx
    gets RFC 7643's User and Group)."""
    try:
        schemas = _resources(client.get("/Schemas"))
    except ScimNotFound:
        raise ConnectorError(
            f"{client.shown_address} has no /Schemas endpoint (RFC 7644 §4): the service cannot "
            "describe its schema"
        ) from None
    try:
        resource_types: list[Mapping[str, Any]] | None = _resources(client.get("/ResourceTypes"))
    except ScimRefused:
        resource_types = None
    return describe(schemas, resource_types)


def _resources(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A ListResponse's resources; a service answering a bare array's worth in ``Resources``
    or (older ones) one resource is read as well."""
    found = _list(body, "Resources", "the ListResponse") or ([body] if "id" in body else [])
    return [r for r in found if isinstance(r, Mapping)]
