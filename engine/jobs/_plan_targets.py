"""The connectors a plan runs the real cycle with, and the guard an apply writes through.

A plan is the real cycle against a copy of the job's state (engine.store.snapshot) and a
``RecordingTarget``: reads go to the real target, writes are recorded and never sent, so the
cycle code needs no "dry run" branch of its own. A create answers a placeholder ref
(``planned:<n>``) that the rest of the plan's cycle links and refers to like any other. The
``RecordingSource`` passes everything through and keeps what each object was read with, for
the plan's per-object digests.

An apply writes through a ``GuardedTarget``: every write must be one the plan recorded (the
plan's placeholders standing for the refs the real creates answer), else it is refused as an
``ObjectError``, which the cycle escrows: what changed between the plan and the apply fails
closed, object by object, and the cycle's log says which.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import orjson

from connectors.base import (
    Attributes,
    Capability,
    Delta,
    ObjectError,
    Page,
    Scalar,
    Source,
    Target,
    Value,
    ValueDelta,
)

PLACEHOLDER = "planned:"


def plain(value: Any) -> Any:
    """A value as JSON can hold it: bytes as {"$b64"}, a ValueDelta as {"add", "remove"}."""
    if isinstance(value, ValueDelta):
        return {"add": [plain(v) for v in value.add], "remove": [plain(v) for v in value.remove]}
    if isinstance(value, bytes):
        return {"$bytes": hashlib.sha256(value).hexdigest(), "length": len(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def digest(value: Any) -> str:
    """A short, stable digest of attribute values (keys sorted), for "did this move?"."""
    text = orjson.dumps(plain(value), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:16]


@attrs.frozen
class Write:
    """One target write the cycle asked for, as it asked for it."""

    kind: str  # create, update, delete
    object_type: str
    ref: str  # the placeholder a create answered; the ref an update or delete named
    values: Mapping[str, Any] = attrs.field(factory=dict)  # a create's attributes, a delta
    soft: bool = False

    def key(self, refs: Mapping[str, str] | None = None) -> str:
        """Canonical text of the write, real refs spelt as the plan's placeholders."""
        swap = refs or {}

        def spelt(value: Any) -> Any:
            if isinstance(value, str):
                return swap.get(value, value)
            if isinstance(value, ValueDelta):
                return ValueDelta(_sorted(map(spelt, value.add)), _sorted(map(spelt, value.remove)))
            if isinstance(value, list | tuple):  # references sort by ref: placeholders apart
                return list(_sorted(spelt(v) for v in value))
            return value

        ref = "" if self.kind == "create" else swap.get(self.ref, self.ref)
        values = {name: spelt(v) for name, v in self.values.items()}
        return orjson.dumps(
            [self.kind, self.object_type.lower(), ref, plain(values), self.soft],
            option=orjson.OPT_SORT_KEYS,
        ).decode()


def _sorted(values: Iterable[Any]) -> tuple[Any, ...]:
    """Values in one order whatever their type (a multi-valued attribute is a set)."""
    return tuple(sorted(values, key=lambda v: orjson.dumps(plain(v))))


class RecordingTarget:
    """Reads from the real target; writes recorded in ``writes``, never sent."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._lock = threading.Lock()
        # sequential: the plan's order, and so its placeholders, do not depend on threads
        self.capabilities = target.capabilities - {Capability.PARALLEL_WRITES}
        self.writes: list[Write] = []
        self._creates = 0
        #: what the target held for each ref the plan writes, read once before the first write
        self.before: dict[tuple[str, str], Attributes | None] = {}

    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        return self._target.find(object_type, attribute, value)

    def create(self, object_type: str, attributes: Attributes) -> str:
        with self._lock:
            self._creates += 1
            ref = f"{PLACEHOLDER}{self._creates}"
            self.writes.append(Write("create", object_type, ref, dict(attributes)))
            return ref

    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        self._read_before(object_type, ref)
        with self._lock:
            self.writes.append(Write("update", object_type, ref, dict(delta)))
        return None

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        self._read_before(object_type, ref)
        with self._lock:
            self.writes.append(Write("delete", object_type, ref, soft=soft))

    def validate(self) -> None:
        self._target.validate()

    def _read_before(self, object_type: str, ref: str) -> None:
        """The plan may read the target: an update's old values are what it holds now."""
        key = (object_type, ref)
        if key in self.before or ref.startswith(PLACEHOLDER):
            return
        get = getattr(self._target, "get", None)
        self.before[key] = get(object_type, ref) if callable(get) else None


