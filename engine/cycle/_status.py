"""What a finished cycle does to the job's Graph status. Pure: the engine supplies the facts
(counters, outcome, failure, the status as stored now) and stores what comes back."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from connectors.base import ConnectorError, CredentialsError
from engine.cycle._context import Counters, CycleOutcome
from engine.lifecycle import Command, is_runnable, transition
from engine.model import (
    NEVER,
    QuarantineReason,
    StatusCode,
    StringKeyLongValuePair,
    SynchronizationError,
    SynchronizationProgress,
    SynchronizationQuarantine,
    SynchronizationStatus,
    SynchronizationTaskExecution,
    TaskExecutionResult,
)
from engine.settings import JobSettings, quarantine_delay


def execution_of(
    cycle_id: str,
    counters: Counters,
    began: datetime,
    ended: datetime,
    failure: ConnectorError | None,
) -> SynchronizationTaskExecution:
    """The cycle as Graph's synchronizationTaskExecution."""
    c = counters
    if failure is not None:
        state = TaskExecutionResult.FAILED
    elif c.escrowed or c.unresolved:
        state = TaskExecutionResult.ENTRY_LEVEL_ERRORS
    else:
        state = TaskExecutionResult.SUCCEEDED
    error = None
    if failure is not None:
        error = SynchronizationError(
            code=type(failure).__name__, message=str(failure)[:1000], tenant_actionable=True
        )
    elif c.ambiguous:  # a divergence the engine knows of is never only an escrow
        message = f"{c.ambiguous} object(s) matched several target objects; {c.ambiguity}"
        error = SynchronizationError(
            code="AmbiguousMatch", message=message[:1000], tenant_actionable=True
        )
    return SynchronizationTaskExecution(
        activity_identifier=cycle_id,
        count_entitled=c.entitled,
        count_entitled_for_provisioning=c.entitled,
        count_escrowed=c.escrowed,
        count_escrowed_raw=c.escrowed + c.unresolved,
        count_exported=c.exported,
        count_exports=c.exports,
        count_imported=c.imported,
        count_imported_deltas=c.imported_deltas,
        error=error,
        state=state,
        time_began=began,
        time_ended=ended,
    )


@attrs.frozen
class AfterCycle:
    status: SynchronizationStatus
    next_run: datetime
    force_deletes: bool


def after_cycle(
    status: SynchronizationStatus,
    execution: SynchronizationTaskExecution,
    *,
    counters: Counters,
    outcome: CycleOutcome | None,
    failure: ConnectorError | None,
    settings: JobSettings,
    interval: timedelta,
    now: datetime,
    force_deletes: bool,
    entry_counts: tuple[StringKeyLongValuePair, ...],
) -> AfterCycle:
    """The status, next run and ForceDeletes flag after a cycle (quarantine decided here)."""
    c = counters
    status = attrs.evolve(status, last_execution=execution)
    next_run = now + interval
    verdict: tuple[QuarantineReason, SynchronizationError] | None = None
    if failure is not None:
        failures = status.count_successive_complete_failures + 1
        status = attrs.evolve(status, count_successive_complete_failures=failures)
        limit = 1 if isinstance(failure, CredentialsError) else settings.unreachable_cycles
        if failures >= limit and execution.error is not None:
            verdict = (QuarantineReason.ENCOUNTERED_QUARANTINE_EXCEPTION, execution.error)
    elif outcome is not None and not outcome.paused:
        if outcome.quarantine is None:
            force_deletes = False  # the held deletes went through
        status = attrs.evolve(status, count_successive_complete_failures=0)
        if execution.state is TaskExecutionResult.SUCCEEDED:
            status = attrs.evolve(status, last_successful_execution=execution)
            if c.exported:
                status = attrs.evolve(status, last_successful_execution_with_exports=execution)
        if c.exported == 0 and c.escrowed == 0 and outcome.quarantine is None:
            first = status.steady_state_first_achieved_time
            status = attrs.evolve(
                status,
                steady_state_first_achieved_time=now if first == NEVER else first,
                steady_state_last_achieved_time=now,
            )
        if outcome.quarantine is not None:
            reason, message = outcome.quarantine
            verdict = (
                reason,
                SynchronizationError(code=reason.value, message=message, tenant_actionable=True),
            )
    status = attrs.evolve(
        status,
        progress=(
            SynchronizationProgress(
                completed_units=c.pages,
                total_units=c.pages,
                units="pages",
                progress_observation_date_time=now,
            ),
        ),
        synchronized_entry_count_by_type=entry_counts,
    )
    if not is_runnable(status.code):  # paused (or worse) meanwhile: leave it so
        return AfterCycle(status=status, next_run=next_run, force_deletes=force_deletes)
    if verdict is None and status.code is StatusCode.QUARANTINE:
        if failure is None and outcome is not None:
            code = transition(status.code, Command.RECOVER)
            assert isinstance(code, StatusCode)
            status = attrs.evolve(status, code=code, quarantine=None)
        elif status.quarantine is not None:
            verdict = (
                status.quarantine.reason or QuarantineReason.UNKNOWN,
                status.quarantine.error or SynchronizationError(),
            )
    if verdict is not None:
        status = quarantined(status, verdict, now, interval)
        assert status.quarantine is not None
        next_run = status.quarantine.next_attempt or next_run
    return AfterCycle(status=status, next_run=next_run, force_deletes=force_deletes)


def quarantined(
    status: SynchronizationStatus,
    verdict: tuple[QuarantineReason, SynchronizationError],
    now: datetime,
    interval: timedelta,
) -> SynchronizationStatus:
    """Quarantine (or keep in quarantine) with the next attempt backed off."""
    reason, error = verdict
    code = transition(status.code, Command.QUARANTINE)
    assert isinstance(code, StatusCode)
    previous = status.quarantine
    series = 0 if previous is None else previous.series_count + 1
    quarantine = SynchronizationQuarantine(
        current_began=now,
        series_began=now if previous is None else previous.series_began,
        series_count=series,
        reason=reason,
        error=error,
        next_attempt=now + quarantine_delay(interval, series),
    )
    return attrs.evolve(status, code=code, quarantine=quarantine)
