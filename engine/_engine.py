"""SyncEngine: jobs, their commands and their cycles, over one state store.

It is the only object that holds mutable runtime state (attached connectors, compiled
mappings); everything it knows durably lives in the store, so a new engine on the same store
continues where a crashed one stopped.
"""

from __future__ import annotations

import os
import random as random_module
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import structlog

from connectors.base import (
    ConnectorError,
    CredentialsError,
    Source,
    Target,
    UnreachableError,
)
from connectors.discovery import Discoverable
from engine import cycle as cycle_module
from engine import discovery
from engine._context import CycleProgress
from engine._contract import CycleFailed, printable
from engine._status import after_cycle, execution_of
from engine.clock import Clock, SystemClock
from engine.errors import (
    ConfigurationError,
    DiscoveryNotSupported,
    JobRunningElsewhere,
    ModelError,
    NotFoundError,
    TransitionError,
)
from engine.lifecycle import SCHEDULE_STATE, Command, is_runnable, transition
from engine.limits import MAX_DURATION, shown
from engine.logs import configure_logging
from engine.mapping import CompiledMapping, compile_mapping, link_references
from engine.masking import mask_secrets, masked_error
from engine.model import (
    Application,
    DirectoryDefinition,
    KeyValuePair,
    RestartScope,
    StatusCode,
    StringKeyLongValuePair,
    SynchronizationJob,
    SynchronizationJobRestartCriteria,
    SynchronizationProgress,
    SynchronizationSchedule,
    SynchronizationSchema,
    SynchronizationStatus,
    SynchronizationTaskExecution,
    from_graph,
    parse_duration,
)
from engine.settings import DEFAULT_INTERVAL, KNOWN_SETTINGS, JobSettings
from engine.store import (
    Checkpoint,
    JobRow,
    LogRecord,
    MemoryStateStore,
    SqliteStateStore,
    StateStore,
)
from engine.store.base import Escrow, Lease, this_host
from engine.templates import Template, builtin_templates
from engine.validation import validate_schema


@attrs.frozen
class _NoCycle:
    """What a cycle that could not start leaves for its status (no source was read)."""

    cycle_id: str
    counters: cycle_module.Counters
    started: datetime
    settings: JobSettings


DEFAULT_APPLICATION = "00000000-0000-0000-0000-000000000000"
_RESTART_DEFAULT = frozenset(
    {RestartScope.WATERMARK, RestartScope.ESCROWS, RestartScope.QUARANTINE_STATE}
)
_RESTART_FULL = _RESTART_DEFAULT | {RestartScope.CONNECTOR_DATA_STORE}


def _open_store(store: str | Path | StateStore | None) -> StateStore:
    if store is None:
        return MemoryStateStore()
    if isinstance(store, str | Path):
        return SqliteStateStore(store)
    return store


def _schedule_of(schedule: Any) -> timedelta:
    """The interval of a schedule given as ISO-8601 text, timedelta or Graph's object; longer
    than zero and at most MAX_DURATION (ten years), so next-run times never overflow."""
    if schedule is None:
        return DEFAULT_INTERVAL
    if isinstance(schedule, SynchronizationSchedule):
        interval: Any = schedule.interval
    elif isinstance(schedule, timedelta | str):
        interval = schedule
    else:
        raise ConfigurationError(f"invalid schedule {shown(schedule)}: use an ISO-8601 duration")
    try:
        parsed = parse_duration(interval, MAX_DURATION)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid schedule: {exc}") from None
    if parsed <= timedelta(0):
        raise ConfigurationError("the schedule interval must be longer than zero")
    return parsed


def _check_connectors(source: object, target: object) -> tuple[Source, Target]:
    if source is None or target is None:
        raise ConfigurationError("a job needs both a source and a target connector")
    if not isinstance(source, Source):
        raise ConfigurationError("the source does not implement the source protocol")
    if not isinstance(target, Target):
        raise ConfigurationError("the target does not implement the target protocol")
    return source, target


