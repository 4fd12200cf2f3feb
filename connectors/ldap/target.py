"""The LDAP target: the engine's writes as LDAP adds, modifies, renames and deletes.

A ref is the entry's DN. Everything that turns a value into a filter or a DN goes through
:mod:`connectors.ldap.syntax`, so a source value can never change what is searched for or
where an entry lands; every failure leaves as an error of :mod:`connectors.base` through
:class:`~connectors.ldap.connection.LdapClient`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import ldap3

from connectors.base import (
    AmbiguousMatch,
    Attributes,
    Capability,
    ConnectorError,
    Delta,
    ObjectError,
    ObjectGone,
    Scalar,
    TransientError,
    UnreachableError,
    Value,
    ValueDelta,
    as_list,
)
from connectors.discovery import DiscoveredSchema
from connectors.ldap import _ad_account as account
from connectors.ldap import discovery
from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapClient, LdapEndpoint, LdapObjectError
from connectors.ldap.syntax import child_dn, equality_filter, parse_dn, rdn

#: Permissive Modify (an Active Directory control OpenLDAP honours): adding a value that is
#: there, or deleting one from an attribute that is absent, succeeds instead of failing
PERMISSIVE_MODIFY = "1.2.840.113556.1.4.1413"
_PERMISSIVE = [(PERMISSIVE_MODIFY, False, None)]  # non-critical: _modify has a fallback
_ENTRY_EXISTS, _NO_SUCH_OBJECT, _NO_SUCH_ATTRIBUTE, _VALUE_EXISTS = 68, 32, 16, 20
_PAGE_SIZE = 500

Key = str | bytes
DnKey = tuple[tuple[str, str], ...] | str


def _text(value: Scalar) -> str | bytes:
    """A value as LDAP carries it: booleans are TRUE/FALSE (RFC 4517), integers decimal."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return value


def _key(value: Scalar) -> Key:
    """What an equality match compares for the usual string attributes (caseIgnoreMatch, as
    uid, cn and mail have): case folded, insignificant spaces dropped (RFC 4518)."""
    text = _text(value)
    if isinstance(text, bytes):
        return text
    return " ".join(text.split()).casefold()


def dn_key(dn: str) -> DnKey:
    """A DN compared as the server would: attribute types and values case-insensitively,
    escaping and spaces around separators not significant."""
    try:
        return tuple((a.lower(), " ".join(v.split()).casefold()) for a, v in parse_dn(dn))
    except ValueError:  # a DN this connector never builds (multi-valued RDN): compare as text
        return dn.strip().lower()


def canonical_dn(dn: str) -> str:
    """One spelling per DN (our escaping, no spaces around separators), so that the ref a
    create returns is the same string a later live find returns (slapd answers with its own
    hex escapes) and the engine can compare refs as strings."""
    try:
        return ",".join(rdn(attribute, value) for attribute, value in parse_dn(dn))
    except ValueError:  # a DN this connector never builds (multi-valued RDN): as the server says
        return dn


def split_dn(dn: str) -> tuple[str, str]:
    """(RDN, parent DN) as written, split at the first unescaped comma."""
    index = 0
    while index < len(dn):
        if dn[index] == "\\":
            index += 2
            continue
        if dn[index] == ",":
            return dn[:index].strip(), dn[index + 1 :].strip()
        index += 1
    return dn.strip(), ""


def _lookup(mapping: Mapping[str, Any], attribute: str) -> Any:
    """``mapping[attribute]`` with the attribute name case-insensitive (LDAP's rule)."""
    low = attribute.lower()
    return next((v for k, v in mapping.items() if k.lower() == low), None)


