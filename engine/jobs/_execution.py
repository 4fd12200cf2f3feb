"""Running a job's cycle: its lease, the cycle itself (engine.cycle), and its end, stored
as one atomic change of the job's status; provision on demand."""

from __future__ import annotations

import os
import random as random_module
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import attrs

from connectors.base import ConnectorError, CredentialsError, Source, Target, UnreachableError
from engine import cycle as cycle_module
from engine.cycle import CycleProgress, after_cycle, execution_of
from engine.directory_values import printable
from engine.errors import (
    ConfigurationError,
    CycleFailed,
    JobRunningElsewhere,
    NotFoundError,
    TransitionError,
)
from engine.jobs._connections import Connections
from engine.jobs._mappings import CompiledMappings
from engine.jobs._on_demand import resolve_subject
from engine.jobs._rows import Shared, status_of, with_status
from engine.lifecycle import is_runnable
from engine.mapping import CompiledMapping
from engine.masking import mask_secrets, masked_error
from engine.model import (
    StatusCode,
    StringKeyLongValuePair,
    SynchronizationProgress,
    SynchronizationStatus,
    SynchronizationTaskExecution,
)
from engine.settings import DEFAULT_INTERVAL, JobSettings
from engine.store import JobRow, LogRecord
from engine.store.base import Lease, this_host


@attrs.frozen
class _NoCycle:
    """What a cycle that could not start leaves for its status (no source was read)."""

    cycle_id: str
    counters: cycle_module.Counters
    started: datetime
    settings: JobSettings


@attrs.frozen
class OneObjectJob:
    """A job as one-object work outside a cycle sees it."""

    row: JobRow
    source: Source
    target: Target
    settings: JobSettings
    mappings: list[CompiledMapping]


