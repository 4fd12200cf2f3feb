"""SyncEngine: the one public facade over jobs, their commands and their cycles.

It holds no logic of its own: each call goes to the part that does that one job
(applications and secrets, job and schema commands, connections, execution, scheduling,
records). Everything it knows durably lives in the store, so a new engine on the same store
continues where a crashed one stopped; what it holds in memory (attached connectors,
compiled mappings, the progress of running cycles) is rebuilt or reported, never relied on.
"""

from __future__ import annotations

import random as random_module
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Source, Target
from engine.clock import Clock, SystemClock
from engine.cycle import CycleProgress, Restored
from engine.errors import JobRunningElsewhere
from engine.jobs._applications import DEFAULT_APPLICATION, Applications, SecretChanges
from engine.jobs._commands import JobCommands
from engine.jobs._connections import Connections
from engine.jobs._execution import Execution
from engine.jobs._figures import Figures, JobFigures
from engine.jobs._mappings import CompiledMappings
from engine.jobs._plan import Planner
from engine.jobs._records import Records
from engine.jobs._restore import Restores
from engine.jobs._rows import Shared
from engine.jobs._scheduling import Scheduling
from engine.logs import use_standard_logging
from engine.model import (
    Application,
    DirectoryDefinition,
    SynchronizationJob,
    SynchronizationJobRestartCriteria,
    SynchronizationSchedule,
    SynchronizationSchema,
    SynchronizationTaskExecution,
)
from engine.model.plan import SyncPlan
from engine.store import LogRecord, MemoryStateStore, SqliteStateStore, StateStore
from engine.store.base import Escrow
from engine.templates import Template, builtin_templates

__all__ = ["DEFAULT_APPLICATION", "SyncEngine"]


