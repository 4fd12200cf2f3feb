"""Preview, then apply exactly that: a job's plan, and its apply.

A plan is the job's real next cycle run against a throwaway copy of the state store
(engine.store.snapshot) and a target that records writes instead of making them
(_plan_targets): the cycle code is the one that will run, so the plan cannot drift from it,
and the job's state, watermarks and target are untouched. The plan may read the target (an
update's old values). What the copy's cycle logged says which source object each recorded
write is for; the guards' verdict is the cycle's own outcome.

An apply plans again now and compares: anything that moved (the job's state, a change, an
escrow, the guards' verdict) refuses the apply with PlanOutdated naming it; else the real
cycle runs under the job's lease, writing through a guard that takes only the writes the
fresh plan recorded, so what slips in between fails closed for that one object.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random as random_module
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from connectors.base import ConnectorError, Target, ValueDelta
from engine import cycle as cycle_module
from engine.errors import JobRunningElsewhere, NotFoundError, TransitionError
from engine.jobs._connections import Connections
from engine.jobs._execution import Execution
from engine.jobs._mappings import CompiledMappings
from engine.jobs._on_demand import resolve_subject
from engine.jobs._plan_show import lookup, masked_changes, name_of
from engine.jobs._plan_targets import (
    PLACEHOLDER,
    GuardedTarget,
    RecordingSource,
    RecordingTarget,
    Write,
    apply_delta,
    digest,
)
from engine.jobs._rows import Shared, status_of
from engine.masking import masked_error
from engine.model import QuarantineReason, StatusCode, SynchronizationTaskExecution, to_graph
from engine.model.plan import (
    DeleteGuard,
    PlannedChange,
    PlannedEscrow,
    PlannedSkip,
    PlanWatermark,
    SyncPlan,
)
from engine.settings import JobSettings
from engine.store import JobRow, LogRecord, StateStore
from engine.store.snapshot import snapshot

_WRITES = {"Create", "Update", "Delete", "Disable"}


class PlanOutdated(TransitionError):
    """An apply refused: the source, the target or the job's state moved past the plan; the
    message names what moved. Nothing was written."""

    code = "PlanOutdated"


@attrs.frozen
class _Planned:
    """A plan and the raw writes behind it (kept in memory only: they hold unmasked values)."""

    plan: SyncPlan
    writes: tuple[Write, ...]


class Planner:
    """SyncEngine.plan, SyncEngine.apply and provisionOnDemand's dry run."""

    def __init__(
        self,
        shared: Shared,
        connections: Connections,
        mappings: CompiledMappings,
        execution: Execution,
    ) -> None:
        self._shared = shared
        self._connections = connections
        self._mappings = mappings
        self._execution = execution

    def plan(self, job_id: str) -> SyncPlan:
        return self._leased(job_id, None)

    def one(self, job_id: str, object_type: str, anchor: str) -> SyncPlan:
        """What provisioning ``anchor`` on demand would write (a dry run)."""
        return self._leased(job_id, (object_type, anchor))

    def _leased(self, job_id: str, only: tuple[str, str] | None) -> SyncPlan:
        """A plan holds the job's lease, as a cycle does: the job's connectors serve one
        cycle at a time, and no cycle commits while its state is copied (a running cycle
        makes the plan JobRunningElsewhere)."""
        self._shared.row(job_id)
        now = self._shared.clock.now()
        lease = self._shared.store.acquire_lease(  # a holder of its own: the runner of this
            job_id,  # very engine (same process) must not enter a cycle meanwhile either
            f"{self._execution.runner_id}:plan",
            now,
            now + self._execution.lease_duration,
        )
        if lease is None:
            raise JobRunningElsewhere(f"job {job_id} is running (a cycle or a plan): plan again")
        try:
            return self._plan(job_id, only).plan
        finally:
            self._shared.store.release_lease(lease)

    def apply(self, job_id: str, plan: SyncPlan) -> SynchronizationTaskExecution:
        """See SyncEngine.apply: planned again under the job's lease, so no cycle runs
        between the comparison and the writes."""
        if plan.job_id != job_id:
            raise PlanOutdated(f"the plan is job {plan.job_id!r}'s, not {job_id!r}'s")
        guards: list[GuardedTarget] = []

        def guarded(target: Target) -> Target:
            fresh = self._plan(job_id)
            moved = differences(plan, fresh.plan)
            if moved:
                more = f"; and {len(moved) - 20} more" if len(moved) > 20 else ""
                raise PlanOutdated(
                    "the source, the target or the job moved past the plan (plan again): "
                    + "; ".join(moved[:20])
                    + more
                )
            guards.append(GuardedTarget(target, fresh.writes))
            return guards[-1]

        execution = self._execution.run(job_id, None, None, wrap_target=guarded)
        if guards and guards[0].refused:
            self._shared.log.warning(
                "plan_apply_refused_writes", job_id=job_id, writes=guards[0].refused[:20]
            )
        return execution

    # ------------------------------------------------------------------------ the plan
    def _plan(self, job_id: str, only: tuple[str, str] | None = None) -> _Planned:
        shared = self._shared
        row = shared.row(job_id)
        if status_of(row).code is StatusCode.NOT_CONFIGURED:
            raise TransitionError("the job is not configured: its required secrets are missing")
        settings = JobSettings.parse(
            row.job.synchronization_job_settings, shared.store.get_secrets(row.application_id)
        )
        real_source, real_target = self._connections.for_row(row)
        basis = _basis(shared.store, row, settings, self._mappings)
        mappings = self._mappings.of(row, settings)
        if only is not None:
            mappings = [m for m in mappings if m.source_type.lower() == only[0].lower()]
            if not mappings:
                raise NotFoundError(f"no enabled object mapping reads {only[0]!r}")
            anchor = resolve_subject(real_source, shared.store, job_id, mappings, only[1])
        copy = snapshot(shared.store)
        try:
            source, target = RecordingSource(real_source), RecordingTarget(real_target)
            before = {(e.mapping, e.anchor): e for e in copy.get_escrows(job_id)}
            ctx = cycle_module.CycleContext(
                job_id=job_id,
                cycle_id=f"plan-{uuid.uuid4().hex}",
                store=copy,
                source=source,
                target=target,
                clock=shared.clock,
                settings=settings,
                mappings=mappings,
                should_stop=lambda: False,
                force_deletes=row.force_deletes,
                random=random_module.Random(0),
            )
            ctx.export_concurrency = 1  # one order, so one set of placeholders
            try:
                if only is not None:
                    cycle_module.provision_one(ctx, anchor)
                    outcome = None
                else:
                    outcome = cycle_module.run(ctx)
            except ConnectorError as exc:
                raise masked_error(exc, shared.secret_values(row)) from None
            logs = copy.provisioning_logs(job_id, ctx.cycle_id, limit=1_000_000)
            escrows = [
                e
                for e in copy.get_escrows(job_id)
                if before.get((e.mapping, e.anchor)) != e and e.attempts > 0
            ]
        finally:
            copy.close()
        key = _digest_key(shared.store.get_secrets(row.application_id))
        sources = {m.key: m.source_type for m in mappings}
        built = _Changes(target, source, logs, sources, key, shared.secret_values(row)).build()
        held = [r for r in logs if r.action == "StagedDelete"]
        quarantine = outcome.quarantine if outcome is not None else None
        guard = DeleteGuard(
            held=bool(held) and quarantine is not None,
            deletes=len(held),
            reason=quarantine[1]
            if quarantine and quarantine[0] is QuarantineReason.TOO_MANY_DELETES
            else None,
        )
        plan = SyncPlan(
            id="",
            job_id=job_id,
            created_date_time=shared.clock.now(),
            watermarks=basis[0],
            state_digest=basis[1],
            changes=tuple(built),
            escrows=tuple(
                PlannedEscrow(
                    source_object_type=sources.get(e.mapping, e.mapping),
                    anchor=e.anchor,
                    error=e.error,
                )
                for e in escrows
            ),
            delete_guard=guard,
            skipped=_skips(logs, sources) if only is not None and not built else (),
        )
        return _Planned(attrs.evolve(plan, id=plan_id(plan)), tuple(target.writes))


