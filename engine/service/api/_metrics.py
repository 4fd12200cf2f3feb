"""``GET /metrics``: the jobs' stored statuses as Prometheus text.

Every scrape reads :meth:`SyncEngine.job_figures`, so the numbers are the state file's,
whichever process ran the cycles, and nothing is global. The figures of every job are read
at once (statuses in one query, pending changes in another), never a query per job, and the
text is written here, line by line, rather than through prometheus_client's registry, whose
per-sample objects cost more than the reads: a thousand jobs scrape well inside a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from engine.jobs import JobFigures, SyncEngine
from engine.model import StatusCode

#: (name, type, help) of each family, in the order they are written
_FAMILIES = (
    ("syncjob_job_has_run", "gauge", "1 once the job has run a cycle, else 0"),
    ("syncjob_job_last_cycle_exported", "gauge", "Objects exported in the last cycle"),
    ("syncjob_job_last_cycle_escrowed", "gauge", "Objects escrowed in the last cycle"),
    ("syncjob_job_last_cycle_duration_seconds", "gauge", "Duration of the last cycle"),
    ("syncjob_job_successive_failed_cycles", "gauge", "Cycles that failed completely in a row"),
    (
        "syncjob_job_watermark_age_seconds",
        "gauge",
        "Seconds since the end of the last successful cycle (absent before the first)",
    ),
    ("syncjob_job_quarantined", "gauge", "1 if the job is in quarantine, else 0"),
    ("syncjob_job_cycles_total", "counter", "Cycles run by this process"),
    (
        "syncjob_job_lag_objects",
        "gauge",
        "Changes seen in the source but not exported: escrowed objects, held deletes, and what"
        " a running cycle has read or its source announced but not checkpointed yet",
    ),
    (
        "syncjob_job_waiting_seconds",
        "gauge",
        "Seconds the job has been due without its cycle running here (waiting for a free"
        " worker); 0 when it is not due",
    ),
    ("syncjob_job_status", "gauge", "1 for the job's status code, 0 for the others"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _samples(job: JobFigures, now: datetime) -> Iterator[tuple[str, str, float]]:
    """(family, labels before the job's, value) of one job's samples."""
    state = job.status
    last = state.last_execution if state else None
    yield "syncjob_job_has_run", "", 1 if last is not None else 0
    yield "syncjob_job_last_cycle_exported", "", last.count_exported if last else 0
    yield "syncjob_job_last_cycle_escrowed", "", last.count_escrowed if last else 0
    seconds = 0.0
    if last is not None and last.time_began is not None and last.time_ended is not None:
        seconds = (last.time_ended - last.time_began).total_seconds()
    yield "syncjob_job_last_cycle_duration_seconds", "", seconds
    failures = state.count_successive_complete_failures if state else 0
    yield "syncjob_job_successive_failed_cycles", "", failures
    success = state.last_successful_execution if state else None
    ended = success.time_ended or success.time_began if success is not None else None
    if ended is not None:
        yield "syncjob_job_watermark_age_seconds", "", max(0.0, (now - ended).total_seconds())
    code = state.code if state else StatusCode.NOT_CONFIGURED
    yield "syncjob_job_quarantined", "", 1 if code is StatusCode.QUARANTINE else 0
    yield "syncjob_job_cycles_total", "", job.cycles_run
    yield "syncjob_job_lag_objects", "", job.pending
    yield "syncjob_job_waiting_seconds", "", job.waiting_seconds
    for each in StatusCode:
        yield "syncjob_job_status", f'code="{_label(each.value)}",', 1 if each is code else 0


def metrics_text(engine: SyncEngine) -> str:
    """The Prometheus text exposition (format 0.0.4, as prometheus_client writes it) of
    every job's figures."""
    now = engine.clock.now()
    lines: dict[str, list[str]] = {name: [] for name, _, _ in _FAMILIES}
    for job in engine.job_figures():
        labels = f'job="{_label(job.job_id)}",template="{_label(job.template_id)}"'
        for family, extra, value in _samples(job, now):
            lines[family].append(f"{family}{{{extra}{labels}}} {float(value)!r}\n")
    out: list[str] = []
    for name, kind, text in _FAMILIES:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        out.extend(lines[name])
    return "".join(out)


def metrics_response(engine: SyncEngine) -> Response:
    """The Prometheus text exposition of :func:`metrics_text`."""
    return Response(metrics_text(engine).encode(), media_type=CONTENT_TYPE_LATEST)


async def metrics(request: Request) -> Response:
    """The ``GET /metrics`` endpoint (behind the app's bearer auth, like every other path)."""
    engine: SyncEngine = request.app.state.engine
    return await run_in_threadpool(metrics_response, engine)
