"""Job and schema commands: create, read, replace the schema, delete, start, pause,
restart; each goes through the state machine (engine.lifecycle) and changes the stored row
in one atomic step."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from connectors.base import Source, Target
from engine import discovery
from engine.errors import ConfigurationError, ModelError, NotFoundError
from engine.jobs._applications import Applications
from engine.jobs._connections import Connections, check_connectors
from engine.jobs._mappings import CompiledMappings, regex_seconds
from engine.jobs._rows import Shared, status_of, with_status
from engine.lifecycle import SCHEDULE_STATE, Command, transition
from engine.limits import MAX_DURATION, shown
from engine.mapping import compile_schema
from engine.model import (
    KeyValuePair,
    RestartScope,
    StatusCode,
    SynchronizationJob,
    SynchronizationJobRestartCriteria,
    SynchronizationProgress,
    SynchronizationSchedule,
    SynchronizationSchema,
    SynchronizationStatus,
    from_graph,
    parse_duration,
)
from engine.settings import DEFAULT_INTERVAL, GRAPH_ONLY_SETTINGS, JobSettings
from engine.store import JobRow
from engine.validation import validate_schema

_RESTART_DEFAULT = frozenset(
    {RestartScope.WATERMARK, RestartScope.ESCROWS, RestartScope.QUARANTINE_STATE}
)
_RESTART_FULL = _RESTART_DEFAULT | {RestartScope.CONNECTOR_DATA_STORE}


class JobCommands:
    """What an operator does to a job, and how a job and its schema are read back."""

    def __init__(
        self,
        shared: Shared,
        applications: Applications,
        connections: Connections,
        mappings: CompiledMappings,
        *,
        now_due: Callable[[], None],
        live_pages: Callable[[str], SynchronizationProgress | None],
    ) -> None:
        self._shared = shared
        self._applications = applications
        self._connections = connections
        self._mappings = mappings
        self._now_due = now_due  # tells a Runner that a job became due now
        self._live_pages = live_pages  # the running cycle's progress, as Graph shows it

    def create(
        self,
        template_id: str,
        source: Source | None,
        target: Target | None,
        schema: SynchronizationSchema | Mapping[str, Any] | None,
        schedule: str | timedelta | SynchronizationSchedule | None,
        settings: Mapping[str, str] | None,
        application_id: str | None,
    ) -> SynchronizationJob:
        # everything is checked before anything is stored: a refused call leaves no trace
        templates = self._shared.templates
        template = templates.get(template_id) if isinstance(template_id, str) else None
        if template is None:
            known = ", ".join(sorted(templates))
            raise NotFoundError(f"no template {shown(template_id)} (known: {known})")
        parsed_schema = parse_schema(schema) if schema is not None else template.schema
        if settings is not None and not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"settings must map names to values, not {type(settings).__name__}"
            )
        pairs = tuple(
            KeyValuePair(name=str(k), value=str(v))
            for k, v in {"QuarantineTooManyDeletesThreshold": "500", **(settings or {})}.items()
        )
        store = self._shared.store
        secrets = store.get_secrets(self._applications.resolve(application_id, create=False))
        job_settings = JobSettings.parse(pairs, secrets, strict=True)
        interval = schedule_interval(schedule)
        if source is not None or target is not None:
            check_connectors(source, target)
        validate_schema(parsed_schema)
        compiled = compile_schema(parsed_schema, job_settings.regex_timeout.total_seconds())
        for pair in pairs:
            if pair.name in GRAPH_ONLY_SETTINGS:
                self._shared.log.info("setting_not_used", setting=pair.name)
        app = self._applications.resolve(application_id)
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
        row = JobRow(application_id=app, job=job)
        store.save_job(row)
        self._mappings.remember(job_id, parsed_schema, compiled)
        if source is not None or target is not None:
            self._connections.attach(job_id, source, target)
        self._shared.changed(job_id, row)
        self._shared.log.info(
            "job_created", job_id=job_id, template_id=template_id, code=code.value
        )
        return job

    def get(self, job_id: str, application_id: str | None) -> SynchronizationJob:
        row = self._shared.row(job_id)
        if application_id is not None and row.application_id != application_id:
            raise NotFoundError(f"no job {job_id!r} in application {shown(application_id)}")
        return self._with_live_progress(row.job)

    def list(self, application_id: str | None) -> list[SynchronizationJob]:
        rows = self._shared.store.list_jobs(application_id)
        return [self._with_live_progress(row.job) for row in rows]

    def _with_live_progress(self, job: SynchronizationJob) -> SynchronizationJob:
        """The job, its status showing the progress of its cycle running in this process
        (pages checkpointed of the pages estimated), as Entra's portal bar does."""
        live = self._live_pages(job.id)
        if live is None or job.status is None:
            return job
        return attrs.evolve(job, status=attrs.evolve(job.status, progress=(live,)))

    def update_schema(self, job_id: str, schema: SynchronizationSchema | Mapping[str, Any]) -> None:
        """Replace the schema; like Entra, a changed mapping forces a new initial cycle."""
        row = self._shared.row(job_id)
        parsed = parse_schema(schema)
        validate_schema(parsed)
        template = self._shared.template_of(row)
        if template is not None and template.check_schema is not None:
            template.check_schema(parsed)
        compiled = compile_schema(parsed, regex_seconds(row))
        saved: list[SynchronizationSchema] = []

        def replaced(current: JobRow) -> JobRow:  # compared with the schema stored now
            old = current.job.schema or SynchronizationSchema()
            if attrs.evolve(parsed, version=old.version) == old:
                return current  # the same schema sent back (a GET then PUT): nothing to do
            new = attrs.evolve(parsed, version=discovery.bump(old.version))  # as Graph does
            saved.append(new)
            return attrs.evolve(current, job=attrs.evolve(current.job, schema=new))

        self._shared.update(job_id, replaced)
        if not saved:
            return
        # Reset after the save: a cycle that started before it (the old schema) loses its
        # lease to the reset, and every cycle after it reads the new schema from the start.
        self._shared.store.reset(job_id, watermarks=True, escrows=False, links=False)
        self._mappings.remember(job_id, saved[-1], compiled)

    def update_settings(self, job_id: str, settings: Mapping[str, str]) -> None:
        """See SyncEngine.update_settings. Compiled mappings carry RegexTimeout: forgotten, so
        the next cycle compiles them with the new value."""
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"settings must map names to values, not {type(settings).__name__}"
            )
        row = self._shared.row(job_id)
        pairs = tuple(KeyValuePair(name=str(k), value=str(v)) for k, v in settings.items())
        JobSettings.parse(pairs, self._shared.store.get_secrets(row.application_id), strict=True)

        def replaced(current: JobRow) -> JobRow:
            job = attrs.evolve(current.job, synchronization_job_settings=pairs)
            return attrs.evolve(current, job=job)

        self._shared.update(job_id, replaced)
        self._mappings.forget(job_id)
        self._shared.log.info("job_settings_updated", job_id=job_id)

    def delete(self, job_id: str) -> None:
        row = self._shared.row(job_id)
        transition(status_of(row).code, Command.DELETE)
        self._shared.store.delete_job(job_id)
        self._shared.changed(job_id, None)
        self._connections.forget(job_id)
        self._mappings.forget(job_id)
        self._shared.log.info("job_deleted", job_id=job_id)

    def start(self, job_id: str) -> None:
        now = self._shared.clock.now()

        def started(row: JobRow) -> JobRow:
            status = status_of(row)
            code = next_code(status, Command.START)
            status = attrs.evolve(status, code=code, quarantine=None)
            return with_status(row, status, next_run=now)

        self._shared.update(job_id, started)
        self._shared.log.info("job_started", job_id=job_id)
        self._now_due()

    def pause(self, job_id: str) -> None:
        def paused(row: JobRow) -> JobRow:
            status = status_of(row)
            code = next_code(status, Command.PAUSE)
            return with_status(row, attrs.evolve(status, code=code, quarantine=None))

        self._shared.update(job_id, paused)
        self._shared.log.info("job_paused", job_id=job_id)

    def restart(
        self,
        job_id: str,
        criteria: SynchronizationJobRestartCriteria | str | Sequence[str] | None,
    ) -> None:
        """Reset what ``criteria`` names (Graph's resetScope), then run again."""
        next_code(status_of(self._shared.row(job_id)), Command.RESTART)
        scopes = reset_scopes(criteria) or _RESTART_DEFAULT
        if RestartScope.FULL in scopes:
            scopes |= _RESTART_FULL
        self._shared.store.reset(
            job_id,
            watermarks=RestartScope.WATERMARK in scopes,
            escrows=RestartScope.ESCROWS in scopes,
            links=RestartScope.CONNECTOR_DATA_STORE in scopes,
        )
        now = self._shared.clock.now()

        def restarted(row: JobRow) -> JobRow:
            status = status_of(row)
            code = next_code(status, Command.RESTART)
            if RestartScope.QUARANTINE_STATE in scopes:
                status = attrs.evolve(status, count_successive_complete_failures=0)
            return with_status(
                row,
                attrs.evolve(status, code=code, quarantine=None),
                next_run=now,
                force_deletes=row.force_deletes or RestartScope.FORCE_DELETES in scopes,
            )

        self._shared.update(job_id, restarted)
        self._shared.log.info("job_restarted", job_id=job_id, scope=sorted(s.value for s in scopes))
        self._now_due()


def next_code(status: SynchronizationStatus, command: Command) -> StatusCode:
    code = transition(status.code, command)
    assert isinstance(code, StatusCode)
    return code


def parse_schema(schema: SynchronizationSchema | Mapping[str, Any]) -> SynchronizationSchema:
    if isinstance(schema, SynchronizationSchema):
        return schema
    if not isinstance(schema, Mapping):
        raise ModelError(
            "a schema is a SynchronizationSchema or Graph JSON (a dict), "
            f"not {type(schema).__name__}"
        )
    return from_graph(dict(schema), SynchronizationSchema)


def schedule_interval(schedule: Any) -> timedelta:
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


def reset_scopes(
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
