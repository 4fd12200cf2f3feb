"""What the SCIM target puts on the wire, as pure functions: POST bodies, PATCH operations and
member chunks, from Entra's target attribute names (parsed and placed by :mod:`.paths`).

Kept free of I/O so every wire shape is unit-tested without a server; :mod:`.target` only
decides when to send what these functions build.

The PATCH shapes are Entra's RFC-compliant ones (its ``aadOptscim062020`` behaviour): lowercase
ops, boolean ``active``, members removed one ``members[value eq "id"]`` path each. Servers
refuse Entra's older ``remove`` of ``members`` carrying a value list, and RFC 7644 §3.5.2.2 does
not define it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from connectors.base import Scalar, Value, ValueDelta, as_list
from connectors.scim.paths import ScimPath, build_resource, parse, patch_value, put_value, quote
from connectors.scim.paths import value_at as _value_at

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

Operation = dict[str, Any]


def _container(path: ScimPath) -> str:
    """The attribute itself as a PATCH path, with its extension's URN prefix."""
    return f"{path.schema}:{path.attribute}" if path.schema else path.attribute


def _element(path: ScimPath, value: Scalar) -> dict[str, Any]:
    """A new selected value (``{"type": "work", "value": ...}``); Entra marks the work email
    primary."""
    assert path.select is not None
    key, wanted = path.select
    element: dict[str, Any] = {key: wanted, path.sub or "value": value}
    if path.attribute.lower() == "emails" and (key.lower(), wanted.lower()) == ("type", "work"):
        element["primary"] = True
    return element


def _one(path: ScimPath, value: Value) -> Scalar:
    values = as_list(value)
    if len(values) != 1:
        raise ValueError(f"{_container(path)} takes one value here, got {len(values)}")
    return values[0]


def resource(schema: str, attributes: Mapping[str, Value | None]) -> dict[str, Any]:
    """A POST body as Entra sends it: nested ``name``, typed values, the enterprise extension
    block (and its schema) only when one of its attributes is set, the work email primary."""
    body = build_resource([schema], attributes)
    for email in body.get("emails") or []:
        if str(email.get("type", "")).lower() == "work":
            email["primary"] = True
    return body


def patch_body(operations: list[Operation]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": operations}


def has_element(resource: Mapping[str, Any], path: ScimPath) -> bool:
    """Whether ``resource`` has the value a selecting path (``emails[type eq "work"]``) names."""
    assert path.select is not None
    key, wanted = path.select
    found = _value_at(resource, attrs.evolve(path, sub=key, select=None))
    return wanted.lower() in (str(v).lower() for v in as_list(found))


def operations(
    delta: Mapping[str, Value | ValueDelta | None], current: Mapping[str, Any] | None
) -> list[Operation]:
    """PATCH operations for ``delta``: ``replace`` for a value, ``remove`` for None or [],
    ``remove``/``add`` of single values for a :class:`ValueDelta`.

    A selecting path (``emails[type eq "work"].value``) can be replaced only when the value it
    selects exists: servers answer ``replace`` and ``add`` on a filter that matches nothing
    with 400 noTarget (RFC 7644 §3.5.2). ``current=None`` assumes it exists (one request in
    the usual case); given the resource as it is, a missing one becomes an ``add`` of a new
    value, the sub-attributes of one value merged into it.
    """
    ops: list[Operation] = []
    new: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, value in delta.items():
        path = parse(name)
        if isinstance(value, ValueDelta):
            ops.extend(value_delta_operations(path, value.remove, value.add))
        elif value is None or value == []:
            ops.append({"op": "remove", "path": name})
        elif path.select is not None and current is not None and not has_element(current, path):
            key = (_container(path).lower(), *path.select)
            if key in new:
                new[key][path.sub or "value"] = _one(path, value)
            else:
                new[key] = _element(path, _one(path, value))
                ops.append({"op": "add", "path": _container(path), "value": [new[key]]})
        else:
            ops.append(_replace(name, path, value))
    return ops


def _replace(name: str, path: ScimPath, value: Value) -> Operation:
    """A multi-valued attribute (``members``, ``roles.value``) is replaced whole at its own
    path; anything else at the path as named, so a sub-attribute leaves its siblings alone."""
    scratch: dict[str, Any] = {}
    put_value(scratch, attrs.evolve(path, schema=None), value)
    placed = scratch[path.attribute]
    if (
        path.select is None
        and isinstance(placed, list)
        and all(isinstance(v, dict) for v in placed)
    ):
        return {"op": "replace", "path": _container(path), "value": placed}
    return {"op": "replace", "path": name, "value": patch_value(name, _one(path, value))}


def value_delta_operations(
    path: ScimPath, remove: Iterable[Scalar], add: Iterable[Scalar]
) -> list[Operation]:
    """One ``remove`` per value (by a ``[value eq ...]`` filter), then one ``add`` of them all.

    Both are harmless when replayed: a filter matching nothing removes nothing, and servers
    keep one copy of a value added twice to a multi-valued attribute.
    """
    sub = path.sub or "value"
    container = _container(path)
    ops: list[Operation] = [
        {"op": "remove", "path": f"{container}[{sub} eq {quote(v)}]"} for v in remove
    ]
    added = [{sub: v} for v in add]
    if added:
        ops.append({"op": "add", "path": container, "value": added})
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
