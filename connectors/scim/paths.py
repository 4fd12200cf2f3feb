"""SCIM resources <-> the flat attribute names Entra uses for a SCIM app, and filter escaping.

The engine sees one flat mapping per object, with the names Entra's SCIM attribute mappings use
(``name.givenName``, ``emails[type eq "work"].value``,
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager``): they are also valid
PATCH paths (RFC 7644 §3.5.2), so a target can send them as they are. A name is parsed once
into a :class:`ScimPath`; :func:`value_at` reads it from a resource and :func:`put_value`
writes it into a resource body being built, so both directions follow the same rules:

* ``a`` and ``a.b``: a simple attribute, or a sub-attribute of a complex one;
* ``a[t eq "x"].b``: ``b`` of the first value of multi-valued ``a`` whose ``t`` is ``x``
  (compared case-insensitively, as RFC 7643 makes ``type`` caseExact false);
* ``a.b`` where ``a`` is multi-valued: every ``b``, as a list (``members.value``);
* a complex attribute named without a sub-attribute stands for its ``value`` (``manager``, and
  ``members``, which is a list of ids);
* ``urn:...:User:attr``: ``attr`` inside the extension schema's object.

Attribute names are matched case-insensitively, as SCIM requires. Pure functions only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from connectors.base import Scalar, Value

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"

#: the User attributes Entra's default SCIM mapping writes (and so a SCIM source reads)
USER_ATTRIBUTES: tuple[str, ...] = (
    "userName",
    "active",
    "displayName",
    "title",
    "preferredLanguage",
    "externalId",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    'emails[type eq "work"].value',
    'phoneNumbers[type eq "work"].value',
    'phoneNumbers[type eq "mobile"].value',
    'addresses[type eq "work"].streetAddress',
    'addresses[type eq "work"].locality',
    'addresses[type eq "work"].region',
    'addresses[type eq "work"].postalCode',
    'addresses[type eq "work"].country',
    'addresses[type eq "work"].formatted',
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:department",
    f"{ENTERPRISE}:manager",
)
GROUP_ATTRIBUTES: tuple[str, ...] = ("displayName", "externalId", "members")
#: attributes whose values are resource ids (anchors): what REFERENCES means here
REFERENCE_ATTRIBUTES = frozenset({f"{ENTERPRISE}:manager", "members"})
#: complex attributes that a bare name reads as their ``value`` (a list when multi-valued)
_VALUE_OF = {"manager": False, "members": True, "groups": True}
_MULTI_VALUED = {
    "emails", "phonenumbers", "addresses", "ims", "photos", "entitlements", "roles",
    "x509certificates", "members", "groups",
}  # fmt: skip


@attrs.frozen
class ScimPath:
    """A parsed attribute name: ``schema:attribute[select_attribute eq select_value].sub``."""

    attribute: str
    sub: str | None = None
    select: tuple[str, str] | None = None
    schema: str | None = None  # an extension URN, or None for the core schema


@functools.lru_cache(maxsize=1024)
def parse(name: str) -> ScimPath:
    """Parse a flat name; ValueError for anything outside the grammar in the module docstring
    (cached: every resource read parses the same few dozen names)."""
    schema = None
    rest = name
    if name.lower().startswith("urn:"):
        schema, _, rest = name.rpartition(":")
        if not schema or not rest:
            raise ValueError(f"not a SCIM attribute path: {name!r}")
    select = None
    if "[" in rest:
        head, _, tail = rest.partition("[")
        condition, closing, after = tail.partition("]")
        words = condition.split(" ", 2)
        if not closing or len(words) != 3 or words[1].lower() != "eq":
            raise ValueError(f'only [attribute eq "value"] selects are supported: {name!r}')
        select = (words[0], unquote(words[2]))
        rest = head + after
    attribute, _, sub = rest.partition(".")
    if not attribute or (select is not None and not sub):
        raise ValueError(f"not a SCIM attribute path: {name!r}")
    return ScimPath(attribute, sub or None, select, schema)


def quote(value: Scalar) -> str:
    """A filter literal: strings as JSON strings (RFC 7644's filter grammar takes them from
    JSON, so quotes, backslashes and control characters are escaped), booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = value.decode() if isinstance(value, bytes) else value
    return json.dumps(text, ensure_ascii=False)


