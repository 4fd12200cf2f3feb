"""validateCredentials, provisionOnDemand, the schema's helper endpoints and
/auditLogs/provisioning, through Starlette's TestClient on both stores and both versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from connectors.memory import MemoryDirectory
from engine import ManualClock, StateStore, SyncEngine
from engine.service.api import create_app
from tests.api.test_api import AUTH, TOKEN, graph_error, new_app, new_job
from tests.conftest import user


@pytest.fixture
def engine(store: StateStore) -> SyncEngine:
    return SyncEngine(store, ManualClock())


@pytest.fixture
def client(engine: SyncEngine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, [TOKEN]), headers=AUTH) as made:
        yield made


@pytest.fixture(params=["/beta", "/v1.0"])
def v(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def attached_job(
    client: TestClient, engine: SyncEngine, v: str, users: int = 0
) -> tuple[str, str, MemoryDirectory, MemoryDirectory]:
    """A started memoryToMemory job with memory directories; returns its path and id."""
    app = new_app(client, v)
    job_id = new_job(client, v, app)
    source, target = MemoryDirectory(), MemoryDirectory()
    for n in range(users):
        source.put("User", f"u{n}", user(n))
    engine.attach(job_id, source, target)
    path = f"{v}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    assert client.post(f"{path}/start").status_code == 204
    return path, job_id, source, target


# ------------------------------------------------------------------- validateCredentials
def test_validate_credentials(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, _, source, target = attached_job(client, engine, v)
    ok = client.post(f"{job}/validateCredentials", json={"useSavedCredentials": True})
    assert ok.status_code == 204 and ok.content == b""
    target.bad_credentials = True
    message = graph_error(
        client.post(f"{job}/validateCredentials", json={"useSavedCredentials": True}),
        400,
        "CredentialsError",
    )
    assert "refused" in message
    target.bad_credentials = False
    source.unreachable = True
    graph_error(client.post(f"{job}/validateCredentials", json={}), 502, "UnreachableError")


def test_validate_credentials_never_echoes_secrets(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    job_id = new_job(client, v, app, templateId="ldapToScim")
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/{job_id}"
    secret = "hunter2-very-secret"
    credentials = [
        {"key": "SourceUrl", "value": "ldap://127.0.0.1:1"},
        {"key": "SourceUserName", "value": "cn=admin"},
        {"key": "SourcePassword", "value": secret},
        {"key": "SourceBaseDn", "value": "dc=example"},
        {"key": "BaseAddress", "value": "http://127.0.0.1:1/scim"},
        {"key": "SecretToken", "value": secret},
    ]
    response = client.post(f"{job}/validateCredentials", json={"credentials": credentials})
    assert response.status_code in (400, 502), response.text
    graph_error(response, response.status_code)
    assert secret not in response.text
    missing = client.post(f"{job}/validateCredentials", json={"credentials": credentials[:2]})
    assert "SourceBaseDn" in graph_error(missing, 400, "invalidRequest")
    assert secret not in missing.text


def test_validate_credentials_errors(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, _, _, _ = attached_job(client, engine, v)
    graph_error(client.post(f"{job}/validateCredentials"), 400, "invalidRequest")
    assert "credentials" in graph_error(
        client.post(f"{job}/validateCredentials", json={"credentials": "x"}), 400
    )
    assert "colour" in graph_error(
        client.post(f"{job}/validateCredentials", json={"colour": 1}), 400
    )
    graph_error(client.post(f"{job[: job.rindex('/')]}/nope/validateCredentials", json={}), 404)


# --------------------------------------------------------------------- provisionOnDemand
def _on_demand(anchor: str, type_name: str = "User", rule: str = "memoryToMemory") -> object:
    subject = {"objectId": anchor, "objectTypeName": type_name}
    return {"parameters": [{"ruleId": rule, "subjects": [subject]}]}


def test_provision_on_demand(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, job_id, _, target = attached_job(client, engine, v, users=2)
    response = client.post(f"{job}/provisionOnDemand", json=_on_demand("u1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"key", "value"}
    key, value = json.loads(body["key"]), json.loads(body["value"])
    assert key["result"] == "Success"
    assert value["action"] == "Create"
    assert value["sourceIdentity"] == {
        "id": "u1",
        "type": "User",
        "displayName": "User 1",
        "details": {"identifier": "user1@example.org"},
    }
    assert value["targetIdentity"]["displayName"] == "User 1"
    assert value["statusInfo"]["status"] == "success"
    created = {"displayName": "displayName", "oldValue": None, "newValue": "User 1"}
    assert created in value["modifiedProperties"]
    assert value["provisioningSteps"][0]["status"] == "success"
    assert len(target.list("User")) == 1  # only the one asked for

    again = client.post(
        f"{job}/provisionOnDemand", json=_on_demand("u1", "user", "memoryToMemory#V2")
    )
    assert again.status_code == 200
    assert json.loads(again.json()["key"]) == {
        "result": "Skipped",
        "details": {
            "errorCode": "RedundantExport",
            "errorMessage": "the target already matches the source",
        },
    }
    logs = engine.provisioning_logs(job_id)
    assert [r.anchor for r in logs] == ["u1", "u1"]


def test_provision_on_demand_errors(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, job_id, _, target = attached_job(client, engine, v, users=1)
    url = f"{job}/provisionOnDemand"
    graph_error(client.post(url), 400, "invalidRequest")
    assert "parameters" in graph_error(client.post(url, json={"parameters": []}), 400)
    two = _on_demand("u0")
    assert isinstance(two, dict)
    two["parameters"] = two["parameters"] * 2
    assert "one subject" in graph_error(client.post(url, json=two), 400)
    assert "objectId" in graph_error(
        client.post(url, json={"parameters": [{"ruleId": "x", "subjects": [{}]}]}), 400
    )
    assert "nope" in graph_error(client.post(url, json=_on_demand("u0", rule="nope")), 404)
    assert "Printer" in graph_error(client.post(url, json=_on_demand("u0", "Printer")), 400)
    target.bad_credentials = True
    graph_error(client.post(url, json=_on_demand("u0")), 400, "CredentialsError")
    assert target.list("User") == {}
    assert engine.provisioning_logs(job_id) == []


# -------------------------------------------------------------------------- schema helpers
def test_directories_functions_operators(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, _, _, _ = attached_job(client, engine, v)
    directories = client.get(f"{job}/schema/directories")
    assert directories.status_code == 200
    assert directories.json()["@odata.context"].endswith("/schema/directories")
    assert [d["name"] for d in directories.json()["value"]] == ["Memory Source", "Memory Target"]
    listed = directories.json()["value"]
    assert {d.pop("@odata.type") for d in listed} == {"#microsoft.graph.directoryDefinition"}
    assert listed == client.get(f"{job}/schema").json()["directories"]

    names = {f["name"]: f for f in client.get(f"{job}/schema/functions").json()["value"]}
    assert {"Replace", "Join", "Switch"} <= set(names)
    assert {"name", "required", "allowMultipleOccurrences", "type"} <= set(
        names["Replace"]["parameters"][0]
    )
    operators = client.get(f"{job}/schema/filterOperators").json()["value"]
    assert "EQUALS" in {o["name"] for o in operators}
    assert {"name", "arity", "multivaluedComparisonType", "supportedAttributeTypes"} <= set(
        operators[0]
    )


def test_parse_expression(client: TestClient, engine: SyncEngine, v: str) -> None:
    job, _, _, _ = attached_job(client, engine, v)
    url = f"{job}/schema/parseExpression"
    body = {
        "expression": 'Replace([preferredLanguage], "-", , , "_", ,  )',
        "targetAttributeDefinition": None,
        "testInputObject": {
            "definition": None,
            "properties": [
                {"key": "preferredLanguage", "value": "EN-US"},
                {
                    "key": "appRoleAssignments",
                    "value@odata.type": "#Collection(String)",
                    "value": ["Default Assignment"],
                },
            ],
        },
    }
    response = client.post(url, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["parsingSucceeded"] is True and result["evaluationSucceeded"] is True
    assert result["evaluationResult"] == ["EN_US"]
    assert result["error"] is None
    assert result["parsedExpression"]["name"] == "Replace"

    bad = client.post(url, json={"expression": 'Join(",", [givenName]'}).json()
    assert bad["parsingSucceeded"] is False
    assert bad["error"]["code"] == "ExpressionParsingFailed"

    nested = "[x]"  # the attack of issue 20: each level 100 times longer
    codes = []
    for _ in range(5):
        nested = f'Replace({nested}, "a", , , "{"a" * 100}", , )'
        answer = client.post(url, json={"expression": nested, **_input(x="a" * 100)}).json()
        codes.append(answer["error"] and answer["error"]["code"])
    assert codes == [None, None, *["ExpressionEvaluationFailed"] * 2, "ExpressionParsingFailed"]
    assert "times longer" in answer["error"]["message"]

    graph_error(client.post(url), 400)
    assert "expression" in graph_error(client.post(url, json={"expression": 3}), 400)
    assert "colour" in graph_error(client.post(url, json={"expression": "1", "colour": 1}), 400)
    bad_input = {
        "expression": "[a]",
        "testInputObject": {"properties": [{"key": "a", "value": {}}]},
    }
    assert "properties[0]" in graph_error(client.post(url, json=bad_input), 400)


def _input(**values: str) -> dict[str, Any]:
    properties = [{"key": k, "value": v} for k, v in values.items()]
    return {"testInputObject": {"definition": None, "properties": properties}}


def test_schema_helpers_unknown_job_is_404(client: TestClient, v: str) -> None:
    app = new_app(client, v)
    job = f"{v}/servicePrincipals/{app}/synchronization/jobs/nope"
    for path in ("directories", "functions", "filterOperators"):
        graph_error(client.get(f"{job}/schema/{path}"), 404)
    graph_error(client.post(f"{job}/schema/parseExpression", json={"expression": "1"}), 404)


# ------------------------------------------------------------------------------ auditLogs
def _two_jobs(client: TestClient, engine: SyncEngine, v: str) -> tuple[str, str, MemoryDirectory]:
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    _, first, source, _ = attached_job(client, engine, v, users=3)
    engine.run_cycle(first)
    clock.advance(timedelta(hours=1))
    _, second, _, _ = attached_job(client, engine, v, users=2)
    engine.run_cycle(second)
    source.put("User", "u0", user(0, department="Ops"))
    clock.advance(timedelta(hours=1))
    engine.run_cycle(first)
    return first, second, source


def test_audit_logs(client: TestClient, engine: SyncEngine, v: str) -> None:
    first, second, _ = _two_jobs(client, engine, v)
    url = f"{v}/auditLogs/provisioning"
    everything = client.get(url)
    assert everything.status_code == 200, everything.text
    records = everything.json()["value"]
    assert everything.json()["@odata.context"].endswith("$metadata#auditLogs/provisioning")
    assert len(records) == 6 and "@odata.nextLink" not in everything.json()
    times = [r["activityDateTime"] for r in records]
    assert times == sorted(times, reverse=True)
    newest = records[0]
    assert newest["jobId"] == first and newest["provisioningAction"] == "update"
    assert newest["provisioningStatusInfo"] == {"status": "success", "errorInformation": None}
    assert newest["sourceIdentity"] == {
        "id": "u0",
        "displayName": "User 0",
        "identityType": "User",
        "details": {"identifier": "user0@example.org"},
    }
    assert newest["targetIdentity"]["id"] and newest["targetIdentity"]["identityType"] == "User"
    assert newest["targetIdentity"]["displayName"] == "User 0"
    assert newest["modifiedProperties"] == [
        {"displayName": "department", "oldValue": "Sales", "newValue": "Ops"}
    ]
    assert set(newest) >= {"id", "cycleId", "changeId"}
    assert len({r["id"] for r in records}) == 6

    def ids(query: str) -> list[str]:
        response = client.get(url, params={"$filter": query})
        assert response.status_code == 200, response.text
        return [r["jobId"] for r in response.json()["value"]]

    assert ids(f"jobId eq '{second}'") == [second, second]
    assert ids(f"jobid eq '{first}' and action eq 'Create'") == [first] * 3
    assert ids(f"jobId eq '{first}' and provisioningAction eq 'update'") == [first]
    assert ids("provisioningStatusInfo/status eq 'success'") == ids("status eq 'success'")
    assert len(ids("status eq 'failure'")) == 0
    when = records[0]["activityDateTime"]
    assert ids(f"activityDateTime ge {when}") == [first]
    oldest = records[-1]["activityDateTime"]
    assert len(ids(f"activityDateTime le {when} AND activityDateTime ge {oldest}")) == 6
    assert len(ids(f"activityDateTime lt {when}")) == 5
    assert ids("jobId eq 'it''s not there'") == []
    # a person looked up by name or identifier, as `syncjob logs --user` asks (issue 18)
    assert ids("sourceIdentity/displayName eq 'user 0' and action eq 'update'") == [first]
    anyone = "(contains(sourceIdentity/displayName, 'USER 1') or targetIdentity/id eq 'none')"
    assert len(ids(anyone)) == 2  # User 1 was created by both jobs
    assert ids(f"{anyone} and jobId eq '{second}'") == [second]
    assert len(ids(f"jobId eq '{first}' or jobId eq '{second}'")) == 6
    assert len(ids("contains(sourceIdentity/details/identifier, '@example.org')")) == 6


def test_audit_logs_paging(client: TestClient, engine: SyncEngine, v: str) -> None:
    _two_jobs(client, engine, v)
    url = f"{v}/auditLogs/provisioning"
    whole = [r["id"] for r in client.get(url).json()["value"]]
    seen: list[str] = []
    response = client.get(url, params={"$top": "4", "$filter": "status eq 'success'"})
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        pages += 1
        seen += [r["id"] for r in response.json()["value"]]
        link = response.json().get("@odata.nextLink")
        if link is None:
            break
        query = parse_qs(urlsplit(link).query)
        assert query["$top"] == ["4"] and query["$filter"] == ["status eq 'success'"]
        assert urlsplit(link).path == url
        response = client.get(link)
    assert pages == 2 and seen == whole
    assert len(client.get(url, params={"$top": "6"}).json()["value"]) == 6
    assert "@odata.nextLink" not in client.get(url, params={"$top": "6"}).json()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"$filter": "colour eq 'red'"}, "colour"),
        ({"$filter": "jobId eq 'x' xor status eq 'y'"}, "xor status"),
        ({"$filter": "(jobId eq 'x' or status eq 'y'"}, "not closed"),
        ({"$filter": "contains(activityDateTime, '2024')"}, "not contains"),
        ({"$filter": "sourceIdentity/displayName gt 'a'"}, "contains()"),
        ({"$filter": "jobId eq 'x' and"}, "ends"),
        ({"$filter": "jobId gt 'x'"}, "gt"),
        ({"$filter": "jobId eq x"}, "quoted"),
        ({"$filter": "status eq 'open"}, "not closed"),
        ({"$filter": "activityDateTime ge yesterday"}, "yesterday"),
        ({"$filter": "activityDateTime ge 2024-13-40T00:00:00Z"}, "date-time"),
        ({"$filter": "activityDateTime ge 2024-01-01T00:00:00"}, "time zone"),
        ({"$filter": ""}, "empty"),
        ({"$top": "0"}, "$top"),
        ({"$top": "1001"}, "$top"),
        ({"$top": "ten"}, "$top"),
        ({"$skiptoken": "garbage!"}, "$skiptoken"),
        ({"$orderby": "id"}, "$orderby"),
    ],
)
def test_audit_logs_bad_queries_are_400(
    client: TestClient, v: str, params: dict[str, str], named: str
) -> None:
    response = client.get(f"{v}/auditLogs/provisioning", params=params)
    assert named in graph_error(response, 400, "invalidRequest")


def test_audit_logs_need_a_token(engine: SyncEngine, v: str) -> None:
    with TestClient(create_app(engine, [TOKEN])) as anonymous:
        graph_error(anonymous.get(f"{v}/auditLogs/provisioning"), 401)