class Execution:
    """One cycle per job at a time (its lease), reported while it runs and recorded when it
    ends: the job's settings are parsed once per cycle and handed down from here."""

    def __init__(
        self,
        shared: Shared,
        connections: Connections,
        mappings: CompiledMappings,
        lease_duration: timedelta,
    ) -> None:
        self._shared = shared
        self._connections = connections
        self._mappings = mappings
        #: who holds a job's lease while this engine runs its cycle: unique per engine object,
        #: with the host and process so a dead holder's lease can be taken over at once
        self.runner_id = f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.lease_duration = lease_duration
        #: cycles this engine ran per job (since the process started, as Prometheus counters
        #: are): /metrics reads it
        self.cycles_run: dict[str, int] = {}
        #: where the cycles running in this process stand (job id -> last checkpoint's report)
        self.live: dict[str, CycleProgress] = {}
        self.live_pages: dict[str, SynchronizationProgress] = {}  # as Graph shows it
        #: job id -> run_cycle calls under way here: such a job no longer waits for a worker
        self._running: dict[str, int] = {}
        self._running_lock = threading.Lock()

    def running_jobs(self) -> frozenset[str]:
        """The jobs with a run_cycle under way in this engine now."""
        with self._running_lock:
            return frozenset(self._running)

    def run(
        self,
        job_id: str,
        stop: Callable[[], bool] | None,
        progress: Callable[[CycleProgress], None] | None,
        *,
        wrap_target: Callable[[Target], Target] | None = None,
        random: random_module.Random | None = None,
    ) -> SynchronizationTaskExecution:
        """See SyncEngine.run_cycle. ``wrap_target`` (an apply's guard) is called once the
        lease is held and gives the target the cycle writes through; what it raises ends the
        run before anything is read or written, the lease released. ``random``: what the
        cycle's expressions draw from (an apply's, seeded as its plan was), else the
        engine's."""
        with self._running_lock:
            self._running[job_id] = self._running.get(job_id, 0) + 1
        try:
            return self._run(job_id, stop, progress, wrap_target, random)
        finally:
            with self._running_lock:
                left = self._running.pop(job_id) - 1
                if left:
                    self._running[job_id] = left

    def _run(
        self,
        job_id: str,
        stop: Callable[[], bool] | None,
        progress: Callable[[CycleProgress], None] | None,
        wrap_target: Callable[[Target], Target] | None,
        random: random_module.Random | None,
    ) -> SynchronizationTaskExecution:
        shared = self._shared
        row = shared.row(job_id)
        status = status_of(row)
        if not is_runnable(status.code):
            raise TransitionError(
                f"job {job_id} is {status.code.value}: start it before running a cycle"
            )
        secrets = shared.store.get_secrets(row.application_id)
        settings = JobSettings.parse(row.job.synchronization_job_settings, secrets)
        try:
            source, target = self._connections.for_row(row)
        except ConfigurationError as exc:
            if self._connections.is_attached(job_id) or not self._connections.buildable(row):
                raise  # nothing to build from: the embedder's mistake, not the job's
            return self._unbuildable(job_id, settings, exc)
        lease = self.acquire(job_id)
        try:
            if wrap_target is not None:
                target = wrap_target(target)
            return self._run_leased(
                row, source, target, settings, lease, stop, progress, random or shared.random
            )
        finally:
            self.live.pop(job_id, None)
            self.live_pages.pop(job_id, None)
            shared.store.release_lease(lease)

    def _unbuildable(
        self, job_id: str, settings: JobSettings, error: ConfigurationError
    ) -> SynchronizationTaskExecution:
        """A template-built job whose connectors cannot be built from its secrets and schema
        (a bad setting, say): the cycle fails before it starts, and its status says why, as
        every failed cycle's does (and the schedule, not a loop, decides when it tries again)."""
        lease = self.acquire(job_id)
        try:
            began = self._shared.clock.now()
            failure = CycleFailed(str(error))
            self._shared.log.warning("cycle_failed", job_id=job_id, error=str(failure))
            facts = _NoCycle(uuid.uuid4().hex, cycle_module.Counters(), began, settings)
            return self._finish(job_id, facts, None, failure)
        finally:
            self._shared.store.release_lease(lease)

    def acquire(self, job_id: str) -> Lease:
        """This engine's lease on the job, or JobRunningElsewhere."""
        now = self._shared.clock.now()
        lease = self._shared.store.acquire_lease(
            job_id, self.runner_id, now, now + self.lease_duration
        )
        if lease is None:
            raise JobRunningElsewhere(f"job {job_id} is running elsewhere (another runner)")
        return lease

    def _run_leased(
        self,
        row: JobRow,
        source: Source,
        target: Target,
        settings: JobSettings,
        lease: Lease,
        stop: Callable[[], bool] | None,
        progress: Callable[[CycleProgress], None] | None,
        random: random_module.Random,
    ) -> SynchronizationTaskExecution:
        shared = self._shared
        job_id = row.job.id
        reporting = [progress]

        def on_progress(report: CycleProgress) -> None:
            self.live[job_id] = report
            ahead = -(-report.waiting // max(settings.page_size, 1))
            self.live_pages[job_id] = SynchronizationProgress(
                completed_units=report.pages,
                total_units=report.pages + ahead,
                units="pages",
                progress_observation_date_time=shared.clock.now(),
            )
            if reporting[0] is not None:
                try:
                    reporting[0](report)
                except Exception as exc:  # a report, never a rule: the cycle goes on without it
                    reporting[0] = None
                    shared.log.warning("progress_callback_failed", job_id=job_id, error=repr(exc))

        def should_stop() -> bool:
            if stop is not None and stop():
                return True
            return not is_runnable(shared.store.job_code(job_id) or StatusCode.PAUSED)

        ctx = cycle_module.CycleContext(
            job_id=job_id,
            cycle_id=uuid.uuid4().hex,
            store=shared.store,
            source=source,
            target=target,
            clock=shared.clock,
            settings=settings,
            mappings=self._mappings.of(row, settings),
            should_stop=should_stop,
            halted=stop or (lambda: False),
            force_deletes=row.force_deletes,
            random=random,
            lease=lease,
            lease_duration=self.lease_duration,
            on_progress=on_progress,
            log_unchanged=False,  # an idle re-read writes no record
        )
        ctx.log.info("cycle_started")
        failure: ConnectorError | None = None
        outcome = None
        try:
            outcome = cycle_module.run(ctx)
        except (CredentialsError, UnreachableError, ConnectorError) as exc:
            # what a directory answers may quote a secret: masked for the status and the log
            failure = masked_error(exc, shared.secret_values(row))
            ctx.log.warning("cycle_failed", error_type=type(exc).__name__, error=str(failure))
        except JobRunningElsewhere:
            raise  # another runner owns the job now: its status is not ours to write
        except Exception as exc:  # a bug or a poison we did not foresee: this job only
            secrets = shared.secret_values(row)
            text = mask_secrets(printable(str(exc))[:500], secrets)
            failure = CycleFailed(f"{type(exc).__name__}: {text}")
            shown = masked_error(exc, secrets).with_traceback(exc.__traceback__)
            ctx.log.error("cycle_failed", error_type=type(exc).__name__, exc_info=shown)
        interrupted = outcome is not None and outcome.paused and stop is not None and stop()
        execution = self._finish(job_id, ctx, outcome, failure, due_now=interrupted)
        self.cycles_run[job_id] = self.cycles_run.get(job_id, 0) + 1
        ctx.log.info(
            "cycle_finished",
            state=execution.state.value if execution.state else None,
            imported=execution.count_imported,
            exported=execution.count_exported,
            escrowed=execution.count_escrowed,
        )
        return execution

    def _finish(
        self,
        job_id: str,
        ctx: cycle_module.CycleContext | _NoCycle,
        outcome: cycle_module.CycleOutcome | None,
        failure: ConnectorError | None,
        *,
        due_now: bool = False,
    ) -> SynchronizationTaskExecution:
        """The cycle's execution and what it does to the status, stored as one atomic update
        of the job's row as it is now: a pause, a start or a schema saved while the cycle ran
        (or while this runs) is kept, never overwritten with what the cycle read."""
        shared = self._shared
        now = shared.clock.now()
        execution = execution_of(ctx.cycle_id, ctx.counters, ctx.started, now, failure)
        entry_counts = self.entry_counts(shared.row(job_id), ctx.settings)
        live = self.live_pages.get(job_id)
        ended: list[tuple[SynchronizationStatus, SynchronizationStatus]] = []

        def finished(row: JobRow) -> JobRow:
            before = status_of(row)
            after = after_cycle(
                before,
                execution,
                counters=ctx.counters,
                outcome=outcome,
                failure=failure,
                settings=ctx.settings,
                interval=row.job.schedule.interval if row.job.schedule else DEFAULT_INTERVAL,
                now=now,
                force_deletes=row.force_deletes,
                entry_counts=entry_counts,
            )
            status = after.status
            if live is not None and (outcome is None or outcome.paused):
                status = attrs.evolve(status, progress=(live,))  # not complete: as far as it got
            ended.append((before, status))
            next_run = now if due_now else after.next_run  # stopped by a shutdown: at once
            return with_status(row, status, next_run=next_run, force_deletes=after.force_deletes)

        shared.update(job_id, finished)
        before, status = ended[-1]
        if status.quarantine is not None:
            shared.log.warning(
                "job_quarantined",
                job_id=job_id,
                reason=status.quarantine.reason.value if status.quarantine.reason else None,
                series_count=status.quarantine.series_count,
            )
        elif before.code is StatusCode.QUARANTINE and status.code is StatusCode.ACTIVE:
            shared.log.info("job_recovered", job_id=job_id)
        # bounded: a backlog (a lowered cap, an initial cycle's records) goes over cycles
        shared.store.prune_logs(
            job_id, now - ctx.settings.log_retention, ctx.settings.log_max_records
        )
        return execution

    def entry_counts(
        self, row: JobRow, settings: JobSettings
    ) -> tuple[StringKeyLongValuePair, ...]:
        """Linked objects per target type, as Graph's status counts them."""
        counts: dict[str, int] = {}
        by_key = {m.key: m.target_type for m in self._mappings.of(row, settings)}
        for key, count in self._shared.store.count_links(row.job.id).items():
            name = by_key.get(key, key)
            counts[name] = counts.get(name, 0) + count
        return tuple(StringKeyLongValuePair(key=k, value=v) for k, v in sorted(counts.items()))

    def provision_on_demand(self, job_id: str, object_type: str, anchor: str) -> list[LogRecord]:
        """See SyncEngine.provision_on_demand."""
        job = self.one_object(job_id)
        mappings = [m for m in job.mappings if m.source_type.lower() == object_type.lower()]
        if not mappings:
            raise NotFoundError(f"no enabled object mapping reads {object_type!r}")
        anchor = resolve_subject(job.source, self._shared.store, job_id, mappings, anchor)
        # a held delete goes only when forced
        with self.leased_context(job, "ondemand", mappings, job.row.force_deletes) as ctx:
            return cycle_module.provision_one(ctx, anchor)

    def one_object(self, job_id: str) -> OneObjectJob:
        """What working on one object of the job outside a cycle needs (provision on demand,
        restore): TransitionError while the job lacks its secrets."""
        shared = self._shared
        row = shared.row(job_id)  # NotFoundError for an unknown job
        if status_of(row).code is StatusCode.NOT_CONFIGURED:
            raise TransitionError("the job is not configured: its required secrets are missing")
        source, target = self._connections.for_row(row)
        settings = JobSettings.parse(
            row.job.synchronization_job_settings, shared.store.get_secrets(row.application_id)
        )
        return OneObjectJob(row, source, target, settings, self._mappings.of(row, settings))

    @contextmanager
    def leased_context(
        self,
        job: OneObjectJob,
        purpose: str,
        mappings: Sequence[CompiledMapping],
        force_deletes: bool = False,
    ) -> Iterator[cycle_module.CycleContext]:
        """A cycle context for ``job``'s one-object work, under the job's lease (never beside
        a cycle of it), released however the work ends."""
        shared = self._shared
        job_id = job.row.job.id
        ctx = cycle_module.CycleContext(
            job_id=job_id,
            cycle_id=f"{purpose}-{uuid.uuid4().hex}",
            store=shared.store,
            source=job.source,
            target=job.target,
            clock=shared.clock,
            settings=job.settings,
            mappings=list(mappings),
            should_stop=lambda: False,
            force_deletes=force_deletes,
            random=shared.random,
            lease=self.acquire(job_id),
            lease_duration=self.lease_duration,
        )
        try:
            yield ctx
        finally:
            assert ctx.lease is not None
            shared.store.release_lease(ctx.lease)