@attrs.define
class _Index:
    """value → DNs of one (type, attribute), and its inverse to keep it current on writes."""

    built: float
    by_key: dict[Key, dict[DnKey, str]] = attrs.field(factory=dict)
    keys_of: dict[DnKey, set[Key]] = attrs.field(factory=dict)

    def put(self, dn: str, keys: Iterable[Key]) -> None:
        self.remove(dn)
        node = dn_key(dn)
        self.keys_of[node] = set(keys)
        for key in self.keys_of[node]:
            self.by_key.setdefault(key, {})[node] = dn

    def remove(self, dn: str) -> set[Key]:
        node = dn_key(dn)
        keys = self.keys_of.pop(node, set())
        for key in keys:
            holders = self.by_key.get(key, {})
            holders.pop(node, None)
            if not holders:
                self.by_key.pop(key, None)
        return keys

    def change(self, dn: str, add: Iterable[Key] = (), remove: Iterable[Key] = ()) -> None:
        self.put(dn, (self.keys_of.get(dn_key(dn), set()) - set(remove)) | set(add))


class LdapTarget:
    """An LDAP directory as the engine's target: refs are DNs.

    ``find_cache_seconds`` bounds how old the find index may be (see :meth:`find`); 0 makes
    every find a live search.
    """

    #: no PARALLEL_WRITES: thread-safe (a connection per thread), but ldap3's pure-Python
    #: encoding holds the GIL, so overlapping writes measured no faster (bench_ldap.py
    #: --concurrency 2 and 4: 0.63x and 0.60x of raw adds, against 0.62x one at a time)
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.DELETE,
            Capability.RENAME,
            Capability.REFERENCES,
            Capability.VALUE_DELTAS,
        }
    )
    #: what the engine's restore sets True to enable a disabled (soft-deleted) account again
    soft_delete_attribute = account.ENABLED_FLAG

    def __init__(
        self,
        endpoint: LdapEndpoint,
        object_types: Iterable[LdapObjectType] | Mapping[str, LdapObjectType],
        *,
        find_cache_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        values = object_types.values() if isinstance(object_types, Mapping) else object_types
        self.types: dict[str, LdapObjectType] = {t.name: t for t in values}
        if any(t.account_control for t in self.types.values()):
            # AD accounts can be disabled; the other types' soft delete is a delete, as the
            # engine does for targets that cannot disable at all
            self.capabilities = self.capabilities | {Capability.SOFT_DELETE}
        self.endpoint = endpoint if endpoint.role else attrs.evolve(endpoint, role="target")
        self.find_cache_seconds = find_cache_seconds
        self._monotonic = monotonic
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._generation = 0  # bumped when indexes are dropped: a build in flight is not kept
        # the engine may write from a pool of threads (ExportConcurrency): one connection per
        # thread (an ldap3 connection is not to be shared), the find index under a lock
        self._lock = threading.RLock()
        self._local = threading.local()
        self._clients: list[LdapClient] = []
        self._accounts = account.Accounts(lambda: self.client, self.endpoint)

    @property
    def client(self) -> LdapClient:
        """This thread's connection (opened on first use)."""
        client: LdapClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = LdapClient(self.endpoint)
            with self._lock:
                self._clients.append(client)
        return client

    def __repr__(self) -> str:
        return f"LdapTarget({self.endpoint.shown_url!r}, types={sorted(self.types)})"

    def _type(self, name: str) -> LdapObjectType:
        try:
            return self.types[name]
        except KeyError:
            raise ObjectError(f"unknown object type {name!r}") from None

    # ------------------------------------------------------------------ find
    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        """The DN of the one entry of the type whose ``attribute`` equals ``value``.

        Answered from an index of the whole type (one paged search reading only that
        attribute) while the index is younger than ``find_cache_seconds``. This is safe
        because every way the index can be wrong ends in a live answer, not a wrong write:
        this target keeps it current on its own creates, updates, renames and deletes; an
        entry someone else created meanwhile makes our create fail with entryAlreadyExists,
        which drops the index, so the engine's retry finds the entry live; a stale DN makes
        the update fail with noSuchObject, which drops it too; the index never answers
        "ambiguous" itself (its folding may be coarser than the attribute's matching rule),
        it asks the server. What remains (an entry someone else gave a matching value under
        another DN within the last ``find_cache_seconds``) is bounded by that setting.
        """
        kind = self._type(object_type)
        if isinstance(value, str) and attribute.lower() in kind.binary:
            value = value.encode("utf-8")  # as the index keeps it, and escaped byte for byte
        if self.find_cache_seconds > 0:
            with self._lock:
                holders = dict(self._index(kind, attribute).by_key.get(_key(value), {}))
            if len(holders) <= 1:
                return next(iter(holders.values()), None)
        return self._find_live(kind, attribute, value)

    def _find_live(self, kind: LdapObjectType, attribute: str, value: Scalar) -> str | None:
        search = f"(&{kind.filter}{equality_filter(attribute, _text(value))})"
        entries = self.client.search(kind.match_base, search, ["1.1"])
        if len(entries) > 1:
            dns = "; ".join(str(e["dn"]) for e in entries[:5])
            raise AmbiguousMatch(
                f"{len(entries)} {kind.name} entries under {kind.match_base} have this "
                f"{attribute} ({dns}): ambiguous"
            )
        return canonical_dn(str(entries[0]["dn"])) if entries else None

    def _index(self, kind: LdapObjectType, attribute: str) -> _Index:
        slot = (kind.name, attribute.lower())
        index = self._indexes.get(slot)
        now = self._monotonic()
        if index is None or now - index.built >= self.find_cache_seconds:
            generation = self._generation
            index = self._build_index(kind, attribute, now)
            with self._lock:  # not kept if dropped meanwhile: it may predate a create in doubt
                if generation == self._generation:
                    self._indexes[slot] = index
        return index

    def _build_index(self, kind: LdapObjectType, attribute: str, now: float) -> _Index:
        index = _Index(built=now)
        binary = attribute.lower() in kind.binary
        pages = self.client.paged_search(kind.match_base, kind.filter, [attribute], _PAGE_SIZE)
        for entries, _ in pages:
            for entry in entries:
                raw = _lookup(entry.get("raw_attributes") or {}, attribute) or []
                values = [v if binary else v.decode("utf-8", "replace") for v in raw]
                index.put(canonical_dn(str(entry["dn"])), (_key(v) for v in values))
        return index

    def _indexes_of(self, kind: LdapObjectType) -> list[tuple[str, _Index]]:
        """The type's indexes; the caller holds the lock while it changes them."""
        return [(attr, ix) for (name, attr), ix in self._indexes.items() if name == kind.name]

    def _drop_indexes(self, kind: LdapObjectType) -> None:
        with self._lock:
            self._generation += 1
            for attribute, _ in self._indexes_of(kind):
                del self._indexes[(kind.name, attribute)]

    # ------------------------------------------------------------------ create
    def create(self, object_type: str, attributes: Attributes) -> str:
        kind = self._type(object_type)
        dn = self._new_dn(kind, attributes)
        values = {k: v for k, v in attributes.items() if k.lower() != "dn"}
        leaf_attribute, leaf_value = _leaf(dn)
        if _lookup(values, leaf_attribute) in (None, []):
            values[leaf_attribute] = leaf_value  # slapd refuses an entry without its RDN value
        classes = _lookup(values, "objectClass")
        object_classes = [str(c) for c in as_list(classes)] or list(kind.object_classes)
        payload = {k: _wire(v) for k, v in values.items() if k.lower() != "objectclass"}
        if kind.account_control:
            self._accounts.create(payload, lambda ready: self._add(kind, dn, object_classes, ready))
        else:
            self._add(kind, dn, object_classes, payload)
        self._index_create(kind, dn, values)
        return dn

    def _add(self, kind: LdapObjectType, dn: str, object_classes: list[str],
             payload: dict[str, list[str | bytes]]) -> None:  # fmt: skip
        try:
            self.client.add(dn, object_classes, {k: v for k, v in payload.items() if v})
        except LdapObjectError as error:
            if error.code == _ENTRY_EXISTS:
                self._drop_indexes(kind)  # someone else made it: the retry must look live
            raise
        except (TransientError, UnreachableError):
            self._drop_indexes(kind)  # the add may have been applied: the next find looks live
            raise

    def _index_create(self, kind: LdapObjectType, dn: str, values: Mapping[str, Any]) -> None:
        with self._lock:
            for attribute, index in self._indexes_of(kind):
                index.put(dn, (_key(v) for v in as_list(_lookup(values, attribute))))

    def _new_dn(self, kind: LdapObjectType, attributes: Attributes) -> str:
        given = _lookup(attributes, "dn")
        if given:
            dn = str(as_list(given)[0])
            _leaf(dn)  # an invalid DN is this object's problem, said before any I/O
            return canonical_dn(dn)
        values = as_list(_lookup(attributes, kind.rdn_attribute))
        if not values:
            raise ObjectError(
                f"cannot name a new {kind.name}: no {kind.rdn_attribute} value and no dn"
            )
        text = _text(values[0])
        if isinstance(text, bytes):
            raise ObjectError(f"cannot name a new {kind.name} by a binary value")
        return child_dn(rdn(kind.rdn_attribute, text), canonical_dn(kind.base_dn))

    # ------------------------------------------------------------------ update
    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        """Rename first (so the other attributes are written at the new DN), then one modify.

        Returns the new DN when the entry moved, else None.
        """
        kind = self._type(object_type)
        _leaf(ref)
        changes = {k: v for k, v in delta.items() if k.lower() != "dn"}
        if kind.account_control:
            self._accounts.prepare_update(ref, changes)
        new_dn = self._rename_target(kind, ref, delta)
        dn = ref
        if new_dn is not None:
            try:
                self._rename(kind, ref, new_dn)
            except LdapObjectError as error:
                # the entry is already at the new DN: an earlier update renamed it and then
                # failed on its modify, so the engine still holds the old ref; go on there
                if error.code != _NO_SUCH_OBJECT:
                    raise
                if self.get(kind.name, new_dn) is None:
                    raise ObjectGone(str(error)) from None
            dn = new_dn
        # the RDN's own value is written by a rename only: AD refuses even an unchanged one
        _drop_rdn_echo(changes, kind.rdn_attribute, dn)
        if changes:
            try:
                self._modify(kind, dn, changes)
            except LdapObjectError as error:
                if error.code == _NO_SUCH_OBJECT:  # deleted by someone else: match again
                    raise ObjectGone(str(error)) from None
                raise
        return new_dn

    def _rename_target(self, kind: LdapObjectType, ref: str, delta: Delta) -> str | None:
        """The DN the delta moves the entry to, or None if it stays."""
        given = _lookup(delta, "dn")
        if isinstance(given, str) and given:
            _leaf(given)
            return canonical_dn(given) if dn_key(given) != dn_key(ref) else None
        value = _lookup(delta, kind.rdn_attribute)
        values = as_list(value) if not isinstance(value, ValueDelta) else []
        if not values or isinstance(_text(values[0]), bytes):
            return None
        old_rdn, parent = split_dn(ref)
        new_rdn = rdn(kind.rdn_attribute, str(_text(values[0])))
        if dn_key(new_rdn) == dn_key(old_rdn):
            return None
        return child_dn(new_rdn, canonical_dn(parent))

    def _rename(self, kind: LdapObjectType, ref: str, new_dn: str) -> None:
        new_rdn, new_parent = split_dn(new_dn)
        parent_changed = dn_key(new_parent) != dn_key(split_dn(ref)[1])
        try:
            self.client.modify_dn(ref, new_rdn, new_parent if parent_changed else None)
        except LdapObjectError as error:
            if error.code == _NO_SUCH_OBJECT:
                self._drop_indexes(kind)
            raise
        old_attribute, old_value = _leaf(ref)
        new_attribute, new_value = _leaf(new_dn)
        with self._lock:
            for attribute, index in self._indexes_of(kind):
                keys = index.remove(ref)
                if attribute == old_attribute.lower():
                    keys.discard(_key(old_value))
                if attribute == new_attribute.lower():
                    keys.add(_key(new_value))
                index.put(new_dn, keys)

    def _modify(self, kind: LdapObjectType, dn: str, changes: Mapping[str, Any]) -> None:
        request = _modify_request(changes)
        has_deltas = any(isinstance(v, ValueDelta) for v in changes.values())
        try:
            self.client.modify(dn, request, controls=_PERMISSIVE if has_deltas else None)
        except LdapObjectError as error:
            if error.code == _NO_SUCH_OBJECT:
                self._drop_indexes(kind)
            if not has_deltas or error.code not in (_NO_SUCH_ATTRIBUTE, _VALUE_EXISTS):
                raise
            self._modify_replayed(kind, dn, changes)
        self._index_modify(kind, dn, changes)

    def _modify_replayed(self, kind: LdapObjectType, dn: str, changes: Mapping[str, Any]) -> None:
        """The modify again without the adds already there and removes already gone.

        A replayed ValueDelta must be harmless. Permissive Modify covers that on servers that
        fully implement it; slapd 2.5 still refuses to delete a value that is absent from an
        attribute that has other values (noSuchAttribute). One read of the attributes concerned
        then trims the request: this costs a round trip only when a delta is replayed.
        """
        current = self.get(kind.name, dn)
        if current is None:
            raise ObjectError(f"modify {dn}: the entry does not exist")
        trimmed = {
            attribute: _trim(
                value, as_list(_lookup(current, attribute)), attribute.lower() in kind.references
            )
            if isinstance(value, ValueDelta)
            else value
            for attribute, value in changes.items()
        }
        request = _modify_request(trimmed)
        if request:
            self.client.modify(dn, request, controls=_PERMISSIVE)

    def _index_modify(self, kind: LdapObjectType, dn: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            for attribute, index in self._indexes_of(kind):
                value = _lookup(changes, attribute)
                if isinstance(value, ValueDelta):
                    index.change(dn, map(_key, value.add), map(_key, value.remove))
                elif any(k.lower() == attribute for k in changes):
                    index.put(dn, map(_key, as_list(value)))

    # ------------------------------------------------------------------ delete
    def delete(self, object_type: str, ref: str, *, soft: bool = False) -> None:
        """Delete the entry; a soft delete of an AD account sets its ACCOUNTDISABLE flag
        instead (its other flags kept), and of any other type deletes it when the target
        disables accounts (SOFT_DELETE), as the engine itself does for a target that cannot."""
        kind = self._type(object_type)
        _leaf(ref)
        if soft and kind.account_control:
            self._accounts.disable(ref)
            return
        if soft and Capability.SOFT_DELETE not in self.capabilities:
            raise ObjectError(
                "LDAP has no standard way to disable an entry: this target cannot soft-delete"
            )
        self.client.delete(ref)
        with self._lock:
            for _, index in self._indexes_of(kind):
                index.remove(ref)

    # ------------------------------------------------------------------ read back
    def get(self, object_type: str, ref: str) -> dict[str, Value] | None:
        """The entry's user attributes shaped as a source gives them, or None if it is gone."""
        kind = self._type(object_type)
        try:
            _leaf(ref)
        except ObjectError:
            return None  # no entry can have a DN that does not parse
        entries = self.client.search(ref, "(objectClass=*)", ["*"], scope=ldap3.BASE)
        if not entries:
            return None
        attributes: dict[str, Value] = {}
        for name, raw in (entries[0].get("raw_attributes") or {}).items():
            low = name.lower()
            if low == "objectclass" or not raw:
                continue
            values: list[Scalar] = [
                bytes(v) if low in kind.binary else bytes(v).decode("utf-8", "replace") for v in raw
            ]
            multi = kind.is_multivalued(name) or len(values) > 1
            attributes[name] = values if multi else values[0]
        return attributes

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Bind, then make sure every type's container exists: a typo in a base DN would
        otherwise show up as every create failing with noSuchObject."""
        self.client.connect()
        for kind in self.types.values():
            for base in dict.fromkeys((kind.base_dn, kind.match_base)):
                if not self.client.search(base, "(objectClass=*)", ["1.1"], scope=ldap3.BASE):
                    raise ConnectorError(
                        f"{self.endpoint.role} base DN {base!r} of {kind.name} does not "
                        f"exist on {self.endpoint.shown_url}"
                    )

    def discover(self) -> DiscoveredSchema:
        """The configured types' attributes as the server's subschema defines them."""
        return discovery.discover(self.client, list(self.types.values()))

    def supports_permissive_modify(self) -> bool:
        """Whether the server advertises Permissive Modify in its root DSE."""
        entries = self.client.search("", "(objectClass=*)", ["supportedControl"],
                                     scope=ldap3.BASE)  # fmt: skip
        raw = _lookup(entries[0].get("raw_attributes") or {}, "supportedControl") if entries else []
        return PERMISSIVE_MODIFY.encode() in (raw or [])

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            self._indexes.clear()
        for client in clients:
            client.close()
        self._local = threading.local()


# ---------------------------------------------------------------------- helpers
def _leaf(dn: str) -> tuple[str, str]:
    """The (attribute, value) of the DN's RDN; the server's invalidDNSyntax, said before
    sending, if the DN cannot be parsed (ldap3's own check would say it without a code)."""
    try:
        pairs = parse_dn(dn)
    except ValueError as error:
        reason = str(error)
    else:
        if pairs:
            return pairs[0]
        reason = "the empty DN names no entry"
    raise LdapObjectError(f"LDAP 34 invalidDNSyntax (refused before sending): {reason}", 34)


def _wire(value: Value | ValueDelta | None) -> list[str | bytes]:
    """Values as ldap3 sends them; None and [] become no values."""
    if value is None or isinstance(value, ValueDelta):
        return []
    return [_text(v) for v in as_list(value)]


def _modify_request(changes: Mapping[str, Any]) -> dict[str, list[tuple[str, list[Any]]]]:
    """ldap3's changes dict: REPLACE for values (none: clear), DELETE then ADD for a delta."""
    request: dict[str, list[tuple[str, list[Any]]]] = {}
    for attribute, value in changes.items():
        if isinstance(value, ValueDelta):
            ops: list[tuple[str, list[Any]]] = []
            if value.remove:
                ops.append((ldap3.MODIFY_DELETE, [_text(v) for v in value.remove]))
            if value.add:
                ops.append((ldap3.MODIFY_ADD, [_text(v) for v in value.add]))
            if ops:
                request[attribute] = ops
        else:
            request[attribute] = [(ldap3.MODIFY_REPLACE, _wire(value))]
    return request


def _trim(delta: ValueDelta, current: Sequence[Scalar], is_reference: bool) -> ValueDelta:
    """``delta`` less the adds already present and the removes already absent."""

    def norm(value: Scalar) -> Any:
        text = _text(value)
        return dn_key(text) if is_reference and isinstance(text, str) else text

    present = {norm(v) for v in current}
    folded = {_key(v) for v in current}
    add = tuple(v for v in delta.add if norm(v) not in present)
    remove = tuple(v for v in delta.remove if norm(v) in present or _key(v) in folded)
    return ValueDelta(add=add, remove=remove)


def _drop_rdn_echo(changes: dict[str, Any], rdn_attribute: str, new_dn: str) -> None:
    """Leave out of the modify an RDN attribute whose one value the rename already wrote."""
    attribute, value = _leaf(new_dn)
    for name in list(changes):
        if name.lower() != rdn_attribute.lower() or name.lower() != attribute.lower():
            continue
        values = as_list(changes[name]) if not isinstance(changes[name], ValueDelta) else []
        if len(values) == 1 and _key(values[0]) == _key(value):
            del changes[name]
