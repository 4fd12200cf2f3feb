"""The contract between the engine and every directory it reads or writes.

A connector is any object that satisfies :class:`Source`, :class:`Target` or both; nothing needs
to inherit from anything here. The contract suite in :mod:`connectors.testing` is the executable
form of the docstrings below: a connector that passes it is fit for the engine.

Values are normalised at this boundary so the engine never guesses: an attribute value is a
scalar (``str``, ``bytes`` for binary, ``int``, ``bool``) or a ``list`` of scalars for a
multi-valued attribute; an attribute that is absent or ``None`` has no value.

Errors are grouped by what the engine does with them (the connector translates its library's
exceptions into these, and nowhere else does)::

    ConnectorError
    ├── TransientError      retry soon (honour retry_after); escrow if it keeps happening
    ├── ObjectError         this object cannot be written: escrow it, go on with the others
    │   └── ObjectGone      the linked object is gone from the target: match again, or create
    ├── CredentialsError    the cycle fails; quarantines the job at once
    ├── UnreachableError    the cycle fails; quarantines after successive failed cycles
    └── WatermarkExpired    the delta log no longer reaches the watermark: the engine reads
                            everything again and reconciles (deprovisions what it did not see)
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, NamedTuple, Protocol, TypeAlias, runtime_checkable

import attrs

Scalar: TypeAlias = str | bytes | int | bool
Value: TypeAlias = Scalar | list[Scalar]
Attributes: TypeAlias = Mapping[str, Value | None]


class ConnectorError(Exception):
    """Root of the errors a connector may raise; the subclass decides the engine's reaction."""


