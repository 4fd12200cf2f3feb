"""What the SCIM target puts on the wire, as pure functions: POST bodies, PATCH operations,
member chunks and filters, from Entra's target attribute names.

Kept free of I/O so every wire shape is unit-tested without a server; :mod:`.target` only
decides when to send what these functions build.

The PATCH shapes are Entra's RFC-compliant ones (its ``aadOptscim062020`` behaviour): lowercase
ops, boolean ``active``, members removed one ``members[value eq "id"]`` path each. Servers
refuse Entra's older ``remove`` of ``members`` carrying a value list, and RFC 7644 §3.5.2.2 does
not define it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from connectors.base import Scalar, Value, ValueDelta, as_list

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

#: multi-valued attributes of RFC 7643 User and Group: a bare name means the list of values
MULTI_VALUED = frozenset(
    {"emails", "phoneNumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles",
     "x509Certificates", "members"}
)  # fmt: skip
#: complex attributes whose ``value`` is another resource's id (a target ref)
REFERENCES = frozenset({"manager", "members"})
_PATH = re.compile(r'(\w+)(?:\[type eq "([^"\\]*)"\])?(?:\.(\w+))?', re.IGNORECASE)

Operation = dict[str, Any]
#: the (attribute, type) of the filtered elements a resource already has, e.g. ("emails", "work")
Elements = frozenset[tuple[str, str]]


@attrs.frozen
class ScimPath:
    """One Entra target attribute name taken apart: ``emails[type eq "work"].value`` is
    attribute ``emails``, type ``work``, sub ``value``; an extension attribute has its schema."""

    name: str
    schema: str | None
    attribute: str
    type: str | None = None
    sub: str | None = None

    @property
    def container(self) -> str:
        """The attribute itself, as a PATCH path (with its schema's URN prefix)."""
        return f"{self.schema}:{self.attribute}" if self.schema else self.attribute

    @property
    def key(self) -> tuple[str, str]:
        return (self.container, self.type or "")


def parse_path(name: str) -> ScimPath:
    """Raises ValueError for a name that is no attribute path the target can write."""
    schema, rest = None, name
    if name.lower().startswith("urn:"):
        schema, _, rest = name.rpartition(":")
    match = _PATH.fullmatch(rest)
    if match is None or (schema is not None and not schema.lower().startswith("urn:")):
        raise ValueError(f"{name!r} is not a SCIM attribute path this target can write")
    return ScimPath(name, schema, match[1], match[2], match[3])


def flatten(resource: Mapping[str, Any]) -> dict[str, Value]:
    """A resource as Entra's attribute names, the inverse of :func:`resource`: what ``get``
    returns, so a round trip through the target compares equal to what was written."""
    flat: dict[str, Value] = {}
    for key, value in resource.items():
        if key in ("schemas", "id", "meta"):
            continue
        if key.lower().startswith("urn:") and isinstance(value, Mapping):
            for name, inner in value.items():
                _flatten_one(flat, f"{key}:{name}", name, inner)
        else:
            _flatten_one(flat, key, key, value)
    return flat


def _flatten_one(flat: dict[str, Value], prefixed: str, attribute: str, value: Any) -> None:
    if value is None or value in ([], {}):
        return
    if attribute in REFERENCES and isinstance(value, Mapping):
        if value.get("value") is not None:
            flat[prefixed] = value["value"]
    elif isinstance(value, Mapping):
        for sub, inner in value.items():
            if inner is not None:
                flat[f"{prefixed}.{sub}"] = inner
    elif isinstance(value, list):
        plain: list[Scalar] = []
        for element in value:
            if not isinstance(element, Mapping):
                plain.append(element)
            elif element.get("type") is None:
                if element.get("value") is not None:
                    plain.append(element["value"])
            else:
                for sub, inner in element.items():
                    if sub not in ("type", "primary") and inner is not None:
                        flat[f'{prefixed}[type eq "{element["type"]}"].{sub}'] = inner
        if plain:
            flat[prefixed] = plain
    else:
        flat[prefixed] = value


def quote(value: Scalar) -> str:
    """A filter comparison value: RFC 7644 filter strings are JSON strings, so JSON escaping
    (quotes, backslashes, control characters) is what keeps a value from changing the filter."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(_text(value), ensure_ascii=False)


def equality_filter(attribute: str, value: Scalar) -> str:
    return f"{attribute} eq {quote(value)}"


def _text(value: Scalar) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")  # SCIM's binary type is base64
    return str(value)


def _wire(value: Scalar) -> Scalar:
    return _text(value) if isinstance(value, bytes) else value


def _element(path: ScimPath, value: Scalar) -> dict[str, Any]:
    """A new typed element of a multi-valued attribute; Entra marks the work email primary."""
    assert path.type is not None
    element: dict[str, Any] = {"type": path.type, path.sub or "value": _wire(value)}
    if path.attribute == "emails" and path.type == "work":
        element["primary"] = True
    return element


def _single(values: list[Scalar], name: str) -> Scalar:
    if len(values) > 1:
        raise ValueError(f"{name} takes one value, got {len(values)}")
    return values[0]


def _simple_value(path: ScimPath, values: list[Scalar]) -> Any:
    """The JSON value of an unfiltered path: value lists for multi-valued attributes,
    ``{"value": id}`` for a reference."""
    if path.attribute in MULTI_VALUED and path.sub is None:
        return [{"value": _wire(v)} for v in values]
    one = _wire(_single(values, path.name))
    if path.attribute in REFERENCES and path.sub is None:
        return {"value": one}
    return one


def resource(schema: str, attributes: Mapping[str, Value | None]) -> dict[str, Any]:
    """A POST body: nested ``name``, typed elements, the enterprise extension block (and its
    schema) only when one of its attributes has a value."""
    body: dict[str, Any] = {"schemas": [schema]}
    for name, value in attributes.items():
        values = as_list(value)
        if not values:
            continue
        path = parse_path(name)
        holder = body
        if path.schema is not None:
            if path.schema not in body["schemas"]:
                body["schemas"].append(path.schema)
            holder = body.setdefault(path.schema, {})
        if path.type is not None:
            elements = holder.setdefault(path.attribute, [])
            element = next((e for e in elements if e.get("type") == path.type), None)
            one = _single(values, path.name)
            if element is None:
                elements.append(_element(path, one))
            else:
                element[path.sub or "value"] = _wire(one)
        elif path.sub is not None:
            holder.setdefault(path.attribute, {})[path.sub] = _wire(_single(values, path.name))
        else:
            holder[path.attribute] = _simple_value(path, values)
    return body


def patch_body(operations: list[Operation]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": operations}


def operations(
    delta: Mapping[str, Value | ValueDelta | None], present: Elements | None
) -> list[Operation]:
    """PATCH operations for ``delta``: ``replace`` for a value, ``remove`` for None or [],
    ``add``/``remove`` of single values for a :class:`ValueDelta`.

    A filtered path (``emails[type eq "work"].value``) can be replaced only when the element
    exists: servers answer ``replace`` and ``add`` on a filter matching nothing with 400
    noTarget (RFC 7644 §3.5.2). ``present=None`` assumes every element exists (one request in
    the usual case); once the target knows which do, the missing ones become one ``add`` of a
    new element, the sub-attributes of one element merged into it.
    """
    ops: list[Operation] = []
    new_elements: dict[tuple[str, str], dict[str, Any]] = {}
    for name, value in delta.items():
        path = parse_path(name)
        if isinstance(value, ValueDelta):
            ops.extend(value_delta_operations(path, value.remove, value.add))
            continue
        values = as_list(value)
        if not values:
            ops.append({"op": "remove", "path": path.name})
        elif path.type is not None and present is not None and path.key not in present:
            key = path.key
            element = new_elements.get(key)
            if element is None:
                element = new_elements[key] = _element(path, _single(values, path.name))
                ops.append({"op": "add", "path": path.container, "value": [element]})
            else:
                element[path.sub or "value"] = _wire(_single(values, path.name))
        else:
            ops.append({"op": "replace", "path": name, "value": _simple_value(path, values)})
    return ops


def value_delta_operations(
    path: ScimPath, remove: Iterable[Scalar], add: Iterable[Scalar]
) -> list[Operation]:
    """One ``remove`` per value (by ``[value eq ...]`` filter), then one ``add`` of them all.

    Both are harmless when replayed: a filter matching nothing removes nothing, and servers
    keep one copy of a value added twice to a multi-valued attribute.
    """
    ops: list[Operation] = [
        {"op": "remove", "path": f"{path.container}[value eq {quote(v)}]"} for v in remove
    ]
    added = [{"value": _wire(v)} for v in add]
    if added:
        ops.append({"op": "add", "path": path.container, "value": added})
    return ops


def chunked(
    remove: tuple[Scalar, ...], add: tuple[Scalar, ...], size: int
) -> Iterator[tuple[tuple[Scalar, ...], tuple[Scalar, ...]]]:
    """(remove, add) slices of at most ``size`` values in all, removes first: a big group's
    change goes out as several PATCH requests of bounded size, never as the whole group."""
    if size < 1:
        raise ValueError("a chunk holds at least one value")
    values = [("remove", v) for v in remove] + [("add", v) for v in add]
    for start in range(0, len(values), size):
        part = values[start : start + size]
        yield (
            tuple(v for kind, v in part if kind == "remove"),
            tuple(v for kind, v in part if kind == "add"),
        )
