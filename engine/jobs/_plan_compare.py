"""What a plan rests on, and what moved between two plans of one job (an apply's check)."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import orjson

from engine.jobs._mappings import CompiledMappings
from engine.model.plan import PlannedChange, PlanWatermark, SyncPlan
from engine.settings import JobSettings
from engine.store import JobRow, StateStore


def plan_id(plan: SyncPlan) -> str:
    """A digest of what the plan says (its time aside): two equal plans have one id."""
    body = attrs.evolve(plan, id="", created_date_time=None)
    text = orjson.dumps(body, default=_fields)
    return hashlib.sha256(text).hexdigest()[:24]


def _fields(value: Any) -> Any:
    """An attrs object as orjson can write it (its fields in order; one level: orjson asks
    again for the objects inside)."""
    if attrs.has(type(value)):
        return attrs.astuple(value, recurse=False)
    raise TypeError(type(value).__name__)


def basis(
    store: StateStore, row: JobRow, settings: JobSettings, mappings: CompiledMappings
) -> tuple[tuple[PlanWatermark, ...], str]:
    """What a plan rests on in the job's stored state: each mapping's watermark, and a digest
    of its link counts, escrows and staged deletes (a cycle run since moves one of them)."""
    job_id = row.job.id or ""
    keys = [m.key for m in mappings.of(row, settings)]
    watermarks = tuple(
        PlanWatermark(mapping=k, watermark=store.get_watermark(job_id, k)) for k in keys
    )
    state = repr(
        (
            sorted(store.count_links(job_id).items()),
            sorted((e.mapping, e.anchor, e.attempts, e.error) for e in store.get_escrows(job_id)),
            sorted((s.mapping, s.anchor, s.target_ref) for s in store.staged_deletes(job_id)),
            [w.watermark for w in watermarks],
        )
    )
    return watermarks, hashlib.sha256(state.encode()).hexdigest()[:24]


def differences(old: SyncPlan, new: SyncPlan) -> list[str]:
    """What moved between two plans of one job, said per object; empty when they are equal."""
    said: list[str] = []
    for was, now in zip(old.watermarks, new.watermarks, strict=False):
        if was != now:
            said.append(f"mapping {was.mapping}'s watermark moved (a cycle ran since the plan)")
    if len(old.watermarks) != len(new.watermarks):
        said.append("the job's mappings changed")
    if old.state_digest != new.state_digest and not said:
        said.append("the job's state moved (links, escrows or staged deletes changed)")
    was_changes = {_object_key(c): c for c in old.changes}
    now_changes = {_object_key(c): c for c in new.changes}
    for key, change in was_changes.items():
        other = now_changes.get(key)
        if other is None:
            said.append(f"{_said(change)} is no longer planned")
        elif other != change:
            said.append(f"{_said(change)}: {_what_moved(change, other)}")
    said.extend(
        f"{_said(c)} is planned now" for k, c in now_changes.items() if k not in was_changes
    )
    if set(old.escrows) != set(new.escrows):
        gone = {e.anchor for e in set(old.escrows) ^ set(new.escrows)}
        said.append(f"the escrows it would hit changed ({', '.join(sorted(gone)[:5])})")
    if old.delete_guard != new.delete_guard:
        said.append("the delete guards' verdict changed")
    return said


def _object_key(change: PlannedChange) -> tuple[Any, ...]:
    return (change.action, change.object_type.lower(), change.anchor, change.target_id)


def _said(change: PlannedChange) -> str:
    name = change.display_name or change.anchor or change.target_id
    return f"{change.action} {change.object_type} {name}"


def _what_moved(was: PlannedChange, now: PlannedChange) -> str:
    sides = []
    if was.source_digest != now.source_digest:
        sides.append("the source moved")
    if was.target_digest != now.target_digest:
        sides.append("the target moved")
    was_by = {c.name: c for c in was.changes}
    now_by = {c.name: c for c in now.changes}
    names = sorted(n for n in was_by.keys() | now_by.keys() if was_by.get(n) != now_by.get(n))
    if names:
        sides.append("attributes " + ", ".join(names))
    return " and ".join(sides) or "its values moved"
