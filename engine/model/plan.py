"""A job's plan: what its next cycle would write, object by object (our extension to Graph).

``syncjob plan``, ``POST …/jobs/{id}/plan`` and a dry-run provisionOnDemand answer it; an
apply takes it back and writes exactly it, or refuses naming what moved. Values are shown
masked (credentials as ``*****``, binary as ``<binary, N bytes>``), so a plan can be read,
stored and sent around like a log; the digests say what it was computed from without
holding the values themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class AttributeChange:
    """One attribute of a planned write: the value the target holds now (``old``; None when
    it has none or cannot say) and the one it would hold (``new``; None clears it). A
    multi-valued attribute written as values to add and remove lists them too."""

    name: str
    old: Any = None
    new: Any = None
    added: tuple[Any, ...] = ()
    removed: tuple[Any, ...] = ()


@attrs.frozen(kw_only=True)
class PlannedChange:
    """One object the cycle would write: ``action`` is create, update, delete or disable.

    ``target_id`` is the target's ref, or ``planned:<n>`` for an object the plan creates
    (other planned writes refer to it by that name). The digests are of the source values
    the cycle read and of the target values the plan read, to say which side moved."""

    action: str
    object_type: str  # the target's object type
    source_object_type: str | None = None
    anchor: str | None = None
    display_name: str | None = None
    target_id: str | None = None
    changes: tuple[AttributeChange, ...] = ()
    source_digest: str | None = None
    target_digest: str | None = None


@attrs.frozen(kw_only=True)
class PlannedEscrow:
    """An object the cycle would fail on (it would be escrowed and retried later)."""

    source_object_type: str
    anchor: str
    error: str


@attrs.frozen(kw_only=True)
class PlannedSkip:
    """An object a dry-run provisionOnDemand would not write, and why (out of scope, not
    changed, a flow type that is off...)."""

    source_object_type: str
    anchor: str
    reason: str


@attrs.frozen(kw_only=True)
class DeleteGuard:
    """Whether the delete guards (QuarantineTooManyDeletesThreshold, SourceShrinkThreshold)
    would hold the cycle's deletes: then ``deletes`` are listed but none would be written."""

    held: bool = False
    deletes: int = 0
    reason: str | None = None


@attrs.frozen(kw_only=True)
class PlanWatermark:
    """A mapping's stored watermark when the plan was made: a real cycle moves it."""

    mapping: str
    watermark: str | None = None


@attrs.frozen(kw_only=True)
class SyncPlan:
    """What the job's next cycle would write, and what that was computed from."""

    id: str  # a digest of everything below but the time: equal plans, equal ids
    job_id: str
    created_date_time: datetime | None = None
    watermarks: tuple[PlanWatermark, ...] = ()
    state_digest: str = ""  # of the job's stored state (links, escrows, staged deletes)
    changes: tuple[PlannedChange, ...] = ()
    escrows: tuple[PlannedEscrow, ...] = ()
    delete_guard: DeleteGuard = DeleteGuard()
    skipped: tuple[PlannedSkip, ...] = ()  # a dry-run provisionOnDemand's only
