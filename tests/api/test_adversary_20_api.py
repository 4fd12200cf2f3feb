"""Adversary tests for issue #20 through a real ``syncjob serve``: what an authenticated
caller can make the daemon do on its event loop."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import attrs
import requests
from starlette.testclient import TestClient

from engine import SyncEngine, SystemClock
from engine.model import AttributeDefinition, MetadataEntry
from engine.service.api import create_app
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import start_daemon
from tests.processes import terminate

TOKEN = "adv20-api-token-Xk7pQ2rM9vL4wN8c"
CLOCK = SystemClock()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _state_with_large_schemas(state: Path, jobs: int) -> str:
    """An application whose ``jobs`` jobs each have a ~4 MB schema (what a schema PUT
    accepts: 15,000 attributes under the 4 MiB body limit), made by the engine directly."""
    extra = tuple(
        AttributeDefinition(
            name=f"x{i:06d}" + "y" * 40,
            multivalued=True,
            metadata=(MetadataEntry(key="k", value="v"),),
        )
        for i in range(15_000)
    )
    with SyncEngine(state) as engine:
        app = engine.create_application("large").id
        for _ in range(jobs):
            job = engine.create_job("memoryToMemory", application_id=app).id
            assert job is not None
            schema = engine.get_schema(job)
            first = schema.directories[0]
            kind = attrs.evolve(first.objects[0], attributes=first.objects[0].attributes + extra)
            directory = attrs.evolve(first, objects=(kind, *first.objects[1:]))
            engine.update_schema(
                job, attrs.evolve(schema, directories=(directory, *schema.directories[1:]))
            )
    return str(app)


def test_healthz_answers_while_a_list_of_large_jobs_is_encoded(tmp_path: Path) -> None:
    """Was: GET …/jobs of an application with eight jobs of 4 MB schemas (35 MB of JSON)
    was converted and encoded on the event loop: /healthz waited 3.9 s (two jobs: ~1.2 s).
    Should: large answers (jobs, a job, a schema, its directories) are built in the worker
    thread by the pure-Python encoder; /healthz answers within 0.6 s meanwhile. And the daemon
    lists its jobs before it binds its socket (three such jobs had held the first /healthz
    3.8 s: start_daemon gave up)."""
    state = tmp_path / "s.db"
    app = _state_with_large_schemas(state, 2)
    process, url = start_daemon(state, tmp_path / "serve.log", {**os.environ, TOKENS_ENV: TOKEN})
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with requests.Session() as session:
            while not done.is_set():
                started = CLOCK.monotonic()
                assert session.get(f"{url}/healthz", timeout=30).status_code == 200
                waits.append(CLOCK.monotonic() - started)
                CLOCK.sleep(0.02)

    prober = threading.Thread(target=probe)
    try:
        prober.start()
        jobs = requests.get(
            f"{url}/v1.0/servicePrincipals/{app}/synchronization/jobs",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert jobs.status_code == 200
        assert len(jobs.json()["value"]) == 2
    finally:
        done.set()
        prober.join(30)
        terminate(process)
    assert waits and max(waits) < 0.6, sorted(waits)[-5:]


def test_selecting_options_without_their_dollar_are_refused_not_ignored(tmp_path: Path) -> None:
    """Was: ``GET /servicePrincipals?top=1`` (OData 4.01 and Graph's beta read it as
    ``$top=1``) answered every application, the option ignored. Should: a 400, as ``$top``."""
    with SyncEngine(tmp_path / "s.db") as engine:
        engine.create_application("one")
        engine.create_application("two")
        client = TestClient(create_app(engine, [TOKEN]), headers=AUTH)
        for query in ("top=1", "Filter=displayName eq 'one'", "SKIP=1", "$TOP=1"):
            answer = client.get(f"/beta/servicePrincipals?{query}")
            assert answer.status_code == 400, (query, answer.text)
        assert len(client.get("/beta/servicePrincipals?x=1").json()["value"]) == 2
