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

import random as random_module
import secrets as secrets_module
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

import attrs

from connectors.base import ConnectorError, Target
from engine import cycle as cycle_module
from engine.errors import JobRunningElsewhere, NotFoundError, TransitionError
from engine.jobs._connections import Connections
from engine.jobs._execution import Execution
from engine.jobs._mappings import CompiledMappings
from engine.jobs._on_demand import resolve_subject
from engine.jobs._plan_changes import Changes, digest_key
from engine.jobs._plan_compare import basis as plan_basis
from engine.jobs._plan_compare import differences, plan_id
from engine.jobs._plan_targets import GuardedTarget, RecordingSource, RecordingTarget, Write
from engine.jobs._rows import Shared, status_of
from engine.mapping import CompiledMapping
from engine.masking import mask_secrets, masked_error
from engine.model import QuarantineReason, StatusCode, SynchronizationTaskExecution
from engine.model.plan import DeleteGuard, PlannedEscrow, PlannedSkip, SyncPlan
from engine.settings import JobSettings
from engine.store import JobRow, LogRecord
from engine.store.base import Checkpoint, Escrow, Lease
from engine.store.snapshot import snapshot


class PlanOutdated(TransitionError):
    """An apply refused: the source, the target or the job's state moved past the plan; the
    message names what moved. Nothing was written."""

    code = "PlanOutdated"


@attrs.frozen
class _Planned:
    """A plan and the raw writes behind it (kept in memory only: they hold unmasked values)."""

    plan: SyncPlan
    writes: tuple[Write, ...]


class _LeaseKeeper:
    """The plan's cycle's ``should_stop``: renews the job's lease (an empty, fenced commit to
    the real store) once half of it is gone. The cycle commits to the store's copy, which
    renews nothing: without this a plan longer than the lease let a cycle of the job start
    beside it, on the same connectors. LeaseLost if another runner took it meanwhile."""

    def __init__(self, shared: Shared, lease: Lease | None, duration: timedelta) -> None:
        self._shared, self._lease, self._duration = shared, lease, duration

    def __call__(self) -> bool:
        lease = self._lease
        if lease is None:
            return False
        now = self._shared.clock.now()
        if lease.expires - now < self._duration / 2:
            self._lease = attrs.evolve(lease, expires=now + self._duration)
            self._shared.store.commit(lease.job_id, Checkpoint(lease=self._lease))
        return False