def _open_store(store: str | Path | StateStore | None) -> StateStore:
    if store is None:
        return MemoryStateStore()
    if isinstance(store, str | Path):
        return SqliteStateStore(store)
    return store


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
        use_standard_logging()
        self._shared = Shared(
            store=_open_store(store),
            clock=clock or SystemClock(),
            templates=dict(templates or builtin_templates()),
            random=random or random_module.Random(),
        )
        mappings = CompiledMappings()
        self._connections = Connections(self._shared)
        self._scheduling = Scheduling(self._shared, self._connections)
        self._execution = Execution(self._shared, self._connections, mappings, lease_duration)
        self._applications = Applications(self._shared)
        self._jobs = JobCommands(
            self._shared,
            self._applications,
            self._connections,
            mappings,
            now_due=self._scheduling.now_due,
            live_pages=self._execution.live_pages.get,
        )
        self._records = Records(self._shared, self._execution.live.get)
        self._figures = Figures(self._shared, self._execution, self._scheduling)
        self._planner = Planner(self._shared, self._connections, mappings, self._execution)

        self._restores = Restores(self._execution)

    # ------------------------------------------------------- what embedders may read or set
    @property
    def store(self) -> StateStore:
        """The state store everything durable is in (jobs, links, escrows, logs); read it for
        what the facade does not show, write to it only through the engine."""
        return self._shared.store

    @property
    def clock(self) -> Clock:
        """The engine's only source of time; set a ManualClock in tests to move time by hand."""
        return self._shared.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._shared.clock = clock

    @property
    def templates(self) -> dict[str, Template]:
        """The templates jobs are created from, by id (the built-in ones unless given)."""
        return self._shared.templates

    @property
    def random(self) -> random_module.Random:
        """Where the engine's random choices come from (jitter); seed it for repeatable tests."""
        return self._shared.random

    @property
    def runner_id(self) -> str:
        """Who holds a job's lease while this engine runs its cycle (host:pid:engine)."""
        return self._execution.runner_id

    @property
    def lease_duration(self) -> timedelta:
        """How long a job's lease lasts without renewal: after a runner dies elsewhere, another
        one may take the job over only once it has run out (same-host takeovers are at once)."""
        return self._execution.lease_duration

    @lease_duration.setter
    def lease_duration(self, duration: timedelta) -> None:
        self._execution.lease_duration = duration

    @property
    def cycles_run(self) -> dict[str, int]:
        """Cycles this engine ran per job since the process started (/metrics reads it)."""
        return self._execution.cycles_run

    @property
    def due_listeners(self) -> list[Callable[[], None]]:
        """Called when a command makes a job due at once (a Runner wakes up)."""
        return self._scheduling.due_listeners

    # ------------------------------------------------------------------- applications
    def create_application(
        self, display_name: str | None = None, application_id: str | None = None
    ) -> Application:
        """A new application (Graph's servicePrincipal): a container of jobs sharing one set of
        secrets. Only needed for several sets of credentials; without one, jobs and secrets go
        to the default application."""
        return self._applications.create(display_name, application_id)

    def get_application(self, application_id: str) -> Application:
        """The application; NotFoundError if there is none by that id."""
        return self._applications.get(application_id)

    def list_applications(self) -> list[Application]:
        """Every application, the default one included once it exists."""
        return self.store.list_applications()

    def delete_application(self, application_id: str) -> None:
        """Delete the application with its jobs and secrets (Graph's DELETE servicePrincipal)."""
        self._applications.delete(application_id, self.delete_job)

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
        ConfigurationError, and nothing changes; so is a kept credential used at an address
        the call changes (engine.secret_bindings: it must be sent again with the address).
        """
        self._applications.set_secrets(application_id, secrets, keep)

    def merge_secrets(
        self, application_id: str, secrets: Mapping[str, str], *, keep: Collection[str] = ()
    ) -> SecretChanges:
        """Merge ``secrets`` into the application's stored ones (the others are kept) and
        say which keys were added, changed or already held that value; the keys in ``keep``
        keep their stored value (a ConfigurationError if there is none). A changed address
        needs the credentials used there sent with it, as in set_secrets. Read, compared and
        written as one step; a merge that changes nothing writes nothing."""
        return self._applications.merge_secrets(application_id, secrets, keep)

    def masked_secrets(self, application_id: str | None) -> dict[str, str]:
        """Secret keys with their values masked: the only way secrets leave the engine."""
        return self._applications.masked_secrets(application_id)

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
        """A new job from a template (not run yet, or not configured while its template's
        secrets are missing); everything is checked before anything is stored."""
        return self._jobs.create(
            template_id, source, target, schema, schedule, settings, application_id
        )

    def attach(self, job_id: str, source: Source | None, target: Target | None) -> None:
        """Give a job its connector objects (after a restart of the process, for instance)."""
        row = self._shared.row(job_id)
        self._connections.attach(job_id, source, target, row)

    def get_job(self, job_id: str, *, application_id: str | None = None) -> SynchronizationJob:
        """The job; with ``application_id``, NotFoundError unless the job belongs to it (the
        API's paths name both, and a job must not be reachable through another application)."""
        return self._jobs.get(job_id, application_id)

    def list_jobs(self, application_id: str | None = None) -> list[SynchronizationJob]:
        """Every job, or only the application's; with their status (a running cycle's
        progress included), to see what runs and what needs attention."""
        return self._jobs.list(application_id)

    def get_schema(self, job_id: str) -> SynchronizationSchema:
        """The job's schema (directories and mappings), to read or change and give back to
        ``update_schema``."""
        return self._shared.row(job_id).job.schema or SynchronizationSchema()

    def update_schema(self, job_id: str, schema: SynchronizationSchema | Mapping[str, Any]) -> None:
        """Replace the schema; like Entra, a changed mapping forces a new initial cycle."""
        self._jobs.update_schema(job_id, schema)

    def update_settings(self, job_id: str, settings: Mapping[str, str]) -> None:
        """Replace the job's settings (Graph's synchronizationJobSettings), checked as at
        create; the next cycle runs with them (a running one keeps the settings it began with)."""
        self._jobs.update_settings(job_id, settings)

    def delete_job(self, job_id: str) -> None:
        """Delete the job and its state (links, escrows, logs); the directories are not
        touched, so a new job starts with joins, not with a clean target."""
        self._jobs.delete(job_id)

    # ------------------------------------------------------------------------ commands
    def start(self, job_id: str) -> None:
        """Schedule the job (its first cycle is due at once); a paused job continues from its
        watermark, a quarantined one leaves quarantine. Not needed in a loop: a started job
        runs every interval."""
        self._jobs.start(job_id)

    def pause(self, job_id: str) -> None:
        """Stop scheduling the job, keeping its state; a running cycle stops at its next
        checkpoint. ``start`` continues where it stopped."""
        self._jobs.pause(job_id)

    def restart(
        self,
        job_id: str,
        criteria: SynchronizationJobRestartCriteria | str | Sequence[str] | None = None,
    ) -> None:
        """Reset what ``criteria`` names (Graph's resetScope), then run again."""
        self._jobs.restart(job_id, criteria)

    def validate_credentials(self, job_id: str, secrets: Mapping[str, str] | None = None) -> None:
        """Graph's validateCredentials: build the job's connectors from ``secrets`` laid over
        the saved ones (a value equal to the mask ``*****`` is the saved one) and let each
        check its connection, bind and base; raises the connector's error (CredentialsError,
        UnreachableError, ...) saying what failed. ``secrets`` that change an address (``Url``,
        ``BaseAddress``, ``SourceUrl``...) must hold every credential used there
        (engine.secret_bindings), else a ConfigurationError before any connection is made:
        a saved credential is never sent to an address the caller gave."""
        self._connections.validate_credentials(job_id, secrets)

    def discover(self, job_id: str, directory_id: str) -> DirectoryDefinition:
        """Graph's directoryDefinition discover: the directory's connector (attached, else
        built from the saved secrets) reads the live schema; what the job's schema lacks is
        added (engine.discovery: existing definitions are kept as they are) and stored, and
        the refreshed directory returned. No mapping changes, so watermarks are kept. Every
        refusal (unknown directory, a connector that cannot discover, missing secrets, the
        directory's own ConnectorError) comes before anything is stored."""
        return self._connections.discover(job_id, directory_id)

    # -------------------------------------------------------------------------- cycles
    def due_jobs(self, limit: int | None = None, skip: Collection[str] = ()) -> list[str]:
        """The ids of the started jobs whose next run has come and that have connectors,
        earliest due first (the one waiting longest first; a job that has just run goes
        behind the others), without those in ``skip``, at most ``limit``. From the schedule
        this engine keeps in memory, each read again from the store before it is returned;
        a job another engine on the same store started shows up within a minute, or at
        once after run_pending."""
        return self._scheduling.due_jobs(limit, skip)

    def seconds_until_due(self, running: Collection[str] = ()) -> float | None:
        """How long until the next started job with connectors (not one of ``running``) is
        due: 0 if one is due now, None if none is scheduled. A runner sleeps that long."""
        return self._scheduling.seconds_until_due(running)

    def run_pending(self) -> list[SynchronizationTaskExecution]:
        """Run one cycle of every job that is due now; returns their executions."""
        ran = []
        self._scheduling.resync()  # the store's word, whichever engine changed it
        for job_id in self.due_jobs():
            try:
                ran.append(self.run_cycle(job_id))
            except JobRunningElsewhere:
                self._shared.log.info("job_running_elsewhere", job_id=job_id)
            except Exception:  # one job's failure never keeps the others from running
                self._shared.log.exception("job_run_failed", job_id=job_id)
        return ran

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
        return self._execution.run(job_id, stop, progress)

    def provision_on_demand(self, job_id: str, object_type: str, anchor: str) -> list[LogRecord]:
        """Synchronize one source object now, bypassing schedule and delete threshold."""
        return self._execution.provision_on_demand(job_id, object_type, anchor)

    def plan(self, job_id: str) -> SyncPlan:
        """What the job's next cycle would write, computed by running it against a copy of
        the job's state and a target that records instead of writing (README "Preview and
        apply"): nothing is written to the target or the job's state."""
        return self._planner.plan(job_id)

    def apply(self, job_id: str, plan: SyncPlan) -> SynchronizationTaskExecution:
        """Run the job's cycle now if it writes exactly ``plan``, else PlanOutdated naming
        what moved; a write that slips in after the check is refused and escrowed."""
        return self._planner.apply(job_id, plan)

    def preview_on_demand(self, job_id: str, object_type: str, anchor: str) -> SyncPlan:
        """What provision_on_demand of ``anchor`` would write (a dry run; nothing written)."""
        return self._planner.one(job_id, object_type, anchor)

    def restore(self, job_id: str, key: str) -> Restored:
        """Take back the staged delete of one object before it is applied (DeleteGracePeriod,
        or held by the threshold): cancelled, and the object enabled again if the grace
        period disabled it. ``key``: its source anchor, target ref or a matching value it was
        last exported with. It stays linked if the source has it in scope, else it is let go
        (no longer linked, never deleted by the job). NotFoundError when no staged delete
        names it; TransitionError (JobRunningElsewhere) while a cycle of the job runs."""
        return self._restores.restore(job_id, key)

    # ------------------------------------------------------------------------- records
    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]:
        """What happened to each object (action, anchor, attribute names, status, error) in one
        cycle or in all: the latest ``limit`` records, oldest first. What an operator reads to
        see why an object failed."""
        return self._records.provisioning_logs(job_id, cycle_id, limit)

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        """The job's provisioning log read lazily, newest first (StateStore.log_batches)."""
        return self._records.log_batches(job_id)

    def pending_changes(self, job_id: str) -> int:
        """Changes the source showed that are not in the target yet: open escrows (parked
        ones included), staged deletes held (by the threshold or an interrupted cycle; not
        those waiting out DeleteGracePeriod until they are due), and
        what a cycle running in this process has read, or its source announced, but not
        yet checkpointed (CycleProgress.waiting)."""
        return self._records.pending_changes(job_id)

    def job_figures(self) -> list[JobFigures]:
        """Every job's status, pending changes, cycles run here and seconds it has been due
        waiting for a worker, read at once (a few queries, whatever the number of jobs):
        what /metrics shows."""
        return self._figures.all()

    def live_progress(self, job_id: str) -> CycleProgress | None:
        """Where the cycle of ``job_id`` running in this process stands, or None."""
        return self._execution.live.get(job_id)

    def escrows(self, job_id: str) -> list[Escrow]:
        """The job's failed objects waiting for a retry (with attempts, reason, next retry)."""
        return self._records.escrows(job_id)

    def replay_escrows(self, job_id: str, anchors: Sequence[str] | None = None) -> int:
        """Make escrowed objects (parked ones included) due on the next cycle; returns how many.

        Parked escrows (older than EscrowMaxAge) are no longer retried by themselves; this is
        how an operator sends them through again once the cause is fixed.
        """
        return self._records.replay_escrows(job_id, anchors)

    def close(self) -> None:
        """Close the connectors the engine built and the store; also what leaving a ``with``
        block does."""
        self._connections.close()
        self.store.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
