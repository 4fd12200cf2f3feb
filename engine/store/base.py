"""What the engine persists, and the protocol every state store implements.

The contract (tested by ``tests/contract/test_store_contract.py`` against every store):
``commit`` applies a whole :class:`Checkpoint` atomically (links, escrows, staged deletes,
provisioning log and the page watermark) or nothing of it; ``delete_job`` removes every trace
of a job; reads never return objects that a later write could mutate.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import attrs
import orjson

from connectors.base import Value
from engine.model import Application, StatusCode, SynchronizationJob


class Link(NamedTuple):
    """A source object joined to a target object, with the values last exported to it.

    A NamedTuple rather than an attrs class: the cycle makes one per exported object.
    """

    mapping: str
    anchor: str
    target_ref: str
    exported: str  # JSON of the exported values (see encode_values)


@attrs.frozen(kw_only=True, slots=True)
class Escrow:
    """A change that failed for one object; retried from ``next_retry`` on, never in a loop."""

    mapping: str
    anchor: str
    attempts: int
    first_failed: datetime
    next_retry: datetime
    error: str
    parked: bool = False  # older than EscrowMaxAge: kept visible, no longer retried


@attrs.frozen(kw_only=True, slots=True)
class StagedDelete:
    """A delete or disable decided by a cycle, held until the accidental-deletion check."""

    mapping: str
    anchor: str
    target_type: str
    target_ref: str
    soft: bool
    reason: str


class LogRecord(NamedTuple):
    """One provisioning log entry: what happened to one object, names of attributes only.

    A NamedTuple rather than an attrs class: the cycle makes one per object it touches.
    """

    job_id: str
    cycle_id: str
    change_id: str
    time: datetime
    action: str  # Create, Update, Delete, Disable, StagedDelete, Other
    status: str  # success, failure, skipped
    mapping: str
    anchor: str
    target_ref: str | None = None
    attributes: tuple[str, ...] = ()
    error: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class JobRow:
    """A stored job: its Graph shape plus the engine's private bookkeeping."""

    application_id: str
    job: SynchronizationJob
    next_run: datetime | None = None
    force_deletes: bool = False


@attrs.define(kw_only=True)
class Checkpoint:
    """Everything one page (or one batch of retries or deletes) changed, committed as one."""

    mapping: str | None = None
    watermark: str | None = None  # stored only together with the rest of this checkpoint
    links: list[Link] = attrs.field(factory=list)
    unlinks: list[tuple[str, str]] = attrs.field(factory=list)  # (mapping, anchor)
    escrows: list[Escrow] = attrs.field(factory=list)
    unescrows: list[tuple[str, str]] = attrs.field(factory=list)
    staged: list[StagedDelete] = attrs.field(factory=list)
    unstaged: list[tuple[str, str]] = attrs.field(factory=list)
    logs: list[LogRecord] = attrs.field(factory=list)


class StateStore(Protocol):
    """Durable state of every job; the SQLite store is the embedded default."""

    def save_application(self, application: Application) -> None: ...
    def get_application(self, application_id: str) -> Application | None: ...
    def save_secrets(self, application_id: str, secrets: Mapping[str, str]) -> None: ...
    def get_secrets(self, application_id: str) -> dict[str, str]: ...

    def save_job(self, row: JobRow) -> None: ...
    def get_job(self, job_id: str) -> JobRow | None: ...
    def list_jobs(self, application_id: str | None = None) -> list[JobRow]: ...
    def job_code(self, job_id: str) -> StatusCode | None: ...
    def delete_job(self, job_id: str) -> None: ...

    def get_watermark(self, job_id: str, mapping: str) -> str | None: ...
    def get_links(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, Link]: ...
    def anchor_for_ref(self, job_id: str, mapping: str, target_ref: str) -> str | None: ...
    def count_links(self, job_id: str) -> dict[str, int]: ...
    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]: ...
    def get_escrows(self, job_id: str) -> list[Escrow]: ...
    def staged_deletes(self, job_id: str) -> list[StagedDelete]: ...
    def commit(self, job_id: str, checkpoint: Checkpoint) -> None: ...
    def reset(self, job_id: str, *, watermarks: bool, escrows: bool, links: bool) -> None: ...
    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]: ...
    def prune_logs(self, job_id: str, before: datetime) -> int:
        """Drop provisioning log records older than ``before`` (whole checkpoints at a time);
        returns how many rows or records went."""
        ...

    def close(self) -> None: ...


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _hook(value: dict[str, Any]) -> Any:
    if len(value) == 1 and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


def encode_values(values: Mapping[str, Value]) -> str:
    """JSON of attribute values in their mapping order (binary as base64).

    Equal values in the same order give equal strings, which is all the cycle's "unchanged?"
    test needs: map_object always emits attributes in the schema's order. A reordered schema
    only costs one decode-and-diff per object.
    """
    return orjson.dumps(values, default=_default).decode()


def decode_values(text: str) -> dict[str, Value]:
    decoded: dict[str, Value] = orjson.loads(text)
    for name, value in decoded.items():
        if isinstance(value, dict):
            decoded[name] = _hook(value)
        elif isinstance(value, list):
            decoded[name] = [_hook(v) if isinstance(v, dict) else v for v in value]
    return decoded


def chunked(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
