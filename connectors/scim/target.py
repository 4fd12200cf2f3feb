"""The SCIM target: the engine's writes as the requests Entra's provisioning service sends.

A ref is the resource's SCIM ``id``, which never changes, so ``update`` never returns a new
ref. Attribute names are Entra's target attribute names for a SCIM app
(``emails[type eq "work"].value``, ``name.givenName``, the enterprise extension's URN paths);
:mod:`.patch` turns them into wire shapes, :class:`~connectors.scim.client.ScimClient` sends
them and turns every failure into an error of :mod:`connectors.base`.

The engine calls a target from a pool of workers: this class holds no mutable state of its
own, and the client keeps one HTTP session per thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote as url_quote

from connectors.base import (
    AmbiguousMatch,
    Attributes,
    Capability,
    Delta,
    ObjectError,
    Scalar,
    TransientError,
    UnreachableError,
    Value,
    ValueDelta,
    as_list,
)
from connectors.discovery import DiscoveredSchema
from connectors.scim.client import ScimNotFound, ScimRefused
from connectors.scim.patch import (
    Operation,
    chunked,
    operations,
    patch_body,
    resource,
    value_delta_operations,
)
from connectors.scim.paths import GROUP_SCHEMA, USER_SCHEMA, equals_filter, parse
from connectors.scim.source import ScimSource

MEMBERS = "members"


class _Kind(NamedTuple):
    name: str
    endpoint: str
    schema: str
    key: str  # the attribute a 409 on create is resolved by (the resource's unique name)


_KINDS = {
    "User": _Kind("User", "/Users", USER_SCHEMA, "userName"),
    "Group": _Kind("Group", "/Groups", GROUP_SCHEMA, "displayName"),
}


class ScimTarget:
    """A SCIM 2.0 service as the engine's target (``User`` and ``Group``).

    ``member_chunk`` bounds the member values one PATCH carries, as Entra does, so that a
    change to a group of 50,000 goes out as several requests an app can digest.
    ``extra_attributes`` (per type) are read back by :meth:`get` beyond Entra's defaults.

    Reading back and checking the service are the source's: a :class:`ScimSource` over the
    same client does both, so the two sides flatten resources and judge a service alike.
    """

    capabilities = frozenset(
        {
            Capability.DELETE,
            Capability.SOFT_DELETE,
            Capability.REFERENCES,
            Capability.VALUE_DELTAS,
            Capability.PARALLEL_WRITES,
        }
    )

    def __init__(
        self,
        base_address: str,
        token: str,
        *,
        ca_file: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        member_chunk: int = 100,
        extra_attributes: Mapping[str, Sequence[str]] | None = None,
        find_cache_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if member_chunk < 1:
            raise ValueError("member_chunk must be at least 1")
        self._reader = ScimSource(
            base_address,
            token,
            ca_file=ca_file,
            verify=verify,
            timeout=timeout,
            extra_attributes=extra_attributes,
        )
        self.client = self._reader.client
        self.client.role = "target"  # the reader is this target's: its errors are the target's
        self.member_chunk = member_chunk
        self.find_cache_seconds = find_cache_seconds
        self._monotonic = monotonic
        # (type, attribute) -> (built at, folded value -> ids); under the lock: the engine may
        # write from a pool of threads
        self._indexes: dict[tuple[str, str], tuple[float, dict[str, set[str]]]] = {}
        self._generation = 0  # bumped by _forget: an index built across it is not kept
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScimTarget({self.client.shown_address!r})"

    def object_types(self) -> list[str]:
        return list(_KINDS)

    # ------------------------------------------------------------------ find
    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        """``GET /Users?filter=<attribute> eq "<value>"``; groups without their members (as
        Entra asks, so a lookup never drags a 50,000-member list along)."""
        kind = _kind(object_type)
        _checked(attribute)
        index = self._index(kind, attribute) if isinstance(value, str) else None
        if index is not None and isinstance(value, str):
            with self._lock:
                holders = set(index.get(value.casefold(), ()))
            if len(holders) <= 1:
                return next(iter(holders), None)
        params = {"filter": equals_filter(attribute, value)}
        if kind.name == "Group":
            params["excludedAttributes"] = MEMBERS
        answer = self.client.get(kind.endpoint, params)
        found = answer.get("Resources") or []
        total = answer.get("totalResults", len(found))
        if len(found) > 1 or (isinstance(total, int) and total > 1):
            ids = ", ".join(str(r.get("id")) for r in found[:5] if isinstance(r, dict))
            raise AmbiguousMatch(
                f"{total} {kind.name} resources have this {attribute} ({ids}): ambiguous; "
                "remove the extra ones in the app, then the object is matched again"
            )
        return _id(found[0], kind) if found else None

    def _index(self, kind: _Kind, attribute: str) -> dict[str, set[str]] | None:
        """An index of the type by a top-level text attribute (userName, displayName,
        externalId), built with one paged listing of that attribute only and kept for
        ``find_cache_seconds``: an initial cycle then costs one POST per object, not a GET
        and a POST. Safe as the LDAP target's is: this target keeps it current on its own
        writes; a resource someone else made meanwhile answers our POST with 409, which
        drops the index and joins it; a stale id answers 404, which makes the engine match
        again. 0 turns it off."""
        if self.find_cache_seconds <= 0 or attribute not in INDEXED:
            return None
        slot = (kind.name, attribute)
        now = self._monotonic()
        with self._lock:
            built = self._indexes.get(slot)
            if built is not None and now - built[0] < self.find_cache_seconds:
                return built[1]
        index: dict[str, set[str]] = {}
        generation = self._generation
        start = 1
        while True:
            page = self.client.get(kind.endpoint, {"attributes": attribute,
                                                   "startIndex": start, "count": 500})  # fmt: skip
            resources = page.get("Resources") or []
            for found in resources:
                held = found.get(attribute)
                if isinstance(held, str):
                    index.setdefault(held.casefold(), set()).add(_id(found, kind))
            start += len(resources)
            total = page.get("totalResults", 0)
            if not resources or not isinstance(total, int) or start > total:
                break
        with self._lock:  # not kept if dropped meanwhile: it may predate a create in doubt
            if generation == self._generation:
                self._indexes[slot] = (now, index)
        return index

    def _indexed(self, kind: _Kind, ref: str, values: Mapping[str, Any] | None) -> None:
        """Keep the indexes current after a write of ours (None: the resource is gone)."""
        with self._lock:
            for (name, attribute), (_, index) in self._indexes.items():
                if name != kind.name:
                    continue
                if values is not None and attribute not in values:
                    continue
                for ids in index.values():
                    ids.discard(ref)
                value = values.get(attribute) if values is not None else None
                if isinstance(value, str):
                    index.setdefault(value.casefold(), set()).add(ref)

    def _forget(self, kind: _Kind) -> None:
        with self._lock:
            self._generation += 1
            for slot in [s for s in self._indexes if s[0] == kind.name]:
                del self._indexes[slot]

    # ------------------------------------------------------------------ create
    def create(self, object_type: str, attributes: Attributes) -> str:
        """One POST; a group's members follow by PATCH in chunks (Entra never POSTs them).

        A 409 (the app already has a resource of that userName or displayName, say from an
        earlier create whose answer was lost) joins it: the given attributes are PATCHed onto
        the existing resource and its id is returned. A POST whose outcome is unknown (no
        answer, 5xx, 429) drops the find index, so the engine's lookup before it tries again
        asks the app and finds what the POST made.
        """
        kind = _kind(object_type)
        values = dict(attributes)
        members = _pop(values, MEMBERS) if kind.name == "Group" else None
        try:
            body = resource(kind.schema, values)
        except ValueError as error:
            raise ObjectError(f"create {kind.name}: {error}") from None
        try:
            ref = _id(self.client.post(kind.endpoint, body), kind)
        except ScimRefused as error:
            if error.status != 409:
                raise
            self._forget(kind)  # someone else made it: the index missed it
            ref = self._join(kind, values, error)
        except (TransientError, UnreachableError):
            self._forget(kind)  # the POST may have been applied: the next find asks the app
            raise
        self._indexed(kind, ref, values)
        if as_list(members):
            self._patch(kind, ref, {}, ValueDelta(add=tuple(as_list(members))))
        return ref

    def _join(self, kind: _Kind, values: dict[str, Value | None], conflict: ScimRefused) -> str:
        key = next((v for k, v in values.items() if k.lower() == kind.key.lower()), None)
        ref = self.find(kind.name, kind.key, as_list(key)[0]) if as_list(key) else None
        if ref is None:  # the conflict is on another attribute: nothing to join
            raise conflict
        present = {k: v for k, v in values.items() if as_list(v)}
        if present:
            self._patch(kind, ref, present, None)
        return ref

    # ------------------------------------------------------------------ update
    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        """Only what changed: one PATCH, or for a big member change one per
        ``member_chunk`` values. A resource that is gone raises ObjectGone (from the
        client's 404), so the engine matches again and creates."""
        kind = _kind(object_type)
        changes = dict(delta)
        members = _pop(changes, MEMBERS) if kind.name == "Group" else None
        if members is not None and not isinstance(members, ValueDelta):
            if as_list(members):  # a whole list: sent as a delta, never the whole group
                members = self._member_delta(kind, ref, as_list(members))
            else:
                changes[MEMBERS] = None  # cleared: one remove of the attribute
                members = None
        if changes or members:
            try:
                self._patch(kind, ref, changes, members)
            except ScimNotFound:
                self._indexed(kind, ref, None)
                raise
            self._indexed(kind, ref, changes)
        return None

    def _member_delta(self, kind: _Kind, ref: str, wanted: list[Scalar]) -> ValueDelta:
        """A whole member list as the values to add and remove, from the group's members now."""
        current = self.client.get(self._path(kind, ref), {"attributes": MEMBERS})
        have = [m.get("value") for m in current.get(MEMBERS) or [] if isinstance(m, Mapping)]
        return ValueDelta(
            add=tuple(v for v in dict.fromkeys(wanted) if v not in have),
            remove=tuple(v for v in have if v is not None and v not in wanted),
        )

    def _patch(
        self,
        kind: _Kind,
        ref: str,
        changes: Mapping[str, Value | ValueDelta | None],
        members: ValueDelta | None,
    ) -> None:
        """The attribute operations ride with the first member chunk."""
        chunks = list(chunked(members.remove, members.add, self.member_chunk)) if members else []
        member_path = parse(MEMBERS)
        member_ops = [value_delta_operations(member_path, r, a) for r, a in chunks] or [[]]
        path = self._path(kind, ref)
        self._patch_attributes(path, changes, member_ops[0])
        for ops in member_ops[1:]:
            self.client.patch(path, patch_body(ops))

    def _patch_attributes(
        self, path: str, changes: Mapping[str, Value | ValueDelta | None], extra: list[Operation]
    ) -> None:
        """One PATCH; on 400 noTarget (a filtered path whose element the resource lacks) one
        GET to learn which elements exist, then the PATCH again adding the missing ones."""
        try:
            ops = operations(changes, None) + extra
        except ValueError as error:
            raise ObjectError(f"PATCH {path}: {error}") from None
        if not ops:
            return
        try:
            self.client.patch(path, patch_body(ops))
        except ScimRefused as error:
            if error.scim_type != "noTarget" or isinstance(error, ScimNotFound):
                raise
            current = self.client.get(path)
            self.client.patch(path, patch_body(operations(changes, current) + extra))

    # ------------------------------------------------------------------ delete
    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        """Soft: ``PATCH active=false`` (Entra's disable); hard: ``DELETE``. A resource that
        is already gone counts as done, so a replayed delete is harmless."""
        kind = _kind(object_type)
        try:
            if soft:
                self._patch(kind, ref, {"active": False}, None)
            else:
                self.client.delete(self._path(kind, ref))
                self._indexed(kind, ref, None)
        except ScimNotFound:
            self._indexed(kind, ref, None)
            return

    # ------------------------------------------------------------------ read back
    def get(self, object_type: str, ref: str) -> Attributes | None:
        """The resource in the names the target writes, or None when it is gone."""
        _kind(object_type)
        return self._reader.get(object_type, ref) if ref else None

    def validate(self) -> None:
        """As the source checks a service: the base address answers, then the token reads
        users; the error says which failed."""
        self._reader.validate()

    def discover(self) -> DiscoveredSchema:
        """User and Group as the service's /Schemas and /ResourceTypes describe them."""
        return self._reader.discover()

    def close(self) -> None:
        self.client.close()

    def _path(self, kind: _Kind, ref: str) -> str:
        if not ref:
            raise ObjectError(f"an empty {kind.name} ref names no resource")
        return f"{kind.endpoint}/{url_quote(ref, safe='')}"


#: top-level text attributes an index may answer find for (matching attributes in practice)
INDEXED = frozenset({"userName", "displayName", "externalId"})


def _kind(object_type: str) -> _Kind:
    try:
        return _KINDS[object_type]
    except KeyError:
        raise ObjectError(f"unknown object type {object_type!r}: User or Group") from None


def _checked(attribute: str) -> None:
    try:
        parse(attribute)
    except ValueError as error:
        raise ObjectError(str(error)) from None


def _pop(values: dict[str, Any], name: str) -> Any:
    key = next((k for k in values if k.lower() == name), None)
    return values.pop(key) if key is not None else None


def _id(found: Mapping[str, Any], kind: _Kind) -> str:
    ref = found.get("id")
    if not isinstance(ref, str) or not ref:
        raise ObjectError(f"the service answered a {kind.name} without an id")
    return ref
