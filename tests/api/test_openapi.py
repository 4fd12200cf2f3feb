"""GET /openapi.json: the document is valid OpenAPI 3.0 and describes every route, and the API
answers as it says: a schemathesis run against the ASGI app in-process (no 5xx; status, content
type and body as documented). Bounded: a few examples per operation, well under 30 s in all."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from engine import ManualClock, SyncEngine
from engine.service.api import create_app
from engine.service.api._openapi import document
from engine.store.memory import MemoryStateStore

TOKEN = "s3cret-token-Xk7pQ2rM9vL4"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ENGINE = SyncEngine(MemoryStateStore(), ManualClock())
APP = create_app(ENGINE, [TOKEN])
#: an application and a job that exist, so generated requests reach past the 404s
APP_ID = ENGINE.create_application("openapi").id
JOB_ID = ENGINE.create_job("memoryToMemory", application_id=APP_ID).id

SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: alternate generated ids with the real ones, so both the 404s and the handlers are tried
_REAL = itertools.cycle([True, False])


def test_document_is_served_without_a_token() -> None:
    with TestClient(APP) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document()


def test_document_is_valid_openapi() -> None:
    """schemathesis checks the document against the OpenAPI 3.0 meta-schema."""
    SCHEMA.validate()
    assert SCHEMA.raw_schema["openapi"].startswith("3.0")


def _app_paths() -> set[tuple[str, str]]:
    """(path, method) of every route the app serves, the version mounts expanded."""
    found: set[tuple[str, str]] = set()
    for route in APP.routes:
        if isinstance(route, Mount):
            for inner in route.routes:
                assert isinstance(inner, Route)
                found |= {(route.path + inner.path, m) for m in inner.methods or ()}
        elif isinstance(route, Route):
            found |= {(route.path, m) for m in route.methods or ()}
    return {(p, m.lower()) for p, m in found if m != "HEAD"}


def test_document_describes_every_route() -> None:
    doc = document()
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == _app_paths()
    ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for k, op in item.items()
        if k != "parameters"
    ]
    assert len(ids) == len(set(ids))
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "innerError"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or path in {"/healthz", "/openapi.json"}:
                continue
            assert "401" in op["responses"], (path, method)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/beta/servicePrincipals", {"displayName": "\ud800"}),
        (
            "PUT",
            f"/v1.0/servicePrincipals/{APP_ID}/synchronization/secrets",
            {"value": [{"key": "\udfff"}]},
        ),
        (
            "PATCH",
            f"/v1.0/servicePrincipals/{APP_ID}/synchronization/jobs/{JOB_ID}/schema",
            {"version": "\ud800"},
        ),
        (
            "POST",
            f"/beta/servicePrincipals/{APP_ID}/synchronization/jobs/{JOB_ID}/schema/parseExpression",
            {"expression": '"\ud800"'},
        ),
    ],
)
def test_lone_surrogate_is_a_400_not_a_500(method: str, path: str, body: dict[str, Any]) -> None:
    """Found probing beside schemathesis: JSON may escape a lone surrogate, which no UTF-8
    answer can hold; it was a 500."""
    raw = json.dumps(body).encode("ascii")  # "\ud800" stays an escape, as a client sends it
    with TestClient(APP, headers=AUTH, raise_server_exceptions=False) as client:
        response = client.request(method, path, content=raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalidRequest"


@SCHEMA.parametrize()
@settings(
    max_examples=5,
    deadline=2000,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_document(case: Any) -> None:
    params = case.path_parameters or {}
    if case.method != "DELETE" and next(_REAL):
        if "id" in params:
            params["id"] = APP_ID
        if "jobId" in params:
            params["jobId"] = JOB_ID
    case.call_and_validate(headers=AUTH, checks=CHECKS)
