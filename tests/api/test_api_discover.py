"""POST …/schema/directories/{directoryId}/discover through the API, on both stores and both
versions: an ldapToScim job reading a real slapd's subschema and a real SCIM server's
/Schemas, and every refusal (which changes nothing and shows no secret)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.memory import MemoryDirectory
from engine import SyncEngine
from engine.model.converter import format_datetime
from tests.api.test_api import client, engine, graph_error, new_app, new_job, plain, v
from tests.ldap.conftest import slapd_source
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd
from tests.scim.conftest import scim_server
from tests.scim.server import ENTERPRISE_SCHEMA, ScimServer

__all__ = ["client", "engine", "scim_server", "slapd_source", "v"]  # fixtures


def _secrets(slapd: Slapd, scim: ScimServer) -> list[dict[str, str]]:
    return [
        {"key": "SourceUrl", "value": slapd.url},
        {"key": "SourceUserName", "value": ROOT_DN},
        {"key": "SourcePassword", "value": slapd.password.reveal()},
        {"key": "SourceBaseDn", "value": BASE_DN},
        {"key": "SourceDeltaMode", "value": "timestamp"},
        {"key": "BaseAddress", "value": scim.url},
        {"key": "SecretToken", "value": scim.token.reveal()},
    ]


def _ldap_to_scim(client: TestClient, v: str, secrets: list[dict[str, str]] | None) -> str:
    app = new_app(client, v)
    if secrets is not None:
        response = client.put(
            f"{v}/servicePrincipals/{app}/synchronization/secrets", json={"value": secrets}
        )
        assert response.status_code == 204, response.text
    job_id = new_job(client, v, app, templateId="ldapToScim")
    return f"{v}/servicePrincipals/{app}/synchronization/jobs/{job_id}"


def _objects(directory: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {o["name"]: {a["name"]: a for a in o["attributes"]} for o in directory["objects"]}


def test_discover_ldap_and_scim(
    client: TestClient, engine: SyncEngine, v: str, slapd_source: Slapd, scim_server: ScimServer
) -> None:
    secrets = _secrets(slapd_source, scim_server)
    job = _ldap_to_scim(client, v, secrets)
    before = client.get(f"{job}/schema").json()
    template_ldap = _objects(before["directories"][0])

    response = client.post(f"{job}/schema/directories/ldap-source/discover")
    assert response.status_code == 200, response.text
    ldap = response.json()
    assert ldap.pop("@odata.type") == "#microsoft.graph.directoryDefinition"
    assert ldap.pop("@odata.context").endswith("/schema/directories/$entity")
    assert ldap["id"] == "ldap-source" and ldap["name"] == "LDAP Source"
    assert "AttributeNames" in ldap["discoverabilities"]
    assert "ReferenceAttributes" in ldap["discoverabilities"]
    assert ldap["discoveryDateTime"] == format_datetime(engine.clock.now())
    assert ldap["version"]
    found = _objects(ldap)
    for name, attributes in template_ldap.items():  # the template's definitions, untouched
        assert list(found[name])[: len(attributes)] == list(attributes)
        assert all(found[name][a] == attributes[a] for a in attributes)
    user = found["User"]
    assert user["jpegPhoto"]["type"] == "Binary" and user["jpegPhoto"]["multivalued"]
    assert user["manager"]["type"] == "Reference" and not user["manager"]["multivalued"]
    assert user["mail"]["multivalued"] and user["secretary"]["type"] == "Reference"
    assert "entryUUID" in user and "objectClass" in user
    assert "member" in found["Group"] and "owner" in found["Group"]

    after = client.get(f"{job}/schema").json()
    assert after["directories"][0] == ldap  # stored
    assert after["directories"][1] == before["directories"][1]
    assert after["synchronizationRules"] == before["synchronizationRules"]
    assert after["version"] == "1"

    scim = client.post(f"{job}/schema/directories/scim-target/discover")
    assert scim.status_code == 200, scim.text
    target = _objects(scim.json())
    assert target["User"][f"{ENTERPRISE_SCHEMA}:manager"]["type"] == "Reference"
    assert f"{ENTERPRISE_SCHEMA}:costCenter" in target["User"]
    assert target["Group"]["members"]["multivalued"]
    assert client.get(f"{job}/schema").json()["version"] == "2"

    again = client.post(f"{job}/schema/directories/LDAP Source/discover")  # by name too
    assert again.status_code == 200
    assert plain(again.json()) == ldap  # the clock did not move: nothing new, same answer
    assert client.get(f"{job}/schema").json()["version"] == "2"  # nothing added: no bump
    for text in (response.text, scim.text, again.text):
        assert all(s["value"] not in text for s in secrets if len(s["value"]) > 12)


def test_discover_refusals_change_nothing(client: TestClient, engine: SyncEngine, v: str) -> None:
    app = new_app(client, v)
    job_id = new_job(client, v, app)
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    schema = client.get(f"{job}/schema").json()
    message = graph_error(
        client.post(f"{job}/schema/directories/memory-target/discover"),
        400,
        "DiscoveryNotSupported",
    )
    assert "memory-target" in message
    engine.attach(job_id, MemoryDirectory(), MemoryDirectory())
    message = graph_error(
        client.post(f"{job}/schema/directories/memory-source/discover"),
        400,
        "DiscoveryNotSupported",
    )
    assert "memory-source" in message and "source" in message
    assert "nope" in graph_error(
        client.post(f"{job}/schema/directories/nope/discover"), 404, "itemNotFound"
    )
    graph_error(client.post(f"{job[: job.rindex('/')]}/nope/schema/directories/x/discover"), 404)
    graph_error(client.get(f"{job}/schema/directories/memory-source/discover"), 405)
    assert client.get(f"{job}/schema").json() == schema


def test_discover_without_secrets_or_directory(client: TestClient, v: str) -> None:
    job = _ldap_to_scim(client, v, None)
    schema = client.get(f"{job}/schema").json()
    message = graph_error(
        client.post(f"{job}/schema/directories/ldap-source/discover"), 400, "invalidRequest"
    )
    assert "SourceUrl" in message
    assert client.get(f"{job}/schema").json() == schema

    secret = "hunter2-very-secret"
    down = [
        {"key": "SourceUrl", "value": "ldap://127.0.0.1:1"},
        {"key": "SourceUserName", "value": "cn=admin"},
        {"key": "SourcePassword", "value": secret},
        {"key": "SourceBaseDn", "value": "dc=example"},
        {"key": "BaseAddress", "value": "http://127.0.0.1:1/scim"},
        {"key": "SecretToken", "value": secret},
    ]
    job = _ldap_to_scim(client, v, down)
    schema = client.get(f"{job}/schema").json()
    for directory in ("ldap-source", "scim-target"):
        response = client.post(f"{job}/schema/directories/{directory}/discover")
        graph_error(response, 502, "UnreachableError")
        assert secret not in response.text
    assert client.get(f"{job}/schema").json() == schema


@pytest.mark.parametrize("prefix", ["/beta", "/v1.0"])
def test_discover_is_in_the_openapi_document(client: TestClient, prefix: str) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    path = (
        f"{prefix}/servicePrincipals/{{id}}/synchronization/jobs/{{jobId}}"
        "/schema/directories/{directoryId}/discover"
    )
    assert set(paths[path]) >= {"post", "parameters"}
