"""Graph's synchronizationJob and what hangs off it: schedule, status, executions, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from engine.model._enums import (
    QuarantineReason,
    RestartScope,
    ScheduleState,
    StatusCode,
    TaskExecutionResult,
)
from engine.model.converter import ASSIGNED
from engine.model.schema import MetadataEntry, SynchronizationSchema

#: Graph's "never" for steadyState*Time: 0001-01-01T00:00:00Z.
NEVER = datetime(1, 1, 1, tzinfo=UTC)
#: Graph shows .NET TimeSpan.MaxValue as the interval of a job that is not scheduled.
TIMESPAN_MAX = timedelta(days=10675199, hours=2, minutes=48, seconds=5, microseconds=477580)


@attrs.frozen(kw_only=True)
class KeyValuePair:
    name: str
    value: str | None = None


@attrs.frozen(kw_only=True)
class StringKeyLongValuePair:
    key: str
    value: int = 0


@attrs.frozen(kw_only=True)
class SecretPair:
    """synchronizationSecretKeyStringValuePair: one credential or behaviour switch."""

    key: str
    value: str | None = None


@attrs.frozen(kw_only=True)
class SynchronizationSchedule:
    expiration: datetime | None = None
    interval: timedelta = TIMESPAN_MAX
    state: ScheduleState = ScheduleState.DISABLED


@attrs.frozen(kw_only=True)
class SynchronizationError:
    code: str | None = None
    message: str | None = None
    tenant_actionable: bool = False


@attrs.frozen(kw_only=True)
class SynchronizationQuarantine:
    current_began: datetime | None = None
    next_attempt: datetime | None = None
    reason: QuarantineReason | None = None
    series_began: datetime | None = None
    series_count: int = 0
    error: SynchronizationError | None = None


@attrs.frozen(kw_only=True)
class SynchronizationTaskExecution:
    """One run (cycle) of a job and its counters; ``activity_identifier`` is the cycle's id
    (the provisioning log's cycle_id)."""

    activity_identifier: str = attrs.field(default="", metadata={ASSIGNED: True})
    count_entitled: int = 0
    count_entitled_for_provisioning: int = 0
    count_escrowed: int = 0
    count_escrowed_raw: int = 0
    count_exported: int = 0
    count_exports: int = 0
    count_imported: int = 0
    count_imported_deltas: int = 0
    count_imported_reference_deltas: int = 0
    error: SynchronizationError | None = None
    state: TaskExecutionResult | None = None
    time_began: datetime | None = None
    time_ended: datetime | None = None


@attrs.frozen(kw_only=True)
class SynchronizationProgress:
    completed_units: int = 0
    progress_observation_date_time: datetime | None = None
    total_units: int = 0
    units: str | None = None


@attrs.frozen(kw_only=True)
class SynchronizationStatus:
    code: StatusCode = StatusCode.NOT_CONFIGURED
    count_successive_complete_failures: int = 0
    escrows_pruned: bool = False
    last_execution: SynchronizationTaskExecution | None = None
    last_successful_execution: SynchronizationTaskExecution | None = None
    last_successful_execution_with_exports: SynchronizationTaskExecution | None = None
    progress: tuple[SynchronizationProgress, ...] = ()
    quarantine: SynchronizationQuarantine | None = None
    steady_state_first_achieved_time: datetime = NEVER
    steady_state_last_achieved_time: datetime = NEVER
    synchronized_entry_count_by_type: tuple[StringKeyLongValuePair, ...] = ()
    troubleshooting_url: str | None = None


@attrs.frozen(kw_only=True)
class SynchronizationJob:
    """A job; on input (create) only ``templateId`` is required, the engine fills the rest.

    ``id`` and ``template_id`` are set on every job the engine returns; they are ``""``
    (null in Graph JSON) only in a create request's body."""

    id: str = attrs.field(default="", metadata={ASSIGNED: True})
    template_id: str = attrs.field(default="", metadata={ASSIGNED: True})
    schedule: SynchronizationSchedule | None = None
    status: SynchronizationStatus | None = None
    synchronization_job_settings: tuple[KeyValuePair, ...] = ()
    schema: SynchronizationSchema | None = None


@attrs.frozen(kw_only=True)
class SynchronizationJobRestartCriteria:
    """``resetScope`` arrives as "Watermark, Escrows" (docs) or one value (Graph SDK)."""

    reset_scope: frozenset[RestartScope] = frozenset()


@attrs.frozen(kw_only=True)
class RestartRequest:
    criteria: SynchronizationJobRestartCriteria | None = None


@attrs.frozen(kw_only=True)
class SynchronizationTemplate:
    id: str
    application_id: str | None = None
    default: bool = False
    description: str | None = None
    discoverable: bool = True
    factory_tag: str | None = None
    metadata: tuple[MetadataEntry, ...] = ()
    schema: SynchronizationSchema | None = None


@attrs.frozen(kw_only=True)
class Application:
    """A servicePrincipal as far as synchronization cares: a container of jobs and secrets."""

    id: str
    display_name: str | None = None
