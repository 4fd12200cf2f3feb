"""An in-memory directory that is both a source and a target, with knobs to make it misbehave.

It exists so the engine can be proven without a server: unit tests, examples, the demo and
benchmarks drive it directly. Its watermark is the sequence number of its change log, so a delta
read costs what changed, not what is stored. An initial read walks the anchors in sorted order
and its watermark (``f:<log seq at start>:<last anchor>``) lets a paused read resume mid-way;
it ends on the log sequence seen when it began, so changes made during the read follow as a delta.

Writes are copy-on-write: a dict handed out by ``read``/``get``/``list`` never changes later.
"""

from __future__ import annotations

import bisect
import builtins
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs

from connectors.base import (
    AmbiguousMatch,
    Attributes,
    Capability,
    Change,
    ConnectorError,
    CredentialsError,
    Delta,
    ObjectError,
    ObjectGone,
    Page,
    Scalar,
    TransientError,
    UnreachableError,
    Value,
    ValueDelta,
    WatermarkExpired,
    as_list,
)

WriteHook = Callable[[str, str, "str | None"], None]
F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """One call at a time: the engine may write from a pool of threads (ExportConcurrency)."""

    @functools.wraps(method)
    def locked(self: MemoryDirectory, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(F, locked)


@attrs.define
class _FaultRule:
    object_type: str
    key: Scalar
    remaining: int
    error: Callable[[str], ConnectorError]


def _applied(change: ValueDelta, old: Value | None) -> list[Scalar]:
    """Old values less the removed ones, plus the added ones not there yet (in order); text
    compared without case, as find matches it (a value whose case changed unflowed is still
    the one to remove)."""
    gone = {_match_key(v) for v in change.remove}
    values = [v for v in as_list(old) if _match_key(v) not in gone]
    present = {_match_key(v) for v in values}
    for value in change.add:
        if _match_key(value) not in present:
            present.add(_match_key(value))
            values.append(value)
    return values


def _plain(delta: Delta) -> Attributes:
    """The delta with value deltas as the values they add (what fault rules look at)."""
    return {k: list(v.add) if isinstance(v, ValueDelta) else v for k, v in delta.items()}


def _match_key(value: Scalar) -> Scalar:
    return value.lower() if isinstance(value, str) else value


class MemoryDirectory:
    """A directory held in dicts: ``type -> anchor -> attributes``, plus a change log.

    Test writers shape it with ``put``/``remove`` (recorded in the change log like any source
    change) and read it with ``get``/``list``; ``writes`` counts what the engine wrote to it.
    """

    capabilities = frozenset(
        {
            Capability.DELTA,
            Capability.DELETE,
            Capability.SOFT_DELETE,
            Capability.RENAME,
            Capability.REFERENCES,
            Capability.VALUE_DELTAS,
        }
    )

    def __init__(
        self,
        object_types: Iterable[str] = ("User", "Group"),
        *,
        soft_delete_attribute: str = "active",
        id_prefix: str = "m",
    ) -> None:
        self._lock = threading.RLock()
        self._types = list(object_types)
        self._objects: dict[str, dict[str, dict[str, Value]]] = {t: {} for t in self._types}
        self._log_seqs: dict[str, list[int]] = {t: [] for t in self._types}
        self._log_anchors: dict[str, list[str]] = {t: [] for t in self._types}
        self._seq = 0
        self._log_floor = 0  # changes at or before this sequence number were forgotten
        self._next_id = 0
        self._id_prefix = id_prefix
        self._indexes: dict[tuple[str, str], dict[Scalar, set[str]]] = {}
        self._indexed_names: dict[str, list[tuple[str, str]]] = {t: [] for t in self._types}
        self._index_cache: dict[tuple[str, str], dict[Scalar, set[str]]] = {}
        self._faults: list[_FaultRule] = []
        self.soft_delete_attribute = soft_delete_attribute
        self.writes = 0
        self.transient_failures = 0
        self.unreachable = False
        self.bad_credentials = False
        self.before_write: WriteHook | None = None
        self.after_write: WriteHook | None = None

    # ----------------------------------------------------------------- test-writer interface
    @_locked
    def put(self, object_type: str, anchor: str, attributes: Attributes) -> None:
        """Create or replace an object as a source change (no fault injection, not counted)."""
        self._store(object_type, anchor, _clean(attributes))

    @_locked
    def remove(self, object_type: str, anchor: str) -> None:
        """Delete an object as a source change."""
        self._drop(object_type, anchor)

    @_locked
    def list(self, object_type: str) -> dict[str, dict[str, Value]]:
        return dict(self._table(object_type))

    def fail_object(
        self,
        object_type: str,
        key: Scalar,
        times: int = 1,
        error: Callable[[str], ConnectorError] = ObjectError,
    ) -> None:
        """Make the next ``times`` writes touching ``key`` (a ref or any attribute value) fail."""
        self._faults.append(_FaultRule(object_type, _match_key(key), times, error))

    def forget_changes(self) -> None:
        """Purge the change log, as a directory does after its retention: a delta read from
        an older watermark then raises WatermarkExpired."""
        self._log_floor = self._seq
        for object_type in self._types:
            self._log_seqs[object_type] = []
            self._log_anchors[object_type] = []

    def clear_faults(self) -> None:
        """Forget every injected fault: object faults, transient, unreachable, credentials."""
        self._faults.clear()
        self.transient_failures = 0
        self.unreachable = False
        self.bad_credentials = False

    # ------------------------------------------------------------------------ source side
    def object_types(self) -> Sequence[str]:
        return list(self._types)

    def validate(self) -> None:
        self._check_reachable()

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        self._check_reachable()
        self._table(object_type)
        if watermark is None or watermark.startswith("f:"):
            return self._read_all(object_type, watermark, page_size)
        try:
            after = int(watermark)
        except ValueError:
            raise ObjectError(f"not a memory watermark: {watermark!r}") from None
        return self._read_delta(object_type, after, page_size)

    @_locked
    def get(self, object_type: str, anchor: str) -> dict[str, Value] | None:
        """The object's attributes now, or None (also the test writers' read)."""
        self._check_reachable()
        return self._table(object_type).get(anchor)

    @_locked
    def get_many(
        self, object_type: str, anchors: Sequence[str]
    ) -> dict[str, dict[str, Value] | None]:
        """``get`` for each anchor, in one call (ReadsMany)."""
        self._check_reachable()
        table = self._table(object_type)
        return {anchor: table.get(anchor) for anchor in anchors}

    @_locked
    def lookup(self, object_type: str, attribute: str, value: str) -> builtins.list[str]:
        """Anchors of the objects whose ``attribute`` (any case) holds ``value``: a scan, for
        provision on demand's subject given by an attribute rather than anchor."""
        name = attribute.lower()
        return sorted(
            anchor
            for anchor, attributes in self._table(object_type).items()
            if any(k.lower() == name and value in as_list(v) for k, v in attributes.items())
        )

    def _read_all(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        if watermark is None:
            start, after = self._seq, None
        else:
            _, seq, after = watermark.split(":", 2)
            start = int(seq)
        objects = self._objects[object_type]
        anchors = sorted(objects)
        position = 0 if after is None else bisect.bisect_right(anchors, after)
        final = str(start)
        if position >= len(anchors):
            yield Page((), final)
            return
        while position < len(anchors):
            remaining = len(anchors) - position
            chunk = anchors[position : position + page_size]
            position += len(chunk)
            changes = [
                Change("upsert", a, objects[a]) if a in objects else Change("delete", a)
                for a in chunk
            ]
            last = position >= len(anchors)
            yield Page(changes, final if last else f"f:{start}:{chunk[-1]}", remaining)

    def _read_delta(self, object_type: str, after: int, page_size: int) -> Iterator[Page]:
        if after < self._log_floor:
            raise WatermarkExpired(
                f"the change log starts after {self._log_floor}; watermark {after} is older"
            )
        seqs = self._log_seqs[object_type]
        log = self._log_anchors[object_type]
        objects = self._objects[object_type]
        position = bisect.bisect_right(seqs, after)
        if position >= len(seqs):
            yield Page((), str(after))
            return
        while position < len(seqs):
            end = min(position + page_size, len(seqs))
            latest: dict[str, None] = {}
            for anchor in log[position:end]:
                latest.pop(anchor, None)
                latest[anchor] = None
            changes = [
                Change("upsert", a, objects[a]) if a in objects else Change("delete", a)
                for a in latest
            ]
            yield Page(changes, str(seqs[end - 1]))
            position = end

    # ------------------------------------------------------------------------ target side
    @_locked
    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        self._check_reachable()
        index = self._index_cache.get((object_type, attribute))
        if index is None:
            index = self._index_cache[(object_type, attribute)] = self._index(
                object_type, attribute
            )
        refs = index.get(value.lower() if isinstance(value, str) else value)
        if not refs:
            return None
        if len(refs) > 1:
            raise AmbiguousMatch(
                f"{len(refs)} {object_type} objects have {attribute}={value!r} "
                f"({', '.join(sorted(refs)[:5])}): ambiguous"
            )
        return next(iter(refs))

    @_locked
    def create(self, object_type: str, attributes: Attributes) -> str:
        self._write("create", object_type, None, attributes)
        table = self._objects[object_type]
        self._next_id += 1
        ref = f"{self._id_prefix}{self._next_id:08d}"
        while ref in table:
            self._next_id += 1
            ref = f"{self._id_prefix}{self._next_id:08d}"
        clean = _clean(attributes)
        for attribute, lowered in self._indexed_names[object_type]:
            index = self._indexes[(object_type, lowered)]
            for value in _values_named(clean, attribute, lowered):
                index.setdefault(value, set()).add(ref)
        table[ref] = clean
        self._log(object_type, ref)
        self._after("create", object_type, ref)
        return ref

    @_locked
    def update(self, object_type: str, ref: str, delta: Delta) -> None:
        self._write("update", object_type, ref, _plain(delta))
        current = self._table(object_type).get(ref)
        if current is None:
            raise ObjectGone(f"{object_type} {ref} does not exist")
        merged = dict(current)
        names = {name.lower(): name for name in merged}
        for name, value in delta.items():
            existing = names.get(name.lower(), name)
            new = _applied(value, merged.get(existing)) if isinstance(value, ValueDelta) else value
            merged.pop(existing, None)
            if new is not None and new != []:
                merged[name] = list(new) if isinstance(new, list) else new
        self._store(object_type, ref, merged)
        self._after("update", object_type, ref)

    @_locked
    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        self._write("delete", object_type, ref, None)
        current = self._table(object_type).get(ref)
        if current is not None:
            if soft:
                self._store(object_type, ref, {**current, self.soft_delete_attribute: False})
            else:
                self._drop(object_type, ref)
        self._after("delete", object_type, ref)

    # ---------------------------------------------------------------------------- internals
    def _table(self, object_type: str) -> dict[str, dict[str, Value]]:
        try:
            return self._objects[object_type]
        except KeyError:
            raise ObjectError(f"unknown object type {object_type!r}") from None

    def _check_reachable(self) -> None:
        if self.unreachable:
            raise UnreachableError("memory directory is unreachable (fault injected)")
        if self.bad_credentials:
            raise CredentialsError("memory directory refused the credentials (fault injected)")
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise TransientError("memory directory is busy (fault injected)", retry_after=0.0)

    def _before(self, operation: str, object_type: str, ref: str | None) -> None:
        self._check_reachable()
        self._table(object_type)
        if self.before_write is not None and operation != "find":
            self.before_write(operation, object_type, ref)

    def _after(self, operation: str, object_type: str, ref: str) -> None:
        self.writes += 1
        if self.after_write is not None:
            self.after_write(operation, object_type, ref)

    def _write(
        self, operation: str, object_type: str, ref: str | None, attributes: Attributes | None
    ) -> None:
        self._before(operation, object_type, ref)
        if not self._faults:
            return
        keys: set[Scalar] = set()
        if ref is not None:
            keys.add(_match_key(ref))
            keys.update(_values_of(self._objects[object_type].get(ref) or {}))
        keys.update(_values_of(attributes or {}))
        for rule in self._faults:
            if rule.object_type == object_type and rule.remaining > 0 and rule.key in keys:
                rule.remaining -= 1
                raise rule.error(f"{operation} of {object_type} {rule.key!r} failed (injected)")

    def _store(self, object_type: str, anchor: str, attributes: dict[str, Value]) -> None:
        table = self._table(object_type)
        old = table.get(anchor)
        self._reindex(object_type, anchor, old, attributes)
        table[anchor] = attributes
        self._log(object_type, anchor)

    def _drop(self, object_type: str, anchor: str) -> None:
        old = self._table(object_type).pop(anchor, None)
        if old is not None:
            self._reindex(object_type, anchor, old, None)
            self._log(object_type, anchor)

    def _log(self, object_type: str, anchor: str) -> None:
        self._seq += 1
        self._log_seqs[object_type].append(self._seq)
        self._log_anchors[object_type].append(anchor)

    def _index(self, object_type: str, attribute: str) -> dict[Scalar, set[str]]:
        lowered = attribute.lower()
        key = (object_type, lowered)
        index = self._indexes.get(key)
        if index is None:
            index = {}
            for anchor, attributes in self._table(object_type).items():
                for value in _values_named(attributes, attribute, lowered):
                    index.setdefault(value, set()).add(anchor)
            self._indexes[key] = index
            self._indexed_names[object_type].append((attribute, lowered))
        return index

    def _reindex(
        self,
        object_type: str,
        anchor: str,
        old: Mapping[str, Value] | None,
        new: Mapping[str, Value] | None,
    ) -> None:
        for attribute, lowered in self._indexed_names[object_type]:
            index = self._indexes[(object_type, lowered)]
            if old:
                for value in _values_named(old, attribute, lowered):
                    refs = index.get(value)
                    if refs is not None:
                        refs.discard(anchor)
                        if not refs:
                            del index[value]
            if new:
                for value in _values_named(new, attribute, lowered):
                    index.setdefault(value, set()).add(anchor)


def _clean(attributes: Attributes) -> dict[str, Value]:
    """Our own copy of the attributes, without empty values; lists copied too."""
    clean = dict(attributes)
    for name, value in attributes.items():
        if value.__class__ is str:
            continue
        if value is None or value == []:
            del clean[name]
        elif isinstance(value, list):
            clean[name] = list(value)
    return clean  # type: ignore[return-value]


def _values_named(
    attributes: Mapping[str, Value | None], attribute: str, lowered: str
) -> list[Scalar]:
    value = attributes.get(attribute)
    if value is None:
        for name, candidate in attributes.items():
            if name.lower() == lowered:
                value = candidate
                break
        else:
            return []
    if isinstance(value, str):
        return [value.lower()]
    return [_match_key(v) for v in as_list(value)]


def _values_of(attributes: Mapping[str, Value | None]) -> set[Scalar]:
    keys: set[Scalar] = set()
    for value in attributes.values():
        keys.update(_match_key(v) for v in as_list(value))
    return keys
