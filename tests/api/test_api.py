"""The HTTP API (engine.service.api) through Starlette's TestClient, on both stores and both
versions."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.memory import MemoryDirectory
from engine import ConfigurationError, ManualClock, StateStore, SyncEngine
from engine.service.api import create_app
from tests.conftest import user

TOKEN = "s3cret-token-Xk7pQ2rM9vL4"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def engine(store: StateStore) -> SyncEngine:
    return SyncEngine(store, ManualClock())


@pytest.fixture
def client(engine: SyncEngine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, [TOKEN, "another"]), headers=AUTH) as made:
        yield made


@pytest.fixture(params=["/beta", "/v1.0"])
def v(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def graph_error(response: Any, status: int, code: str | None = None) -> str:
    """Assert Graph's error body and status; returns the message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "innerError"}
    assert set(error["innerError"]) == {"request-id", "date"}
    assert error["innerError"]["date"].endswith("Z")
    if code is not None:
        assert error["code"] == code
    return str(error["message"])


def new_app(client: TestClient, v: str) -> str:
    response = client.post(f"{v}/servicePrincipals", json={"displayName": "HR"})
    assert response.status_code == 201
    return str(response.json()["id"])


def plain(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource without its OData annotations."""
    return {k: v for k, v in resource.items() if not k.startswith("@odata")}


def new_job(client: TestClient, v: str, app: str, **body: Any) -> str:
    response = client.post(
        f"{v}/servicePrincipals/{app}/synchronization/jobs",
        json={"templateId": "memoryToMemory", **body},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# ---------------------------------------------------------------------------- happy path
def test_whole_happy_path(client: TestClient, engine: SyncEngine, v: str) -> None:
    """Application, job, commands, schema, secrets, templates, delete: as Graph answers."""
    created = client.post(f"{v}/servicePrincipals", json={"displayName": "HR"})
    assert created.status_code == 201
    app = created.json()["id"]
    assert created.json() == {
        "@odata.context": f"http://testserver{v}/$metadata#servicePrincipals/$entity",
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": app,
        "displayName": "HR",
    }
    assert created.headers["location"].endswith(f"{v}/servicePrincipals/{app}")
    assert client.get(f"{v}/servicePrincipals/{app}").json()["displayName"] == "HR"
    listed = client.get(f"{v}/servicePrincipals").json()
    assert listed["@odata.context"].endswith(f"{v.lstrip('/')}/$metadata#servicePrincipals")
    assert [a["id"] for a in listed["value"]] == [app]

    jobs = f"{v}/servicePrincipals/{app}/synchronization/jobs"
    response = client.post(
        jobs,
        json={
            "templateId": "memoryToMemory",
            "schedule": {"interval": "PT20M"},
            "synchronizationJobSettings": [
                {"name": "QuarantineTooManyDeletesThreshold", "value": "9"}
            ],
        },
    )
    assert response.status_code == 201
    job = response.json()
    job_id = job["id"]
    assert response.headers["location"] == f"http://testserver{jobs}/{job_id}"
    assert job["templateId"] == "memoryToMemory"
    assert job["schedule"]["interval"] == "PT20M"
    assert job["status"]["code"] == "NotRun"
    assert {"name": "QuarantineTooManyDeletesThreshold", "value": "9"} in job[
        "synchronizationJobSettings"
    ]
    assert client.get(f"{jobs}/{job_id}").json() == job
    listed = client.get(jobs).json()
    assert listed["@odata.context"].endswith(f"servicePrincipals('{app}')/synchronization/jobs")
    assert [j["id"] for j in listed["value"]] == [job_id]
    assert (
        listed["value"][0]["@odata.type"]
        == job["@odata.type"]
        == ("#microsoft.graph.synchronizationJob")
    )

    source, target = MemoryDirectory(), MemoryDirectory()
    source.put("User", "u1", user(1))
    engine.attach(job_id, source, target)
    assert client.post(f"{jobs}/{job_id}/start").status_code == 204
    assert client.get(f"{jobs}/{job_id}").json()["status"]["code"] == "Active"
    engine.run_cycle(job_id)
    assert len(target.list("User")) == 1
    assert client.post(f"{jobs}/{job_id}/pause").status_code == 204
    assert client.get(f"{jobs}/{job_id}").json()["status"]["code"] == "Paused"
    restarted = client.post(
        f"{jobs}/{job_id}/restart", json={"criteria": {"resetScope": "Watermark, Escrows"}}
    )
    assert restarted.status_code == 204
    assert client.get(f"{jobs}/{job_id}").json()["status"]["code"] == "Active"
    assert client.post(f"{jobs}/{job_id}/restart").status_code == 204  # the body is optional

    schema = client.get(f"{jobs}/{job_id}/schema").json()
    assert schema["synchronizationRules"]
    schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"] = [
        m
        for m in schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
        if m["targetAttributeName"] != "department"
    ]
    assert client.put(f"{jobs}/{job_id}/schema", json=schema).status_code == 204
    stored = client.get(f"{jobs}/{job_id}/schema").json()
    assert stored.pop("version") == "1" and schema.pop("version") is None  # bumped: changed
    assert stored == schema
    stored["version"] = "1"
    assert client.put(f"{jobs}/{job_id}/schema", json=stored).status_code == 204
    assert client.get(f"{jobs}/{job_id}/schema").json()["version"] == "1"  # the same: kept

    secrets = f"{v}/servicePrincipals/{app}/synchronization/secrets"
    put = client.put(secrets, json={"value": [{"key": "SyncAll", "value": "True"}]})
    assert put.status_code == 204
    shown = client.get(secrets)
    assert shown.status_code == 200
    assert [plain(s) for s in shown.json()["value"]] == [{"key": "SyncAll", "value": "*****"}]
    assert "True" not in shown.text

    templates = f"{v}/servicePrincipals/{app}/synchronization/templates"
    ids = [t["id"] for t in client.get(templates).json()["value"]]
    assert "memoryToMemory" in ids and "ldapToLdap" in ids
    one = client.get(f"{templates}/memoryToMemory").json()
    assert one["id"] == "memoryToMemory" and one["schema"]["directories"]

    assert client.delete(f"{jobs}/{job_id}").status_code == 204
    assert client.get(jobs).json()["value"] == []
    graph_error(client.get(f"{jobs}/{job_id}"), 404, "itemNotFound")
    new_job(client, v, app)
    assert client.delete(f"{v}/servicePrincipals/{app}").status_code == 204
    graph_error(client.get(f"{v}/servicePrincipals/{app}"), 404, "itemNotFound")
    assert engine.list_jobs() == []


def test_application_without_body(client: TestClient, v: str) -> None:
    response = client.post(f"{v}/servicePrincipals")
    assert response.status_code == 201
    assert response.json()["displayName"] is None


def test_secret_values_never_in_any_response(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    client.put(
        f"{v}/servicePrincipals/{app}/synchronization/secrets",
        json={"value": [{"key": "Password", "value": "hunter2-very-secret"}]},
    )
    for path in ("", "/synchronization/secrets", "/synchronization/jobs"):
        assert "hunter2" not in client.get(f"{v}/servicePrincipals/{app}{path}").text


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"templateId": 3}, "templateId"),
        ({"templateId": "memoryToMemory", "colour": "red"}, "colour"),
        ({"templateId": "memoryToMemory", "schedule": {"interval": "PT40X"}}, "interval"),
        ({"templateId": "memoryToMemory", "schedule": {"interval": "PT0S"}}, "interval"),
        ({"templateId": "memoryToMemory", "status": {"code": "Active"}}, "status"),
        ({"templateId": "memoryToMemory", "synchronizationJobSettings": [{"value": "1"}]}, "name"),
        ({}, "templateId"),
    ],
)
def test_bad_job_bodies_are_400_naming_the_field(
    client: TestClient, v: str, body: dict[str, Any], field: str
) -> None:
    app = new_app(client, v)
    jobs = f"{v}/servicePrincipals/{app}/synchronization/jobs"
    message = graph_error(client.post(jobs, json=body), 400)
    assert field in message
    assert client.get(jobs).json()["value"] == []  # a refused request changes nothing


def test_an_unknown_setting_is_400_listing_the_known_ones(client: TestClient, v: str) -> None:
    """A misspelt job setting (or SyncNotificationSettings key) would be kept and do nothing:
    it is refused, and the message lists the names the engine and Graph know."""
    app = new_app(client, v)
    jobs = f"{v}/servicePrincipals/{app}/synchronization/jobs"
    typo = [{"name": "QuarantineTooManyDeletesTreshold", "value": "5"}]
    body = {"templateId": "memoryToMemory", "synchronizationJobSettings": typo}
    message = graph_error(client.post(jobs, json=body), 400)
    assert "unknown job setting 'QuarantineTooManyDeletesTreshold'" in message
    assert "QuarantineTooManyDeletesThreshold" in message and "DomainFQDN" in message
    assert client.get(jobs).json()["value"] == []
    graph = [{"name": "DomainFQDN", "value": "corp.example"}]  # Graph's, not acted on: kept
    new_job(client, v, app, synchronizationJobSettings=graph)
    secrets = f"{v}/servicePrincipals/{app}/synchronization/secrets"
    notice = '{"DeleteThresholdValu": 3}'
    pairs = {"value": [{"key": "SyncNotificationSettings", "value": notice}]}
    message = graph_error(client.put(secrets, json=pairs), 400)
    assert "unknown key 'DeleteThresholdValu'" in message and "DeleteThresholdValue" in message


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(client: TestClient, v: str, raw: bytes) -> None:
    app = new_app(client, v)
    response = client.post(
        f"{v}/servicePrincipals/{app}/synchronization/jobs",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    graph_error(response, 400, "invalidRequest")


def test_unknown_ids_are_404(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    other = new_app(client, v)
    job = new_job(client, v, app)
    sp = f"{v}/servicePrincipals"
    for method, path in [
        ("GET", f"{sp}/nope"),
        ("DELETE", f"{sp}/nope"),
        ("GET", f"{sp}/nope/synchronization/jobs"),
        ("POST", f"{sp}/nope/synchronization/jobs"),
        ("GET", f"{sp}/{app}/synchronization/jobs/nope"),
        ("DELETE", f"{sp}/{app}/synchronization/jobs/nope"),
        ("POST", f"{sp}/{app}/synchronization/jobs/nope/start"),
        ("GET", f"{sp}/{app}/synchronization/jobs/nope/schema"),
        ("GET", f"{sp}/{other}/synchronization/jobs/{job}"),  # another application's job
        ("POST", f"{sp}/{other}/synchronization/jobs/{job}/pause"),
        ("GET", f"{sp}/nope/synchronization/secrets"),
        ("PUT", f"{sp}/nope/synchronization/secrets"),
        ("GET", f"{sp}/nope/synchronization/templates"),
        ("GET", f"{sp}/{app}/synchronization/templates/nope"),
        ("GET", f"{v}/no/such/path"),
    ]:
        body = {"templateId": "memoryToMemory"} if method == "POST" else None
        if method == "PUT":
            body = {"value": []}
        graph_error(client.request(method, path, json=body), 404)
    graph_error(client.post(f"{sp}/{app}/synchronization/jobs", json={"templateId": "nope"}), 404)
    assert client.get(f"{sp}/{app}/synchronization/jobs/{job}").status_code == 200


def test_wrong_method_is_405_in_graph_shape(client: TestClient, v: str) -> None:
    graph_error(client.patch(f"{v}/servicePrincipals"), 405, "methodNotAllowed")


def test_refused_transition_is_409_and_changes_nothing(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/{new_job(client, v, app)}"
    message = graph_error(client.post(f"{job}/pause"), 409, "notAllowed")
    assert "NotRun" in message or "pause" in message.lower()
    assert client.get(job).json()["status"]["code"] == "NotRun"


def test_bad_restart_criteria_is_400(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/{new_job(client, v, app)}"
    client.post(f"{job}/start")
    message = graph_error(
        client.post(f"{job}/restart", json={"criteria": {"resetScope": "Everything"}}), 400
    )
    assert "resetScope" in message
    graph_error(client.post(f"{job}/restart", json={"criterion": {}}), 400)


def test_bad_schemas_are_400_and_change_nothing(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/{new_job(client, v, app)}"
    schema = client.get(f"{job}/schema").json()

    unknown = copy.deepcopy(schema)
    unknown["synchronizationRules"][0]["flavour"] = "x"
    assert "flavour" in graph_error(client.put(f"{job}/schema", json=unknown), 400)

    wrong_type = copy.deepcopy(schema)
    wrong_type["synchronizationRules"][0]["priority"] = "first"
    assert "priority" in graph_error(client.put(f"{job}/schema", json=wrong_type), 400)

    bad_expression = copy.deepcopy(schema)
    mapping = bad_expression["synchronizationRules"][0]["objectMappings"][0]
    mapping["attributeMappings"][1]["source"] = {
        "type": "Function",
        "name": "Join",
        "expression": 'Join(",", [givenName]',
    }
    message = graph_error(client.put(f"{job}/schema", json=bad_expression), 400)
    assert "displayName" in message

    growing = copy.deepcopy(schema)  # five nested Replace calls: 10 GB from one character
    nested = "[givenName]"
    for _ in range(5):
        nested = f'Replace({nested}, "a", , , "{"a" * 100}", , )'
    mapping = growing["synchronizationRules"][0]["objectMappings"][0]
    mapping["attributeMappings"][1]["source"] = {"type": "Function", "expression": nested}
    message = graph_error(client.put(f"{job}/schema", json=growing), 400)
    assert "displayName" in message and "times longer than its longest input" in message

    unknown_target = copy.deepcopy(schema)
    mapping = unknown_target["synchronizationRules"][0]["objectMappings"][0]
    mapping["attributeMappings"][1]["targetAttributeName"] = "shoeSize"
    message = graph_error(client.put(f"{job}/schema", json=unknown_target), 400)
    assert "shoeSize" in message and "attributeMappings[1]" in message

    unknown_source = copy.deepcopy(schema)
    mapping = unknown_source["synchronizationRules"][0]["objectMappings"][0]
    mapping["attributeMappings"][1]["source"] = {"type": "Attribute", "name": "shoeSize"}
    message = graph_error(client.put(f"{job}/schema", json=unknown_source), 400)
    assert "shoeSize" in message and "attributeMappings[1]" in message
    assert client.get(f"{job}/schema").json() == schema


def test_bad_secrets_are_400(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    secrets = f"{v}/servicePrincipals/{app}/synchronization/secrets"
    client.put(secrets, json={"value": [{"key": "Kept", "value": "1"}]})
    assert "key" in graph_error(client.put(secrets, json={"value": [{"value": "x"}]}), 400)
    assert "value" in graph_error(client.put(secrets, json={"value": "x"}), 400)
    graph_error(
        client.put(secrets, json={"value": [{"key": "HardDeletesEnabled", "value": "maybe"}]}), 400
    )
    graph_error(client.put(secrets), 400)
    # the mask means "keep the stored value": for a key with none, 400 naming it
    masked = {"value": [{"key": "Kept", "value": "*****"}, {"key": "New", "value": "*****"}]}
    assert "'New'" in graph_error(client.put(secrets, json=masked), 400)
    assert [plain(s) for s in client.get(secrets).json()["value"]] == [
        {"key": "Kept", "value": "*****"}
    ]
    masked = {"value": [{"key": "Kept", "value": "*****"}, {"key": "New", "value": "2"}]}
    assert client.put(secrets, json=masked).status_code == 204
    engine = client.app.state.engine  # type: ignore[attr-defined]
    assert engine.store.get_secrets(app) == {"Kept": "1", "New": "2"}


# --------------------------------------------------------------------------------- auth
def test_auth(engine: SyncEngine, v: str) -> None:
    with TestClient(create_app(engine, [TOKEN])) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/healthz").status_code == 200
        response = anonymous.get(f"{v}/servicePrincipals")
        graph_error(response, 401, "InvalidAuthenticationToken")
        assert response.headers["www-authenticate"].startswith("Bearer")
        for header in ("Bearer wrong", f"Basic {TOKEN}", "Bearer", f"bearer {TOKEN}x"):
            graph_error(
                anonymous.get(f"{v}/servicePrincipals", headers={"Authorization": header}), 401
            )
        graph_error(anonymous.post(f"{v}/servicePrincipals", json={}), 401)
        graph_error(anonymous.get(f"{v}/no/such/path"), 401)  # no token, no map of the paths
        assert engine.list_applications() == []
        ok = anonymous.get(f"{v}/servicePrincipals", headers={"Authorization": f"bearer {TOKEN}"})
        assert ok.status_code == 200


def test_tokens_are_kept_hashed(engine: SyncEngine) -> None:
    app = create_app(engine, [TOKEN])
    assert TOKEN not in repr(vars(app)) and TOKEN not in repr(app.user_middleware)


@pytest.mark.parametrize("tokens", [[], [""], "token"])
def test_an_app_needs_tokens(engine: SyncEngine, tokens: Any) -> None:
    with pytest.raises(ConfigurationError):
        create_app(engine, tokens)


# ----------------------------------------------------------------------- engine methods
def test_engine_application_methods(engine: SyncEngine) -> None:
    a = engine.create_application("A")
    b = engine.create_application("B")
    assert {x.id for x in engine.list_applications()} == {a.id, b.id}
    assert engine.get_application(a.id) == a
    job = engine.create_job("memoryToMemory", application_id=a.id)
    engine.set_secrets(a.id, {"SyncAll": "True"})
    assert job.id is not None
    assert engine.get_job(job.id, application_id=a.id) == engine.get_job(job.id)
    with pytest.raises(LookupError):
        engine.get_job(job.id, application_id=b.id)
    engine.delete_application(a.id)
    assert [x.id for x in engine.list_applications()] == [b.id]
    assert engine.list_jobs() == []
    assert engine.store.get_secrets(a.id) == {}
    with pytest.raises(LookupError):
        engine.get_application(a.id)
    with pytest.raises(LookupError):
        engine.delete_application(a.id)