class TransientError(ConnectorError):
    """A failure that may pass by itself (throttling, a timeout, a busy server)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ObjectError(ConnectorError):
    """This one object was refused (schema violation, uniqueness conflict, missing parent)."""


class AmbiguousMatch(ObjectError):
    """find() found more than one object holding the value: the engine cannot choose, so the
    object is escrowed and the cycle's status says so (lastExecution.error) until someone
    removes the extra objects in the target. The message names them."""


class ObjectGone(ObjectError):
    """update() was given a ref whose object no longer exists (deleted in the target by
    someone else): the engine matches the object again, and creates it if nothing matches."""


class CredentialsError(ConnectorError):
    """The directory refused our credentials: nothing will work until someone fixes them."""


class UnreachableError(ConnectorError):
    """The directory could not be reached at all (connection refused, DNS, TLS)."""


class WatermarkExpired(ConnectorError):
    """read() was given a watermark older than what the source's change log still holds
    (purged while the engine was down): only a full read can catch up."""


#: Reserved attribute names a source may put among an object's attributes (``$`` begins no
#: directory's attribute name). References name objects by anchor; a source whose references
#: name them by something else (LDAP: a DN, which a user deleted and re-added takes over with
#: a new entryUUID) tells the engine that name, and the names an object holds that named no
#: object when it was read, so an object that appears under such a name has its referrers
#: evaluated again even when nothing changed in them (a source without referential integrity).
#: Names are compared as given: the source spells each one way (an LDAP DN normalized).
REFERENCE_NAME = "$referenceName"
DANGLING_REFERENCES = "$danglingReferences"


class Capability(enum.Enum):
    """What a connector declares it can do, so the engine never probes by trial and error."""

    DELTA = "delta"  # read() with a watermark returns only changes after it
    DELETE = "delete"  # delete(soft=False) removes the object
    #: delete(soft=True) disables the object instead; update(ref, {soft_delete_attribute:
    #: True}) enables it again (the target's ``soft_delete_attribute``, "active" if it has none)
    SOFT_DELETE = "soft_delete"
    RENAME = "rename"  # anchors survive a change of the naming attribute
    REFERENCES = "references"  # reference attributes hold target refs
    VALUE_DELTAS = "value_deltas"  # update() takes ValueDelta for multi-valued attributes
    #: thread-safe, and each call waits on a remote server: the engine overlaps a page's writes
    #: (ExportConcurrency, 4 by default); an in-process target gains nothing from threads
    PARALLEL_WRITES = "parallel_writes"


class ValueDelta(NamedTuple):
    """Values to add to and remove from a multi-valued attribute, in an ``update`` delta.

    Sent only to targets that declare ``Capability.VALUE_DELTAS``, so that one new member of a
    group of 50,000 is one value on the wire, not the whole list. Adding a value already there
    and removing one already gone both succeed: a replayed update is harmless.
    """

    add: tuple[Scalar, ...] = ()
    remove: tuple[Scalar, ...] = ()


#: what ``Target.update`` takes: a new value, ``None`` to clear, or a ValueDelta
Delta: TypeAlias = Mapping[str, Value | ValueDelta | None]


class Change(NamedTuple):
    """One change read from a source: the current state of an object, or its disappearance.

    A NamedTuple: sources make one per object read, so it must be cheap.
    """

    kind: Literal["upsert", "delete"]
    anchor: str
    attributes: Attributes | None = None


@attrs.frozen(slots=True)
class Page:
    """A batch of changes and the watermark that is safe to store once all of them are handled.

    Storing ``watermark`` and later calling ``read(type, watermark)`` must continue exactly after
    this page: nothing skipped, and at most this page replayed if the store fell behind.
    """

    changes: Sequence[Change]
    watermark: str
    #: changes this read still holds from this page on, this page's included, when the source
    #: knows it cheaply (a full read's count); only progress reports use it, never correctness
    remaining: int | None = None
    #: this page's deletes were inferred from absence (ids a complete listing no longer holds),
    #: not reported by the directory as deletes: the engine judges them as it judges a full
    #: read's unseen objects, holding them when too many vanish at once (a permission or a
    #: scope that shrank looks the same as a mass delete)
    inferred_deletes: bool = False


@runtime_checkable
class Source(Protocol):
    """A directory the engine reads changes from.

    ``read(type, None, n)`` enumerates every object (an initial read) and ends with a page
    whose watermark continues as a delta; ``read(type, w, n)`` yields what changed after ``w``.
    An initial read may be resumed from any page's watermark. Pages are never empty except the
    last, which carries the final watermark even when nothing changed. ``get`` returns an
    object's attributes as they are now, or None when it no longer exists (escrow retries and
    provision on demand use it).
    """

    capabilities: frozenset[Capability]

    def object_types(self) -> Sequence[str]: ...

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]: ...

    def get(self, object_type: str, anchor: str) -> Attributes | None: ...

    def validate(self) -> None: ...


@runtime_checkable
class ReadsMany(Protocol):
    """A source that reads many objects by anchor in few requests (optional).

    ``get_many`` answers as ``get`` would for each anchor (None for one that no longer exists
    or is out of the type), with every anchor asked for as a key. The engine reads the
    objects it evaluates again (second passes of references, escrow retries) a page at a time
    through it: on a directory whose anchors do not follow its references (AD's objectGUIDs
    are random), about half the users of an initial cycle meet a manager not linked yet, and
    one request each made such a cycle wait on a thousand round trips.
    """

    def get_many(
        self, object_type: str, anchors: Sequence[str]
    ) -> dict[str, Attributes | None]: ...


@runtime_checkable
class Target(Protocol):
    """A directory the engine writes to.

    ``find`` looks up one object by one attribute value and returns its ref (or None);
    ``create`` returns the new ref; ``update`` applies a minimal delta where ``None`` clears an
    attribute (and a :class:`ValueDelta` adds and removes single values, for targets that
    declare ``VALUE_DELTAS``), and returns the object's new ref when the update changed it (an
    LDAP rename moves the DN), else None; ``delete`` removes (``soft=False``) or disables
    (``soft=True``) the object and succeeds when the object is already gone, so a replayed
    delete is harmless. Reference attributes take target refs as values.
    """

    capabilities: frozenset[Capability]

    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None: ...

    def create(self, object_type: str, attributes: Attributes) -> str: ...

    def update(self, object_type: str, ref: str, delta: Delta) -> str | None: ...

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None: ...

    def validate(self) -> None: ...


def as_list(value: Value | None) -> list[Scalar]:
    """Every value as a list: the one shape comparisons and multi-valued logic can rely on."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