@attrs.frozen
class _Recorded:
    """What a plan's cycle did on the copy of the store."""

    source: RecordingSource
    target: RecordingTarget
    logs: list[LogRecord]
    escrows: list[Escrow]
    outcome: cycle_module.CycleOutcome | None


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
            return self._plan(job_id, only, keeper=self._keeper(lease)).plan
        finally:
            self._shared.store.release_lease(lease)

    def _keeper(self, lease: Lease | None) -> _LeaseKeeper:
        return _LeaseKeeper(self._shared, lease, self._execution.lease_duration)

    def apply(self, job_id: str, plan: SyncPlan) -> SynchronizationTaskExecution:
        """See SyncEngine.apply: planned again under the job's lease, so no cycle runs
        between the comparison and the writes."""
        if plan.job_id != job_id:
            raise PlanOutdated(f"the plan is job {plan.job_id!r}'s, not {job_id!r}'s")
        if plan.id != plan_id(plan):  # the comparison below would miss some edits (a
            raise PlanOutdated(  # change repeated, a skip): the id is the digest of them all
                f"the plan {plan.id!r} was edited: its id is not the digest of what it says "
                "(plan again)"
            )
        guards: list[GuardedTarget] = []
        # one seed for the fresh plan's cycle and the real one: what expressions draw
        # (RandomString's initial password) is then the same in both, so the guard takes the
        # creates; drawn anew for each apply, never fixed (real passwords must not be guessable)
        seed = secrets_module.randbits(128)

        def guarded(target: Target) -> Target:
            fresh = self._plan(job_id, seed=seed)
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

        execution = self._execution.run(
            job_id, None, None, wrap_target=guarded, random=random_module.Random(seed)
        )
        if guards and guards[0].refused:
            self._shared.log.warning(
                "plan_apply_refused_writes", job_id=job_id, writes=guards[0].refused[:20]
            )
        return execution

    # ------------------------------------------------------------------------ the plan
    def _plan(
        self,
        job_id: str,
        only: tuple[str, str] | None = None,
        seed: int = 0,
        keeper: _LeaseKeeper | None = None,
    ) -> _Planned:
        shared = self._shared
        row = shared.row(job_id)
        if status_of(row).code is StatusCode.NOT_CONFIGURED:
            raise TransitionError("the job is not configured: its required secrets are missing")
        settings = JobSettings.parse(
            row.job.synchronization_job_settings, shared.store.get_secrets(row.application_id)
        )
        basis = plan_basis(shared.store, row, settings, self._mappings)
        mappings = self._mappings.of(row, settings)
        if only is not None:
            mappings = [m for m in mappings if m.source_type.lower() == only[0].lower()]
            if not mappings:
                raise NotFoundError(f"no enabled object mapping reads {only[0]!r}")
        subject = only[1] if only else None
        ran = self._record(row, settings, mappings, subject, seed, keeper or self._keeper(None))
        secrets = shared.secret_values(row)
        key = digest_key(shared.store.get_secrets(row.application_id))
        sources = {m.key: m.source_type for m in mappings}
        built = Changes(ran.target, ran.source, ran.logs, sources, key, secrets).build()
        held = [r for r in ran.logs if r.action == "StagedDelete"]
        quarantine = ran.outcome.quarantine if ran.outcome is not None else None
        too_many = quarantine is not None and quarantine[0] is QuarantineReason.TOO_MANY_DELETES
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
                    error=mask_secrets(e.error, secrets),
                )
                for e in ran.escrows
            ),
            delete_guard=DeleteGuard(
                held=bool(held) and too_many,
                deletes=len(held),
                reason=quarantine[1] if quarantine is not None and too_many else None,
            ),
            skipped=_skips(ran.logs, sources, secrets) if only and not built else (),
        )
        return _Planned(attrs.evolve(plan, id=plan_id(plan)), tuple(ran.target.writes))

    def _record(
        self,
        row: JobRow,
        settings: JobSettings,
        mappings: Sequence[CompiledMapping],
        subject: str | None,
        seed: int,
        keeper: _LeaseKeeper,
    ) -> _Recorded:
        """The job's cycle (or provisioning ``subject``) on a copy of the store, its writes
        recorded: what it logged, escrowed and concluded, the copy then dropped."""
        shared = self._shared
        job_id = row.job.id or ""
        real_source, real_target = self._connections.for_row(row)
        source, target = RecordingSource(real_source), RecordingTarget(real_target)
        anchor = None
        if subject is not None:
            anchor = resolve_subject(real_source, shared.store, job_id, mappings, subject)
        copy = snapshot(shared.store)
        try:
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
                should_stop=keeper,
                force_deletes=row.force_deletes,
                random=random_module.Random(seed),
            )
            ctx.export_concurrency = 1  # one order, so one set of placeholders
            outcome = None
            try:
                if anchor is not None:
                    cycle_module.provision_one(ctx, anchor)
                else:
                    outcome = cycle_module.run(ctx)
            except ConnectorError as exc:
                raise masked_error(exc, shared.secret_values(row)) from None
            escrows = [
                e
                for e in copy.get_escrows(job_id)
                if before.get((e.mapping, e.anchor)) != e and e.attempts > 0
            ]
            logs = copy.provisioning_logs(job_id, ctx.cycle_id, limit=1_000_000)
            return _Recorded(source, target, logs, escrows, outcome)
        finally:
            copy.close()


def _skips(
    logs: Sequence[LogRecord], sources: Mapping[str, str], secrets: Sequence[str]
) -> tuple[PlannedSkip, ...]:
    """Why a dry-run provisionOnDemand writes nothing, as the cycle logged it."""
    return tuple(
        PlannedSkip(
            source_object_type=sources.get(r.mapping, r.mapping),
            anchor=r.anchor,
            reason="unchanged: the target holds these values already (RedundantExport)"
            if r.error == "RedundantExport"
            else mask_secrets(r.error or "skipped", secrets),
        )
        for r in logs
        if r.status == "skipped"
    )