def unquote(literal: str) -> str:
    literal = literal.strip()
    if len(literal) >= 2 and literal[0] == literal[-1] == '"':
        body = literal[1:-1]
        out, escaped = [], False
        for char in body:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return literal


def equals_filter(name: str, value: Scalar) -> str:
    """``name eq "value"`` with the value escaped, e.g. ``userName eq "a\\"b"``."""
    return f"{name} eq {quote(value)}"


def _lookup(mapping: Mapping[str, Any], key: str) -> Any:
    if key in mapping:
        return mapping[key]
    lowered = key.lower()
    return next((v for k, v in mapping.items() if k.lower() == lowered), None)


def _scalar(value: Any) -> Scalar | None:
    return value if isinstance(value, str | bool | int) else None


def value_at(resource: Mapping[str, Any], path: ScimPath) -> Value | None:
    """The value ``path`` names in ``resource`` (None when absent or empty)."""
    container: Any = resource if path.schema is None else _lookup(resource, path.schema)
    if not isinstance(container, Mapping):
        return None
    found = _lookup(container, path.attribute)
    sub = path.sub
    if sub is None and path.attribute.lower() in _VALUE_OF:
        sub = "value"
    if isinstance(found, list):
        items = [i for i in found if isinstance(i, Mapping)]
        if path.select is not None:
            key, wanted = path.select
            items = [i for i in items if str(_lookup(i, key) or "").lower() == wanted.lower()]
            return _scalar(_lookup(items[0], sub or "value")) if items else None
        if sub is None:
            values = [_scalar(v) for v in found]
        else:
            values = [_scalar(_lookup(i, sub)) for i in items]
        kept = [v for v in values if v is not None and v != ""]
        return kept or None
    if sub is not None:
        found = _lookup(found, sub) if isinstance(found, Mapping) else None
    scalar = _scalar(found)
    return None if scalar == "" else scalar


def flatten(resource: Mapping[str, Any], names: Iterable[str]) -> dict[str, Value | None]:
    """The resource under the flat ``names`` that have a value."""
    flat: dict[str, Value | None] = {}
    for name in names:
        value = value_at(resource, parse(name))
        if value is not None:
            flat[name] = value
    return flat


def put_value(resource: dict[str, Any], path: ScimPath, value: Value) -> None:
    """Write ``value`` where ``path`` names it in a resource body being built (the inverse of
    :func:`value_at`; selected values get their select attribute, e.g. ``type: work``)."""
    container = resource if path.schema is None else resource.setdefault(path.schema, {})
    attribute = path.attribute
    sub = path.sub
    if sub is None and attribute.lower() in _VALUE_OF:
        sub = "value"
    if path.select is not None:
        key, wanted = path.select
        items = container.setdefault(attribute, [])
        item = next((i for i in items if str(i.get(key, "")).lower() == wanted.lower()), None)
        if item is None:
            item = {key: wanted}
            items.append(item)
        item[sub or "value"] = value
        return
    if attribute.lower() in _MULTI_VALUED and sub is not None:
        values = value if isinstance(value, list) else [value]
        container[attribute] = [{sub: v} for v in values]
        return
    if sub is not None:
        container.setdefault(attribute, {})[sub] = value
        return
    container[attribute] = value


def build_resource(
    schemas: Iterable[str], attributes: Mapping[str, Value | None]
) -> dict[str, Any]:
    """A resource body (for POST or PUT) from flat attributes; None values are left out, and
    an extension schema is listed when one of its attributes is set."""
    resource: dict[str, Any] = {"schemas": list(schemas)}
    for name, value in attributes.items():
        if value is None or value == []:
            continue
        path = parse(name)
        put_value(resource, path, value)
        if path.schema is not None and path.schema not in resource["schemas"]:
            resource["schemas"].append(path.schema)
    return resource


def patch_value(name: str, value: Value) -> Any:
    """The ``value`` of a PATCH operation on path ``name``: complex where SCIM wants it
    (``manager`` is ``{"value": id}``, ``members`` a list of ``{"value": id}``)."""
    path = parse(name)
    if path.sub is None and path.attribute.lower() in _VALUE_OF:
        values = value if isinstance(value, list) else [value]
        if _VALUE_OF[path.attribute.lower()]:
            return [{"value": v} for v in values]
        return {"value": values[0]} if values else None
    return value
