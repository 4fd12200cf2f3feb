"""Adversarial tests of today's API changes, in process (Starlette's TestClient, both stores):
hostile ``$skiptoken``, hostile SCIM ``/Schemas`` answers to ``discover`` (a tiny HTTP server
on 127.0.0.1 written here), the schema round trip GET -> PUT/PATCH, and ``$filter jobId``.

Every test here failed when it was written; each docstring says what should happen."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.memory import MemoryDirectory
from engine import ManualClock, StateStore, SyncEngine
from engine.service.api import create_app
from tests.api.test_api import AUTH, TOKEN, new_app, new_job
from tests.conftest import fill

V = "/v1.0"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def engine(store: StateStore) -> SyncEngine:
    return SyncEngine(store, ManualClock())


@pytest.fixture
def api(engine: SyncEngine) -> Iterator[TestClient]:
    """A client that sees a server-side exception as the 500 a real client gets."""
    app = create_app(engine, [TOKEN])
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as made:
        yield made


# ------------------------------------------------------------------------ $skiptoken
def test_deeply_nested_skiptoken_is_a_400_not_a_500(api: TestClient) -> None:
    """A $skiptoken that decodes to deeply nested JSON is "not valid" (400) like any other bad
    token. Was: json.loads raises RecursionError, which decode_token does not catch -> 500."""
    token = base64.urlsafe_b64encode(b"[" * 5000).decode("ascii").rstrip("=")
    response = api.get(f"{V}/auditLogs/provisioning", params={"$skiptoken": token})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "$skiptoken is not valid"


# ------------------------------------------------------------------ $filter jobId eq
def test_filter_on_job_id_is_case_insensitive_like_every_string_clause(
    api: TestClient, engine: SyncEngine
) -> None:
    """String clauses compare case-insensitively (the predicate lower-cases both sides), so
    ``jobId eq '<the id upper-cased>'`` finds the job's records. Was: the fast path looks the
    job up by the exact text (engine.log_batches(job_id)), finds no such job, answers []."""
    app = new_app(api, V)
    job_id = new_job(api, V, app)
    source = MemoryDirectory()
    fill(source, 3)
    engine.attach(job_id, source, MemoryDirectory())
    engine.start(job_id)
    engine.run_cycle(job_id)
    exact = api.get(f"{V}/auditLogs/provisioning", params={"$filter": f"jobId eq '{job_id}'"})
    assert len(exact.json()["value"]) == 3
    other_case = api.get(
        f"{V}/auditLogs/provisioning", params={"$filter": f"jobId eq '{job_id.upper()}'"}
    )
    assert other_case.status_code == 200
    assert len(other_case.json()["value"]) == 3


# ------------------------------------------------- schema round trip: GET -> PUT/PATCH
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_schema_round_trip_changes_nothing_and_keeps_the_watermarks(
    api: TestClient, engine: SyncEngine, method: str
) -> None:
    """What GET returned, PUT (or PATCHed, as Graph's SDKs do) back unchanged, is accepted and
    changes nothing: same version, and the next cycle is a delta read (nothing imported).
    Was: update_schema resets every watermark even when the schema is equal (it only skips
    the version bump), so the SDK's no-op round trip forces a full re-read of the source
    (and revokes the lease of a cycle running meanwhile)."""
    app = new_app(api, V)
    job_id = new_job(api, V, app)
    source = MemoryDirectory()
    fill(source, 5)
    engine.attach(job_id, source, MemoryDirectory())
    engine.start(job_id)
    assert engine.run_cycle(job_id).count_imported == 5
    job = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    before = api.get(f"{job}/schema").json()
    assert before["@odata.type"] == "#microsoft.graph.synchronizationSchema"
    response = api.request(method, f"{job}/schema", json=before)
    assert response.status_code == 204, response.text
    assert api.get(f"{job}/schema").json() == before  # the version did not move either
    again = engine.run_cycle(job_id)
    assert (again.count_imported, again.count_exported) == (0, 0)


# ------------------------------------------------------ discover: a hostile SCIM service
class _Hostile(BaseHTTPRequestHandler):
    answers: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        name = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        body = self.answers.get(name)
        status = 404 if body is None else 200
        body = body if body is not None else b'{"status": "404"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hostile_scim() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A SCIM 'service' on 127.0.0.1 answering GET …/<name> with answers[name] (else 404)."""
    answers: dict[str, bytes] = {}
    handler = type("Handler", (_Hostile,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scim/v2", answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _resources(*resources: Any) -> bytes:
    return json.dumps({"schemas": [], "Resources": list(resources)}).encode()


def _user(attributes: Any) -> dict[str, Any]:
    return {"id": USER_URN, "attributes": attributes}


MALFORMED = {
    "Resources is a number": json.dumps({"Resources": 5}).encode(),
    "attributes is a number": _resources(_user(7)),
    "subAttributes is a number": _resources(
        _user([{"name": "name", "type": "complex", "subAttributes": 7}])
    ),
    "referenceTypes is a number": _resources(
        _user([{"name": "boss", "type": "reference", "referenceTypes": 7}])
    ),
    "canonicalValues is a number": _resources(
        _user(
            [
                {
                    "name": "emails",
                    "type": "complex",
                    "multiValued": True,
                    "subAttributes": [{"name": "type", "canonicalValues": 7}, {"name": "value"}],
                }
            ]
        )
    ),
}
SECRET = "tok-secret-0123456789"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_scim_schemas_are_the_directorys_error_not_a_500(
    api: TestClient, hostile_scim: tuple[str, dict[str, bytes]], case: str
) -> None:
    """A SCIM service whose /Schemas is JSON of the wrong shape is the directory's fault: a
    Graph error naming it (502 UnreachableError, as for a body that is not JSON, or a 4xx),
    the schema unchanged, no secret shown. Was: connectors/scim/discovery.py iterates
    ``Resources``/``attributes``/``subAttributes``/``referenceTypes``/``canonicalValues``
    as given (``x or ()``), so a number raises TypeError -> 500 generalException."""
    url, answers = hostile_scim
    answers["Schemas"] = MALFORMED[case]
    app = new_app(api, V)
    secrets = {
        "SourceUrl": "ldap://127.0.0.1:1",
        "SourceUserName": "cn=admin",
        "SourcePassword": "pw-secret-0123456789",
        "SourceBaseDn": "dc=example",
        "BaseAddress": url,
        "SecretToken": SECRET,
    }
    pairs = [{"key": k, "value": v} for k, v in secrets.items()]
    put = api.put(f"{V}/servicePrincipals/{app}/synchronization/secrets", json={"value": pairs})
    assert put.status_code == 204
    job_id = new_job(api, V, app, templateId="ldapToScim")
    job = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    before = api.get(f"{job}/schema").json()
    response = api.post(f"{job}/schema/directories/scim-target/discover")
    assert SECRET not in response.text
    assert response.status_code in (400, 502), (case, response.status_code, response.text)
    assert api.get(f"{job}/schema").json() == before


# ---------------------------------------------- what the template cannot build from
def _ldap_to_scim_job(api: TestClient, **extra: str) -> tuple[str, str]:
    app = new_app(api, V)
    secrets = {
        "SourceUrl": "ldap://127.0.0.1:1",
        "SourceUserName": "cn=admin",
        "SourcePassword": "pw-secret-0123456789",
        "SourceBaseDn": "dc=example",
        "BaseAddress": "http://127.0.0.1:1/scim/v2",
        "SecretToken": SECRET,
        **extra,
    }
    pairs = [{"key": k, "value": v} for k, v in secrets.items()]
    put = api.put(f"{V}/servicePrincipals/{app}/synchronization/secrets", json={"value": pairs})
    assert put.status_code == 204
    job_id = new_job(api, V, app, templateId="ldapToScim")
    return app, job_id


def test_a_schema_the_ldap_connector_cannot_be_built_from_is_refused_at_the_door(
    api: TestClient, engine: SyncEngine
) -> None:
    """An LDAP directory attribute named ``given name`` (multivalued) is not an LDAP attribute
    description: the connector refuses it (LdapObjectType's converter raises ValueError), so
    the job could never run. The PUT should be refused (400 naming it), as validation refuses
    every other schema that would run wrongly. Was: PUT 204; then every cycle raises
    ValueError out of run_cycle (engine/templates/_ldap.py builds LdapObjectType outside the
    ``except ValueError`` that wraps LdapSource), the job's status never shows it, and
    ``syncjob serve`` logs a traceback for it every second (see the idle daemon test)."""
    app, job_id = _ldap_to_scim_job(api)
    job = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    schema = api.get(f"{job}/schema").json()
    user = schema["directories"][0]["objects"][0]
    user["attributes"].append({"name": "given name", "type": "String", "multivalued": True})
    response = api.put(f"{job}/schema", json=schema)
    assert response.status_code == 400, response.text
    assert "given name" in response.json()["error"]["message"]


def test_a_job_whose_connectors_cannot_be_built_shows_the_failure_in_its_status(
    api: TestClient, engine: SyncEngine
) -> None:
    """Secrets the template cannot build connectors from (SourceDeltaMode "bogus") are
    accepted by PUT secrets; then the scheduled cycle should fail visibly: lastExecution Failed
    naming SourceDeltaMode (or a quarantine), as Entra shows a job that cannot run. Was:
    run_cycle raises ConfigurationError before the cycle starts (SyncEngine._connectors_for
    is outside _run_leased's error handling); run_pending and the daemon's runner log it and
    the job's status stays Active with no execution and no error, forever."""
    app, job_id = _ldap_to_scim_job(api, SourceDeltaMode="bogus")
    job = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    assert api.post(f"{job}/start").status_code == 204
    engine.run_pending()
    status = api.get(job).json()["status"]
    assert status["lastExecution"] is not None, status
    assert status["lastExecution"]["state"] == "Failed"
    assert "SourceDeltaMode" in status["lastExecution"]["error"]["message"]


def test_a_small_scim_schemas_answer_cannot_blow_the_schema_up(
    api: TestClient, hostile_scim: tuple[str, dict[str, bytes]]
) -> None:
    """A 7.8 KB /Schemas answer: one multi-valued complex attribute with 300 canonical types
    and 300 sub-attributes. Discovery flattens it to ``emails[type eq "tN"].sM`` for every
    pair: 90,000 attribute definitions, a 22 MB schema (600 x 600 from 15 KB: 360,000, 90 MB,
    a 10-15 s discover, a 15-23 s PUT back). Discovery should bound what a directory can add
    (refuse, 400/502, schema unchanged, or cap it). Was: 200 and everything is stored; every
    GET/PUT of the schema and every cycle's connector build (keyed on the schema) carries it.
    Root cause: connectors/scim/discovery.py _attributes has no bound on canonical types x
    sub-attributes, engine/limits.py none on a discovered directory."""
    url, answers = hostile_scim
    n = 300
    subs = [{"name": "type", "canonicalValues": [f"t{i}" for i in range(n)]}]
    subs += [{"name": f"s{j}"} for j in range(n)]
    attributes = [{"name": "emails", "type": "complex", "multiValued": True, "subAttributes": subs}]
    answers["Schemas"] = _resources(_user(attributes))
    assert len(answers["Schemas"]) < 8_000
    app, job_id = _ldap_to_scim_job(api, BaseAddress=url)
    job = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    response = api.post(f"{job}/schema/directories/scim-target/discover")
    assert response.status_code in (200, 400, 502), response.text
    schema = api.get(f"{job}/schema")
    assert len(schema.content) < 2_000_000, f"{len(schema.content):,} bytes of schema"
    for obj in schema.json()["directories"][1]["objects"]:
        assert len(obj["attributes"]) <= 10_000, (obj["name"], len(obj["attributes"]))


# ------------------------------------------------------------- client round trips (#6)
def test_secrets_round_trip_does_not_replace_the_secrets_with_their_mask(
    api: TestClient, engine: SyncEngine
) -> None:
    """A client that PUTs back what GET …/secrets returned (typed pairs whose values are the
    mask) must not destroy the stored secrets: the mask means "unchanged" (or the PUT is
    refused, 400). Was: 204, and every secret is stored as the literal ``*****`` (the next
    cycle fails with bad credentials; the real values are gone)."""
    app = new_app(api, V)
    secrets = {"BaseAddress": "https://scim.example/v2", "SecretToken": SECRET}
    pairs = [{"key": k, "value": v} for k, v in secrets.items()]
    url = f"{V}/servicePrincipals/{app}/synchronization/secrets"
    assert api.put(url, json={"value": pairs}).status_code == 204
    shown = api.get(url).json()
    assert all(p["value"] == "*****" for p in shown["value"])
    response = api.put(url, json=shown)
    assert response.status_code in (204, 400), response.text
    assert engine.store.get_secrets(app) == secrets


# -------------------------------------------------------------- /metrics lag (#3)
def test_metrics_survive_a_job_deleted_during_the_scrape(
    api: TestClient, engine: SyncEngine
) -> None:
    """A job deleted between the scrape's list of jobs and its lag lookup (an API DELETE
    while Prometheus scrapes) must not break the scrape: 200 with the other jobs. Was:
    metrics_registry calls engine.pending_changes(job), which raises NotFoundError for the
    deleted job, and the whole /metrics answers 404 itemNotFound."""
    app = new_app(api, V)
    kept, gone = new_job(api, V, app), new_job(api, V, app)
    listed = engine.list_jobs

    def list_then_delete(application_id: str | None = None) -> Any:
        jobs = listed(application_id)
        engine.delete_job(gone)  # the DELETE lands right after the scrape listed the jobs
        return jobs

    engine.list_jobs = list_then_delete  # type: ignore[method-assign]
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert f'job="{kept}"' in response.text