class SyncEngine:
    """Create, command and run synchronization jobs; see README "Embedding"."""

    def __init__(
        self,
        store: str | Path | StateStore | None = None,
        clock: Clock | None = None,
        *,
        templates: Mapping[str, Template] | None = None,
        random: random_module.Random | None = None,
        lease_duration: timedelta = timedelta(minutes=5),
    ) -> None:
        configure_logging()
        self.store = _open_store(store)
        self.clock: Clock = clock or SystemClock()
        self.templates: dict[str, Template] = dict(templates or builtin_templates())
        self.random = random or random_module.Random()
        self._connectors: dict[str, tuple[Source, Target]] = {}
        #: connectors built from a template, with the (secrets, schema) they were built from
        self._built: dict[str, tuple[Any, tuple[Source, Target]]] = {}
        self._compiled: dict[str, tuple[SynchronizationSchema, list[CompiledMapping]]] = {}
        self._log = structlog.get_logger("syncjob.engine")
        self._warned: set[str] = set()
        #: cycles this engine ran per job (since the process started, as Prometheus counters
        #: are): /metrics reads it
        self.cycles_run: dict[str, int] = {}
        #: where the cycles running in this process stand (job id -> last checkpoint's report)
        self._live: dict[str, CycleProgress] = {}
        self._live_pages: dict[str, SynchronizationProgress] = {}  # as Graph shows it
        #: called when a command makes a job due at once (a Runner wakes up)
        self.due_listeners: list[Callable[[], None]] = []
        self._secrets_lock = threading.Lock()  # a PUT that keeps stored values reads, then writes
        #: who holds a job's lease while this engine runs its cycle: unique per engine object,
        #: with the host and process so a dead holder's lease can be taken over at once
        self.runner_id = f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.lease_duration = lease_duration

    # ------------------------------------------------------------------- applications
    def create_application(
        self, display_name: str | None = None, application_id: str | None = None
    ) -> Application:
        app = Application(id=application_id or str(uuid.uuid4()), display_name=display_name)
        self.store.save_application(app)
        return app

    def get_application(self, application_id: str) -> Application:
        app = self.store.get_application(self._application(application_id, create=False))
        assert app is not None
        return app

    def list_applications(self) -> list[Application]:
        return self.store.list_applications()

    def delete_application(self, application_id: str) -> None:
        """Delete the application with its jobs and secrets (Graph's DELETE servicePrincipal)."""
        app = self._application(application_id, create=False)
        for row in self.store.list_jobs(app):
            self.delete_job(row.job.id or "")
        self.store.delete_application(app)
        self._log.info("application_deleted", application_id=app)

    def _application(self, application_id: str | None, *, create: bool = True) -> str:
        """The application's id; the default one is made on first use unless ``create=False``."""
        if application_id is None:
            if create and self.store.get_application(DEFAULT_APPLICATION) is None:
                self.create_application("default", DEFAULT_APPLICATION)
            return DEFAULT_APPLICATION
        known = isinstance(application_id, str) and self.store.get_application(application_id)
        if not known:
            raise NotFoundError(f"no application {shown(application_id)}")
        return application_id

    def set_secrets(
        self,
        application_id: str | None,
        secrets: Mapping[str, str],
        *,
        keep: Collection[str] = (),
    ) -> None:
        """Replace the application's secrets (Graph's PUT); jobs become (un)configured.

        The keys in ``keep`` keep their stored values (what a client that sends back the
        masked values it read means); the read and the write are one step, so a secret saved
        meanwhile by another request is not undone. A kept key with no stored value is a
        ConfigurationError, and nothing changes.
        """
        if not isinstance(secrets, Mapping):
            raise ConfigurationError(
                f"secrets must map names to values, not {type(secrets).__name__}"
            )
        clean = {str(k): str(v) for k, v in secrets.items()}
        JobSettings.parse((), {k: v for k, v in clean.items() if k not in keep})  # before
        app = self._application(application_id)  # anything is stored (or a default app made)
        with self._secrets_lock:
            if keep:
                stored = self.store.get_secrets(app)
                missing = sorted(k for k in keep if k not in stored)
                if missing:
                    raise ConfigurationError(
                        f"secret {missing[0]!r} has no stored value to keep; send its value"
                    )
                clean.update({k: stored[k] for k in keep})
            JobSettings.parse((), clean)  # refuse malformed switches before storing anything
            self.store.save_secrets(app, clean)
        for row in self.store.list_jobs(app):
            assert row.job.id is not None
            self._reconfigure(row, clean)

    def masked_secrets(self, application_id: str | None) -> dict[str, str]:
        """Secret keys with their values masked: the only way secrets leave the engine."""
        return dict.fromkeys(self.store.get_secrets(self._application(application_id)), "*")

    # ---------------------------------------------------------------------------- jobs
    def create_job(
        self,
        template_id: str,
        source: Source | None = None,
        target: Target | None = None,
        schema: SynchronizationSchema | Mapping[str, Any] | None = None,
        schedule: str | timedelta | SynchronizationSchedule | None = None,
        settings: Mapping[str, str] | None = None,
        *,
        application_id: str | None = None,
    ) -> SynchronizationJob:
        # everything is checked before anything is stored: a refused call leaves no trace
        template = self.templates.get(template_id) if isinstance(template_id, str) else None
        if template is None:
            known = ", ".join(sorted(self.templates))
            raise NotFoundError(f"no template {shown(template_id)} (known: {known})")
        parsed_schema = self._schema(schema) if schema is not None else template.schema
        if settings is not None and not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"settings must map names to values, not {type(settings).__name__}"
            )
        pairs = tuple(
            KeyValuePair(name=str(k), value=str(v))
            for k, v in {"QuarantineTooManyDeletesThreshold": "500", **(settings or {})}.items()
        )
        secrets = self.store.get_secrets(self._application(application_id, create=False))
        job_settings = JobSettings.parse(pairs, secrets)
        interval = _schedule_of(schedule)
        if source is not None or target is not None:
            _check_connectors(source, target)
        validate_schema(parsed_schema)
        compiled = self._compile(parsed_schema, job_settings.regex_timeout.total_seconds())
        for pair in pairs:
            if pair.name not in KNOWN_SETTINGS:
                self._log.warning("setting_not_used", setting=pair.name)
        app = self._application(application_id)
        job_id = f"{template_id}.{uuid.uuid4().hex}"
        missing = [k for k in template.required_secrets if not secrets.get(k)]
        code = StatusCode.NOT_CONFIGURED if missing else StatusCode.NOT_RUN
        job = SynchronizationJob(
            id=job_id,
            template_id=template_id,
            schedule=SynchronizationSchedule(interval=interval, state=SCHEDULE_STATE[code]),
            status=SynchronizationStatus(code=code),
            synchronization_job_settings=pairs,
            schema=parsed_schema,
        )
        self.store.save_job(JobRow(application_id=app, job=job))
        self._compiled[job_id] = (parsed_schema, compiled)
        if source is not None or target is not None:
            self.attach(job_id, source, target)
        self._log.info("job_created", job_id=job_id, template_id=template_id, code=code.value)
        return job

    def attach(self, job_id: str, source: Source | None, target: Target | None) -> None:
        """Give a job its connector objects (after a restart of the process, for instance)."""
        self._row(job_id)
        self._connectors[job_id] = _check_connectors(source, target)

    def get_job(self, job_id: str, *, application_id: str | None = None) -> SynchronizationJob:
        """The job; with ``application_id``, NotFoundError unless the job belongs to it (the
        API's paths name both, and a job must not be reachable through another application)."""
        row = self._row(job_id)
        if application_id is not None and row.application_id != application_id:
            raise NotFoundError(f"no job {job_id!r} in application {shown(application_id)}")
        return self._with_live_progress(row.job)

    def list_jobs(self, application_id: str | None = None) -> list[SynchronizationJob]:
        return [self._with_live_progress(row.job) for row in self.store.list_jobs(application_id)]

    def _with_live_progress(self, job: SynchronizationJob) -> SynchronizationJob:
        """The job, its status showing the progress of its cycle running in this process
        (pages checkpointed of the pages estimated), as Entra's portal bar does."""
        live = self._live_pages.get(job.id or "")
        if live is None or job.status is None:
            return job
        return attrs.evolve(job, status=attrs.evolve(job.status, progress=(live,)))

    def get_schema(self, job_id: str) -> SynchronizationSchema:
        return self._row(job_id).job.schema or SynchronizationSchema()

    def update_schema(self, job_id: str, schema: SynchronizationSchema | Mapping[str, Any]) -> None:
        """Replace the schema; like Entra, a changed mapping forces a new initial cycle."""
        row = self._row(job_id)
        parsed = self._schema(schema)
        validate_schema(parsed)
        template = self.templates.get(row.job.template_id or "")
        if template is not None and template.check_schema is not None:
            template.check_schema(parsed)
        compiled = self._compile(parsed, self._regex_seconds(row))
        saved: list[SynchronizationSchema] = []

        def replaced(current: JobRow) -> JobRow:  # compared with the schema stored now
            old = current.job.schema or SynchronizationSchema()
            if attrs.evolve(parsed, version=old.version) == old:
                return current  # the same schema sent back (a GET then PUT): nothing to do
            new = attrs.evolve(parsed, version=discovery.bump(old.version))  # as Graph does
            saved.append(new)
            return attrs.evolve(current, job=attrs.evolve(current.job, schema=new))

        self._update(job_id, replaced)
        if not saved:
            return
        # Reset after the save: a cycle that started before it (the old schema) loses its
        # lease to the reset, and every cycle after it reads the new schema from the start.
        self.store.reset(job_id, watermarks=True, escrows=False, links=False)
        self._compiled[job_id] = (saved[-1], compiled)

    def delete_job(self, job_id: str) -> None:
        row = self._row(job_id)
        transition(self._status(row).code, Command.DELETE)
        self.store.delete_job(job_id)
        self._connectors.pop(job_id, None)
        self._close_built(job_id)
        self._compiled.pop(job_id, None)
        self._log.info("job_deleted", job_id=job_id)

    # ------------------------------------------------------------------------ commands
    def start(self, job_id: str) -> None:
        def started(row: JobRow) -> JobRow:
            status = self._status(row)
            code = transition(status.code, Command.START)
            assert isinstance(code, StatusCode)
            status = attrs.evolve(status, code=code, quarantine=None)
            return self._with_status(row, status, next_run=self.clock.now())

        self._update(job_id, started)
        self._log.info("job_started", job_id=job_id)
        self._now_due()

    def pause(self, job_id: str) -> None:
        def paused(row: JobRow) -> JobRow:
            status = self._status(row)
            code = transition(status.code, Command.PAUSE)
            assert isinstance(code, StatusCode)
            return self._with_status(row, attrs.evolve(status, code=code, quarantine=None))

        self._update(job_id, paused)
        self._log.info("job_paused", job_id=job_id)

    def restart(
        self,
        job_id: str,
        criteria: SynchronizationJobRestartCriteria | str | Sequence[str] | None = None,
    ) -> None:
        """Reset what ``criteria`` names (Graph's resetScope), then run again."""
        row = self._row(job_id)
        status = self._status(row)
        code = transition(status.code, Command.RESTART)
        assert isinstance(code, StatusCode)
        scopes = self._scopes(criteria) or _RESTART_DEFAULT
        if RestartScope.FULL in scopes:
            scopes |= _RESTART_FULL
        self.store.reset(
            job_id,
            watermarks=RestartScope.WATERMARK in scopes,
            escrows=RestartScope.ESCROWS in scopes,
            links=RestartScope.CONNECTOR_DATA_STORE in scopes,
        )

        def restarted(row: JobRow) -> JobRow:
            status = self._status(row)
            code = transition(status.code, Command.RESTART)
            assert isinstance(code, StatusCode)
            if RestartScope.QUARANTINE_STATE in scopes:
                status = attrs.evolve(status, count_successive_complete_failures=0)
            return self._with_status(
                row,
                attrs.evolve(status, code=code, quarantine=None),
                next_run=self.clock.now(),
                force_deletes=row.force_deletes or RestartScope.FORCE_DELETES in scopes,
            )

        self._update(job_id, restarted)
        self._log.info("job_restarted", job_id=job_id, scope=sorted(s.value for s in scopes))
        self._now_due()

    def _now_due(self) -> None:
        """Tell the schedule's listeners (a Runner) that a job became due now."""
        for listener in list(self.due_listeners):
            listener()

    @staticmethod
    def _scopes(
        criteria: SynchronizationJobRestartCriteria | str | Sequence[str] | None,
    ) -> frozenset[RestartScope]:
        if criteria is None:
            return frozenset()
        if isinstance(criteria, SynchronizationJobRestartCriteria):
            return criteria.reset_scope
        if not isinstance(criteria, str | list | tuple):
            raise ConfigurationError(
                "restart criteria: a resetScope string, a list of them, or restart criteria"
            )
        raw = {"resetScope": criteria if isinstance(criteria, str) else list(criteria)}
        return from_graph(raw, SynchronizationJobRestartCriteria).reset_scope

    # -------------------------------------------------------------------------- cycles
    def due_jobs(self) -> list[str]:
        """The ids of the started jobs whose next run has come and that have connectors."""
        return self._schedule()[0]

    def seconds_until_due(self, running: Collection[str] = ()) -> float | None:
        """How long until the next started job with connectors (not one of ``running``) is
        due: 0 if one is due now, None if none is scheduled. A runner sleeps that long."""
        return self._schedule(running)[1]

    def _schedule(self, running: Collection[str] = ()) -> tuple[list[str], float | None]:
        now = self.clock.now()
        due: list[str] = []
        wait: float | None = None
        for row in self.store.list_jobs():
            status = self._status(row)
            if not is_runnable(status.code):
                continue
            if not self._has_connectors(row):
                if row.job.id not in self._warned:
                    self._warned.add(row.job.id or "")
                    self._log.warning("job_without_connectors", job_id=row.job.id)
                continue
            schedule = row.job.schedule
            if schedule and schedule.expiration and now > schedule.expiration:
                continue
            if row.next_run is None or row.next_run <= now:
                due.append(row.job.id or "")
            if row.job.id in running:
                continue
            left = 0.0 if row.next_run is None else max((row.next_run - now).total_seconds(), 0)
            wait = left if wait is None else min(wait, left)
        return due, wait

    def run_pending(self) -> list[SynchronizationTaskExecution]:
        """Run one cycle of every job that is due now; returns their executions."""
        ran = []
        for job_id in self.due_jobs():
            try:
                ran.append(self.run_cycle(job_id))
            except JobRunningElsewhere:
                self._log.info("job_running_elsewhere", job_id=job_id)
            except Exception:  # one job's failure never keeps the others from running
                self._log.exception("job_run_failed", job_id=job_id)
        return ran

    def _has_connectors(self, row: JobRow) -> bool:
        if (row.job.id or "") in self._connectors:
            return True
        template = self.templates.get(row.job.template_id or "")
        return bool(template and template.build_source and template.build_target)

    def run_cycle(
        self,
        job_id: str,
        *,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[CycleProgress], None] | None = None,
    ) -> SynchronizationTaskExecution:
        """Run one cycle now, whatever the schedule says; the job must be started.

        ``stop`` (a shutting-down runner's flag) ends the cycle at its next checkpoint as a
        pause does, but leaves the job started and due at once, so the next start resumes it.
        ``progress`` is told where the cycle stands after every page checkpoint, on the
        cycle's thread (a slow callback slows the cycle).
        """
        row = self._row(job_id)
        status = self._status(row)
        if not is_runnable(status.code):
            raise TransitionError(
                f"job {job_id} is {status.code.value}: start it before running a cycle"
            )
        secrets = self.store.get_secrets(row.application_id)
        settings = JobSettings.parse(row.job.synchronization_job_settings, secrets)
        try:
            source, target = self._connectors_for(row)
        except ConfigurationError as exc:
            if job_id in self._connectors or not self._has_connectors(row):
                raise  # nothing to build from: the embedder's mistake, not the job's
            return self._unbuildable(job_id, settings, exc)
        lease = self._acquire(job_id)
        try:
            return self._run_leased(job_id, row, source, target, settings, lease, stop, progress)
        finally:
            self._live.pop(job_id, None)
            self._live_pages.pop(job_id, None)
            self.store.release_lease(lease)

    def _unbuildable(
        self, job_id: str, settings: JobSettings, error: ConfigurationError
    ) -> SynchronizationTaskExecution:
        """A template-built job whose connectors cannot be built from its secrets and schema
        (a bad setting, say): the cycle fails before it starts, and its status says why, as
        every failed cycle's does (and the schedule, not a loop, decides when it tries again)."""
        lease = self._acquire(job_id)
        try:
            began = self.clock.now()
            failure = CycleFailed(str(error))
            self._log.warning("cycle_failed", job_id=job_id, error=str(failure))
            facts = _NoCycle(uuid.uuid4().hex, cycle_module.Counters(), began, settings)
            return self._finish(job_id, facts, None, failure)
        finally:
            self.store.release_lease(lease)

    def _acquire(self, job_id: str) -> Lease:
        """This engine's lease on the job, or JobRunningElsewhere."""
        now = self.clock.now()
        lease = self.store.acquire_lease(job_id, self.runner_id, now, now + self.lease_duration)
        if lease is None:
            raise JobRunningElsewhere(f"job {job_id} is running elsewhere (another runner)")
        return lease

    def _run_leased(
        self,
        job_id: str,
        row: JobRow,
        source: Source,
        target: Target,
        settings: JobSettings,
        lease: Lease,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[CycleProgress], None] | None = None,
    ) -> SynchronizationTaskExecution:
        reporting = [progress]

        def on_progress(report: CycleProgress) -> None:
            self._live[job_id] = report
            ahead = -(-report.waiting // max(settings.page_size, 1))
            self._live_pages[job_id] = SynchronizationProgress(
                completed_units=report.pages,
                total_units=report.pages + ahead,
                units="pages",
                progress_observation_date_time=self.clock.now(),
            )
            if reporting[0] is not None:
                try:
                    reporting[0](report)
                except Exception as exc:  # a report, never a rule: the cycle goes on without it
                    reporting[0] = None
                    self._log.warning("progress_callback_failed", job_id=job_id, error=repr(exc))

        def should_stop() -> bool:
            if stop is not None and stop():
                return True
            return not is_runnable(self.store.job_code(job_id) or StatusCode.PAUSED)

        ctx = cycle_module.CycleContext(
            job_id=job_id,
            cycle_id=uuid.uuid4().hex,
            store=self.store,
            source=source,
            target=target,
            clock=self.clock,
            settings=settings,
            mappings=self._mappings(row),
            should_stop=should_stop,
            halted=stop or (lambda: False),
            force_deletes=row.force_deletes,
            random=self.random,
            lease=lease,
            lease_duration=self.lease_duration,
            on_progress=on_progress,
        )
        ctx.log.info("cycle_started")
        failure: ConnectorError | None = None
        outcome = None
        try:
            outcome = cycle_module.run(ctx)
        except (CredentialsError, UnreachableError, ConnectorError) as exc:
            # what a directory answers may quote a secret: masked for the status and the log
            failure = masked_error(exc, self._secret_values(row))
            ctx.log.warning("cycle_failed", error_type=type(exc).__name__, error=str(failure))
        except JobRunningElsewhere:
            raise  # another runner owns the job now: its status is not ours to write
        except Exception as exc:  # a bug or a poison we did not foresee: this job only
            secrets = self._secret_values(row)
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

    def _secret_values(self, row: JobRow) -> list[str]:
        return list(self.store.get_secrets(row.application_id).values())

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
        now = self.clock.now()
        execution = execution_of(ctx.cycle_id, ctx.counters, ctx.started, now, failure)
        entry_counts = self._entry_counts(self._row(job_id))
        live = self._live_pages.get(job_id)
        ended: list[tuple[SynchronizationStatus, SynchronizationStatus]] = []

        def finished(row: JobRow) -> JobRow:
            before = self._status(row)
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
            return self._with_status(
                row, status, next_run=next_run, force_deletes=after.force_deletes
            )

        self._update(job_id, finished)
        before, status = ended[-1]
        if status.quarantine is not None:
            self._log.warning(
                "job_quarantined",
                job_id=job_id,
                reason=status.quarantine.reason.value if status.quarantine.reason else None,
                series_count=status.quarantine.series_count,
            )
        elif before.code is StatusCode.QUARANTINE and status.code is StatusCode.ACTIVE:
            self._log.info("job_recovered", job_id=job_id)
        self.store.prune_logs(job_id, now - ctx.settings.log_retention)
        return execution

    def provision_on_demand(self, job_id: str, object_type: str, anchor: str) -> list[LogRecord]:
        """Synchronize one source object now, bypassing schedule and delete threshold."""
        row = self._row(job_id)
        if self._status(row).code is StatusCode.NOT_CONFIGURED:
            raise TransitionError("the job is not configured: its required secrets are missing")
        source, target = self._connectors_for(row)
        mappings = [m for m in self._mappings(row) if m.source_type.lower() == object_type.lower()]
        if not mappings:
            raise NotFoundError(f"no enabled object mapping reads {object_type!r}")
        ctx = cycle_module.CycleContext(
            job_id=job_id,
            cycle_id=f"ondemand-{uuid.uuid4().hex}",
            store=self.store,
            source=source,
            target=target,
            clock=self.clock,
            settings=JobSettings.parse(
                row.job.synchronization_job_settings, self.store.get_secrets(row.application_id)
            ),
            mappings=mappings,
            should_stop=lambda: False,
            random=self.random,
            lease=self._acquire(job_id),
            lease_duration=self.lease_duration,
        )
        try:
            return cycle_module.provision_one(ctx, anchor)
        finally:
            assert ctx.lease is not None
            self.store.release_lease(ctx.lease)

    # ------------------------------------------------------------------------- queries
    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]:
        self._row(job_id)
        return self.store.provisioning_logs(job_id, cycle_id, limit)

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        """The job's provisioning log read lazily, newest first (StateStore.log_batches)."""
        self._row(job_id)
        return self.store.log_batches(job_id)

    def pending_changes(self, job_id: str) -> int:
        """Changes the source showed that are not in the target yet: open escrows (parked
        ones included), staged deletes held (by the threshold or an interrupted cycle), and
        what a cycle running in this process has read, or its source announced, but not
        yet checkpointed (CycleProgress.waiting)."""
        self._row(job_id)
        live = self._live.get(job_id)
        waiting = live.waiting if live is not None else 0
        held = len(self.store.get_escrows(job_id)) + len(self.store.staged_deletes(job_id))
        return held + waiting

    def live_progress(self, job_id: str) -> CycleProgress | None:
        """Where the cycle of ``job_id`` running in this process stands, or None."""
        return self._live.get(job_id)

    def escrows(self, job_id: str) -> list[Escrow]:
        self._row(job_id)
        return self.store.get_escrows(job_id)

    def replay_escrows(self, job_id: str, anchors: Sequence[str] | None = None) -> int:
        """Make escrowed objects (parked ones included) due on the next cycle; returns how many.

        Parked escrows (older than EscrowMaxAge) are no longer retried by themselves; this is
        how an operator sends them through again once the cause is fixed.
        """
        self._row(job_id)
        wanted = None if anchors is None else set(anchors)
        now = self.clock.now()
        chosen = [
            attrs.evolve(e, parked=False, next_retry=now, first_failed=now)
            for e in self.store.get_escrows(job_id)
            if wanted is None or e.anchor in wanted
        ]
        if chosen:
            self.store.commit(job_id, Checkpoint(escrows=chosen))
        return len(chosen)

    def close(self) -> None:
        for job_id in list(self._built):
            self._close_built(job_id)
        self.store.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ internals
    def _row(self, job_id: str) -> JobRow:
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return row

    @staticmethod
    def _status(row: JobRow) -> SynchronizationStatus:
        return row.job.status or SynchronizationStatus()

    @staticmethod
    def _with_status(
        row: JobRow,
        status: SynchronizationStatus,
        *,
        next_run: Any = None,
        force_deletes: bool | None = None,
    ) -> JobRow:
        schedule = row.job.schedule or SynchronizationSchedule(interval=DEFAULT_INTERVAL)
        schedule = attrs.evolve(schedule, state=SCHEDULE_STATE[status.code])
        job = attrs.evolve(row.job, status=status, schedule=schedule)
        return JobRow(
            application_id=row.application_id,
            job=job,
            next_run=next_run if next_run is not None else row.next_run,
            force_deletes=row.force_deletes if force_deletes is None else force_deletes,
        )

    def _update(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow:
        """``change`` applied to the job's stored row as one atomic step (StateStore.
        update_job): a command, a schema save and a cycle's end never undo one another."""
        new = self.store.update_job(job_id, change)
        if new is None:
            raise NotFoundError(f"no job {job_id!r}")
        return new

    def _reconfigure(self, row: JobRow, secrets: Mapping[str, str]) -> None:
        template = self.templates.get(row.job.template_id or "")
        if template is None:
            return
        missing = [k for k in template.required_secrets if not secrets.get(k)]
        command = Command.UNCONFIGURE if missing else Command.CONFIGURE

        def reconfigured(current: JobRow) -> JobRow:
            status = self._status(current)
            code = transition(status.code, command)
            assert isinstance(code, StatusCode)
            return self._with_status(current, attrs.evolve(status, code=code))

        self._update(row.job.id or "", reconfigured)

    def _connectors_for(self, row: JobRow) -> tuple[Source, Target]:
        """Attached connectors, else the template's, built from the secrets and the schema
        and rebuilt when either changes (the old ones are closed)."""
        job_id = row.job.id or ""
        if job_id in self._connectors:
            return self._connectors[job_id]
        template = self.templates.get(row.job.template_id or "")
        if template and template.build_source and template.build_target:
            secrets = self.store.get_secrets(row.application_id)
            key = (tuple(sorted(secrets.items())), row.job.schema)
            built = self._built.get(job_id)
            if built is not None and built[0] == key:
                return built[1]
            self._close_built(job_id)
            pair = self._build(template, secrets, row.job.schema or template.schema)
            self._built[job_id] = (key, pair)
            return pair
        raise ConfigurationError(
            f"job {job_id} has no connectors: pass source and target to create_job or attach"
        )

    @staticmethod
    def _build(
        template: Template, secrets: Mapping[str, str], schema: SynchronizationSchema
    ) -> tuple[Source, Target]:
        assert template.build_source is not None and template.build_target is not None
        try:
            return _check_connectors(
                template.build_source(secrets, schema), template.build_target(secrets, schema)
            )
        except (ConnectorError, ValueError, ConfigurationError) as exc:  # e.g. a bad URL
            message = f"cannot build the job's connectors: {exc}"
            raise ConfigurationError(mask_secrets(message, secrets.values())) from None

    def _close_built(self, job_id: str) -> None:
        built = self._built.pop(job_id, None)
        for connector in built[1] if built else ():
            close = getattr(connector, "close", None)
            if close is not None:
                close()

    def validate_credentials(self, job_id: str, secrets: Mapping[str, str] | None = None) -> None:
        """Graph's validateCredentials: build the job's connectors from ``secrets`` (else the
        saved ones) and let each check its connection, bind and base; raises the connector's
        error (CredentialsError, UnreachableError, ...) saying what failed."""
        row = self._row(job_id)
        template = self.templates.get(row.job.template_id or "")
        if secrets is None and job_id in self._connectors:
            pair = self._connectors[job_id]
        elif template and template.build_source and template.build_target:
            saved = self.store.get_secrets(row.application_id)
            use = {**saved, **{str(k): str(v) for k, v in (secrets or {}).items()}}
            missing = [k for k in template.required_secrets if not use.get(k)]
            if missing:
                raise ConfigurationError(f"missing secrets: {', '.join(missing)}")
            pair = self._build(template, use, row.job.schema or template.schema)
        else:
            raise ConfigurationError(f"job {job_id} has no connectors to validate")
        try:
            for connector in pair:
                connector.validate()
        finally:
            if pair is not self._connectors.get(job_id):
                for connector in pair:
                    close = getattr(connector, "close", None)
                    if close is not None:
                        close()

    def discover(self, job_id: str, directory_id: str) -> DirectoryDefinition:
        """Graph's directoryDefinition discover: the directory's connector (attached, else
        built from the saved secrets) reads the live schema; what the job's schema lacks is
        added (engine.discovery: existing definitions are kept as they are) and stored, and
        the refreshed directory returned. No mapping changes, so watermarks are kept. Every
        refusal (unknown directory, a connector that cannot discover, missing secrets, the
        directory's own ConnectorError) comes before anything is stored."""
        row = self._row(job_id)
        schema = row.job.schema or SynchronizationSchema()
        side = discovery.side_of(schema, discovery.find_directory(schema, directory_id))
        template = self.templates.get(row.job.template_id or "")
        attached = self._connectors.get(job_id)
        connector: object
        if attached is not None:
            connector = attached[0] if side == "source" else attached[1]
        elif template and template.build_source and template.build_target:
            secrets = self.store.get_secrets(row.application_id)
            missing = [k for k in template.required_secrets if not secrets.get(k)]
            if missing:
                raise ConfigurationError(f"missing secrets: {', '.join(missing)}")
            build = template.build_source if side == "source" else template.build_target
            try:
                connector = build(secrets, schema)
            except ConnectorError as exc:  # e.g. a malformed URL in the secrets
                raise ConfigurationError(f"cannot build the {side} connector: {exc}") from None
        else:
            connector = None
        try:
            if not isinstance(connector, Discoverable):
                raise DiscoveryNotSupported(
                    f"the {side} connector of directory {directory_id!r} cannot discover its "
                    "schema (discovery needs an LDAP or SCIM directory)"
                )
            found = connector.discover()
        finally:
            close = getattr(connector, "close", None) if attached is None else None
            if close is not None:
                close()
        now = self.clock.now()
        refreshed: list[DirectoryDefinition] = []

        def merged_into(current: JobRow) -> JobRow:  # the schema as stored now: a command, a
            merged, directory = discovery.apply(  # cycle or a PUT may have saved it meanwhile
                current.job.schema or SynchronizationSchema(), directory_id, found, now
            )
            validate_schema(merged)
            refreshed.append(directory)
            return attrs.evolve(current, job=attrs.evolve(current.job, schema=merged))

        self._update(job_id, merged_into)
        directory = refreshed[-1]
        self._log.info(
            "directory_discovered",
            job_id=job_id,
            directory_id=directory.id,
            version=directory.version,
            attributes={o.name: len(o.attributes) for o in directory.objects},
        )
        return directory

    def _schema(self, schema: SynchronizationSchema | Mapping[str, Any]) -> SynchronizationSchema:
        if isinstance(schema, SynchronizationSchema):
            return schema
        if not isinstance(schema, Mapping):
            raise ModelError(
                "a schema is a SynchronizationSchema or Graph JSON (a dict), "
                f"not {type(schema).__name__}"
            )
        return from_graph(dict(schema), SynchronizationSchema)

    @staticmethod
    def _regex_seconds(row: JobRow) -> float:
        """The job's RegexTimeout, which compiled scoping filters carry."""
        settings = JobSettings.parse(row.job.synchronization_job_settings)
        return settings.regex_timeout.total_seconds()

    def _compile(
        self, schema: SynchronizationSchema, regex_seconds: float
    ) -> list[CompiledMapping]:
        compiled = []
        for rule in sorted(schema.synchronization_rules, key=lambda r: r.priority):
            for mapping in rule.object_mappings:
                if mapping.enabled:
                    compiled.append(
                        compile_mapping(schema, rule, mapping, regex_timeout=regex_seconds)
                    )
        if not compiled:
            raise ConfigurationError("the schema has no enabled object mapping")
        return link_references(compiled)

    def _mappings(self, row: JobRow) -> list[CompiledMapping]:
        job_id = row.job.id or ""
        schema = row.job.schema or SynchronizationSchema()
        cached = self._compiled.get(job_id)
        if cached is None or cached[0] != schema:
            cached = (schema, self._compile(schema, self._regex_seconds(row)))
            self._compiled[job_id] = cached
        return cached[1]

    def _entry_counts(self, row: JobRow) -> tuple[StringKeyLongValuePair, ...]:
        counts: dict[str, int] = {}
        by_key = {m.key: m.target_type for m in self._mappings(row)}
        for key, count in self.store.count_links(row.job.id or "").items():
            name = by_key.get(key, key)
            counts[name] = counts.get(name, 0) + count
        return tuple(StringKeyLongValuePair(key=k, value=v) for k, v in sorted(counts.items()))