class RecordingSource:
    """The real source, read as usual (reads change nothing); what each object was read with
    is kept (the last read wins) for the plan's digests."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self.capabilities = source.capabilities
        self.seen: dict[tuple[str, str], Attributes | None] = {}

    def object_types(self) -> Sequence[str]:
        return self._source.object_types()

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        for page in self._source.read(object_type, watermark, page_size):
            for change in page.changes:
                self.seen[(object_type, change.anchor)] = change.attributes
            yield page

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        attributes = self._source.get(object_type, anchor)
        self.seen[(object_type, anchor)] = attributes
        return attributes

    def validate(self) -> None:
        self._source.validate()

    def __getattr__(self, name: str) -> Any:  # discover(), close(): the source's own
        return getattr(self._source, name)


class GuardedTarget:
    """The real target, taking only the writes a plan recorded (each at most as often as the
    plan has it); any other write is refused as an ObjectError and not sent."""

    def __init__(self, target: Target, writes: Sequence[Write]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self.capabilities = target.capabilities
        self._left = Counter(w.key() for w in writes)
        self._creates = {w.key(): w.ref for w in writes if w.kind == "create"}
        self._refs: dict[str, str] = {}  # real ref -> the plan's placeholder
        self.refused: list[str] = []

    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        return self._target.find(object_type, attribute, value)

    def create(self, object_type: str, attributes: Attributes) -> str:
        key = self._take(Write("create", object_type, "", dict(attributes)))
        with self._given_back(key):
            ref = self._target.create(object_type, attributes)
        with self._lock:
            self._refs[ref] = self._creates[key]
        return ref

    def update(self, object_type: str, ref: str, delta: Delta) -> str | None:
        key = self._take(Write("update", object_type, ref, dict(delta)))
        with self._given_back(key):
            renamed = self._target.update(object_type, ref, delta)
        if renamed is not None and renamed != ref:  # the plan keeps calling it by its old ref
            with self._lock:
                self._refs[renamed] = self._refs.get(ref, ref)
        return renamed

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        key = self._take(Write("delete", object_type, ref, soft=soft))
        with self._given_back(key):
            self._target.delete(object_type, ref, soft=soft)

    @contextlib.contextmanager
    def _given_back(self, key: str) -> Iterator[None]:
        """A write that failed was not made: the cycle's retry of it is still the plan's."""
        try:
            yield
        except BaseException:
            with self._lock:
                self._left[key] += 1
            raise

    def validate(self) -> None:
        self._target.validate()

    def __getattr__(self, name: str) -> Any:  # get(), close(): the target's own
        return getattr(self._target, name)

    def _take(self, write: Write) -> str:
        with self._lock:
            key = write.key(self._refs)
            if self._left[key] <= 0:
                what = f"{write.kind} of {write.object_type} {write.ref}".rstrip()
                self.refused.append(what)
                raise ObjectError(f"not in the plan being applied: {what} (plan again)")
            self._left[key] -= 1
            return key


def apply_delta(old: Value | None, change: Value | ValueDelta | None) -> Value | None:
    """What an attribute holds after one delta entry (a ValueDelta adds and removes)."""
    if not isinstance(change, ValueDelta):
        return change
    values = [] if old is None else list(old) if isinstance(old, list) else [old]
    values = [v for v in values if v not in change.remove]
    values.extend(v for v in change.add if v not in values)
    return values