def _skips(logs: Sequence[LogRecord], sources: Mapping[str, str]) -> tuple[PlannedSkip, ...]:
    """Why a dry-run provisionOnDemand writes nothing, as the cycle logged it."""
    return tuple(
        PlannedSkip(
            source_object_type=sources.get(r.mapping, r.mapping),
            anchor=r.anchor,
            reason="unchanged: the target holds these values already (RedundantExport)"
            if r.error == "RedundantExport"
            else r.error or "skipped",
        )
        for r in logs
        if r.status == "skipped"
    )


def plan_id(plan: SyncPlan) -> str:
    """A digest of what the plan says (its time aside): two equal plans have one id."""
    body = to_graph(attrs.evolve(plan, id="", created_date_time=None))
    text = repr(sorted(body.items())).encode()
    return hashlib.sha256(text).hexdigest()[:24]


def _basis(
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


#: the digest key of applications without secrets (jobs given their connectors): this
#: process's own, so their plans apply within the process that made them
_PROCESS_KEY = os.urandom(32)


def _digest_key(secrets: Mapping[str, str]) -> bytes:
    """The key of the plan's value digests: the application's secrets, so a digest cannot be
    used to guess a short secret value (a password) by whoever reads the plan, and a plan
    made before a restart of the daemon still applies after it."""
    if not secrets:
        return _PROCESS_KEY
    return hashlib.sha256(repr(sorted(secrets.items())).encode()).digest()


def _keyed(key: bytes, values: Any) -> str | None:
    if values is None:
        return None
    return hmac.new(key, digest(dict(values)).encode(), hashlib.sha256).hexdigest()[:16]


class _Changes:
    """The recorded writes as one planned change per object, in the order the cycle wrote."""

    def __init__(
        self,
        target: RecordingTarget,
        source: RecordingSource,
        logs: Sequence[LogRecord],
        sources: Mapping[str, str],
        key: bytes,
        secrets: Sequence[str],
    ) -> None:
        self._target = target
        self._source = source
        self._key = key
        self._secrets = secrets
        self._sources = sources
        self._by_ref: dict[str, LogRecord] = {}
        for record in logs:
            if record.action in _WRITES and record.target_ref and record.status != "failure":
                self._by_ref.setdefault(record.target_ref, record)

    def build(self) -> list[PlannedChange]:
        objects: dict[tuple[str, str], dict[str, Any]] = {}
        for write in self._target.writes:
            key = (write.object_type, write.ref)
            entry = objects.get(key)
            if write.kind == "create":
                objects[key] = {"action": "create", "new": dict(write.values), "old": {}}
            elif write.kind == "delete":
                action = "disable" if write.soft else "delete"
                old = self._target.before.get(key)
                objects[key] = {"action": action, "new": {}, "old": dict(old or {})}
            else:
                if entry is None:
                    old = self._target.before.get(key)
                    entry = objects[key] = {"action": "update", "new": {}, "old": dict(old or {})}
                    entry["known"] = old is not None
                new = entry["new"]
                for name, change in write.values.items():
                    current = new.get(name, lookup(entry["old"], name))
                    new[name] = apply_delta(current, change)
                    if isinstance(change, ValueDelta):
                        entry.setdefault("deltas", {}).setdefault(name, []).append(change)
        return [self._change(t, ref, e) for (t, ref), e in objects.items()]

    def _change(self, object_type: str, ref: str, entry: dict[str, Any]) -> PlannedChange:
        record = self._by_ref.get(ref)
        anchor = record.anchor if record else None
        source_type = self._sources.get(record.mapping) if record else None
        seen = self._source.seen.get((source_type or "", anchor or "")) if anchor else None
        old = entry["old"]
        changes = masked_changes(
            entry["action"], old, entry["new"], entry.get("deltas", {}), self._secrets
        )
        before = (
            None if ref.startswith(PLACEHOLDER) else self._target.before.get((object_type, ref))
        )
        return PlannedChange(
            action=entry["action"],
            object_type=object_type,
            source_object_type=source_type,
            anchor=anchor,
            display_name=name_of(seen) or name_of(old) or anchor,
            target_id=ref,
            changes=changes,
            source_digest=_keyed(self._key, seen),
            target_digest=_keyed(self._key, before),
        )


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
