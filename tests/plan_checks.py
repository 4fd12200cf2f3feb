"""What the plan tests compare: a plan's changes, and what a real cycle wrote (its log)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine import SyncEngine
from engine.model.plan import SyncPlan

Summary = set[tuple[str, str | None, tuple[str, ...]]]


def dump(path: Path) -> list[str]:
    """The whole SQLite store as SQL: what "the job's state did not change" compares (but
    the lease's token: an apply takes the lease before it compares)."""
    db = sqlite3.connect(path)
    try:
        return [line for line in db.iterdump() if not line.startswith('INSERT INTO "leases"')]
    finally:
        db.close()


def summary(plan: SyncPlan) -> Summary:
    """(action, anchor, attribute names) of each planned change."""
    return {(c.action, c.anchor, tuple(sorted(a.name for a in c.changes))) for c in plan.changes}


def written(engine: SyncEngine, job_id: str) -> Summary:
    """The same from the provisioning log of the last real cycle: one entry per object (its
    first write's action, every attribute it wrote), as a plan shows one change per object."""
    found: dict[str, tuple[str, set[str]]] = {}
    logs = engine.provisioning_logs(job_id)
    last = logs[-1].cycle_id if logs else ""
    for r in engine.provisioning_logs(job_id, last):
        if r.status == "success" and r.action in ("Create", "Update", "Delete", "Disable"):
            action, names = found.setdefault(r.anchor, (r.action.lower(), set()))
            if r.action in ("Delete", "Disable"):
                found[r.anchor] = (r.action.lower(), names)
            names.update(r.attributes)
    return {(a, anchor, tuple(sorted(n))) for anchor, (a, n) in found.items()}
