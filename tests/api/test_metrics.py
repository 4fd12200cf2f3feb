"""``GET /metrics``: Prometheus text from the stored job statuses, behind the bearer token."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from connectors.memory import MemoryDirectory
from engine import ManualClock, StateStore, SyncEngine
from engine.service.api import create_app, metrics_response
from tests.conftest import user

TOKEN = "metrics-token"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_need_the_token_and_show_a_cycle(store: StateStore) -> None:
    clock = ManualClock()
    engine = SyncEngine(store, clock)
    source = MemoryDirectory()
    for n in range(3):
        source.put("User", f"u{n}", user(n))
    job = engine.create_job("memoryToMemory", source, MemoryDirectory())
    assert job.id is not None
    engine.start(job.id)
    engine.run_cycle(job.id)
    clock.advance(timedelta(seconds=90))

    with TestClient(create_app(engine, [TOKEN])) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    labels = frozenset({("job", job.id), ("template", "memoryToMemory")})
    assert got[("syncjob_job_has_run", labels)] == 1
    assert got[("syncjob_job_last_cycle_exported", labels)] == 3
    assert got[("syncjob_job_last_cycle_escrowed", labels)] == 0
    assert got[("syncjob_job_last_cycle_duration_seconds", labels)] >= 0
    assert got[("syncjob_job_watermark_age_seconds", labels)] == 90
    assert got[("syncjob_job_quarantined", labels)] == 0
    assert got[("syncjob_job_successive_failed_cycles", labels)] == 0
    assert got[("syncjob_job_status", labels | {("code", "Active")})] == 1
    assert got[("syncjob_job_status", labels | {("code", "Paused")})] == 0


def test_a_job_that_never_ran_has_no_watermark_age(store: StateStore) -> None:
    engine = SyncEngine(store, ManualClock())
    job = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory())
    text = bytes(metrics_response(engine).body).decode()
    got = samples(text)
    labels = frozenset({("job", job.id or ""), ("template", "memoryToMemory")})
    assert got[("syncjob_job_has_run", labels)] == 0
    assert not any(name == "syncjob_job_watermark_age_seconds" for name, _ in got)
    assert got[("syncjob_job_status", labels | {("code", "NotRun")})] == 1


def test_cycles_run_and_the_lag_of_changes_not_exported(store: StateStore) -> None:
    """syncjob_job_cycles counts this process's cycles; syncjob_job_lag_objects counts the
    changes the source showed that the target does not have yet (escrowed objects)."""
    engine = SyncEngine(store, ManualClock())
    source, target = MemoryDirectory(), MemoryDirectory()
    for n in range(3):
        source.put("User", f"u{n}", user(n))
    job = engine.create_job("memoryToMemory", source, target)
    assert job.id is not None
    engine.start(job.id)
    target.fail_object("User", user(1)["userName"], times=10)
    engine.run_cycle(job.id)
    engine.run_cycle(job.id)
    got = samples(metrics_response(engine).body.decode())
    labels = frozenset({("job", job.id), ("template", "memoryToMemory")})
    assert got[("syncjob_job_cycles_total", labels)] == 2
    assert got[("syncjob_job_lag_objects", labels)] == 1


def test_the_lag_counts_what_a_running_cycle_has_not_exported_yet(store: StateStore) -> None:
    """Mid-cycle, a scrape's lag holds the objects the source's full read announced that
    are not checkpointed yet; after the cycle it is back to the escrows alone."""
    engine = SyncEngine(store, ManualClock())
    source = MemoryDirectory()
    for n in range(250):
        source.put("User", f"u{n:03d}", user(n))
    job = engine.create_job(
        "memoryToMemory", source, MemoryDirectory(), settings={"PageSize": "100"}
    )
    assert job.id is not None
    engine.start(job.id)
    labels = frozenset({("job", job.id), ("template", "memoryToMemory")})
    lags: list[float] = []
    engine.run_cycle(
        job.id,
        progress=lambda _: lags.append(
            samples(metrics_response(engine).body.decode())[("syncjob_job_lag_objects", labels)]
        ),
    )
    assert lags[:3] == [150, 50, 0]
    assert samples(metrics_response(engine).body.decode())[("syncjob_job_lag_objects", labels)] == 0
