"""``GET /metrics``: the jobs' stored statuses as Prometheus text.

Every scrape builds a fresh :class:`CollectorRegistry` from :meth:`SyncEngine.list_jobs`, so
the numbers are the state file's, whichever process ran the cycles, and nothing is global.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from engine.errors import NotFoundError
from engine.jobs import SyncEngine
from engine.model import StatusCode

_LABELS = ("job", "template")


def metrics_registry(engine: SyncEngine) -> CollectorRegistry:
    """A registry holding one sample per job (and status code) from the stored statuses."""
    registry = CollectorRegistry(auto_describe=False)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = _LABELS) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    has_run = gauge("syncjob_job_has_run", "1 once the job has run a cycle, else 0")
    exported = gauge("syncjob_job_last_cycle_exported", "Objects exported in the last cycle")
    escrowed = gauge("syncjob_job_last_cycle_escrowed", "Objects escrowed in the last cycle")
    duration = gauge("syncjob_job_last_cycle_duration_seconds", "Duration of the last cycle")
    failures = gauge(
        "syncjob_job_successive_failed_cycles", "Cycles that failed completely in a row"
    )
    age = gauge(
        "syncjob_job_watermark_age_seconds",
        "Seconds since the end of the last successful cycle (absent before the first)",
    )
    quarantined = gauge("syncjob_job_quarantined", "1 if the job is in quarantine, else 0")
    cycles = Counter("syncjob_job_cycles", "Cycles run by this process", _LABELS, registry=registry)
    lag = gauge(
        "syncjob_job_lag_objects",
        "Changes seen in the source but not exported: escrowed objects, held deletes, and what"
        " a running cycle has read or its source announced but not checkpointed yet",
    )
    status = gauge(
        "syncjob_job_status", "1 for the job's status code, 0 for the others", (*_LABELS, "code")
    )
    now = engine.clock.now()
    for job in engine.list_jobs():
        try:
            pending = engine.pending_changes(job.id)
        except NotFoundError:  # deleted since list_jobs (a DELETE during the scrape): skip it
            continue
        labels = {"job": job.id, "template": job.template_id}
        state = job.status
        last = state.last_execution if state else None
        has_run.labels(**labels).set(1 if last is not None else 0)
        exported.labels(**labels).set(last.count_exported if last else 0)
        escrowed.labels(**labels).set(last.count_escrowed if last else 0)
        seconds = 0.0
        if last is not None and last.time_began is not None and last.time_ended is not None:
            seconds = (last.time_ended - last.time_began).total_seconds()
        duration.labels(**labels).set(seconds)
        failures.labels(**labels).set(state.count_successive_complete_failures if state else 0)
        success = state.last_successful_execution if state else None
        if success is not None and (success.time_ended or success.time_began) is not None:
            ended = success.time_ended or success.time_began
            assert ended is not None
            age.labels(**labels).set(max(0.0, (now - ended).total_seconds()))
        code = state.code if state else StatusCode.NOT_CONFIGURED
        quarantined.labels(**labels).set(1 if code is StatusCode.QUARANTINE else 0)
        cycles.labels(**labels).inc(engine.cycles_run.get(job.id, 0))
        lag.labels(**labels).set(pending)
        for each in StatusCode:
            status.labels(**labels, code=each.value).set(1 if each is code else 0)
    return registry


def metrics_response(engine: SyncEngine) -> Response:
    """The Prometheus text exposition of :func:`metrics_registry`."""
    body = generate_latest(metrics_registry(engine))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def metrics(request: Request) -> Response:
    """The ``GET /metrics`` endpoint (behind the app's bearer auth, like every other path)."""
    engine: SyncEngine = request.app.state.engine
    return await run_in_threadpool(metrics_response, engine)
