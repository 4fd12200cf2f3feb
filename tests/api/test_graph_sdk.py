"""The official Microsoft Graph beta SDK (``msgraph_beta``, kiota) against a real ``syncjob
serve`` process on 127.0.0.1: the job lifecycle and the schema, as Graph's own client sends
them. Skipped without msgraph-beta-sdk, except under ``CI=true``, where that is a failure."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import requests

from tests.api.test_cli_client import TOKEN, daemon

__all__ = ["daemon"]  # the module fixture: a `syncjob serve` subprocess
T = TypeVar("T")
# the generated code warns about its own request-configuration classes on every call
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph_beta"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

try:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from msgraph_beta import GraphRequestAdapter, GraphServiceClient
    from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph_beta.generated.models.synchronization_job import SynchronizationJob
    from msgraph_beta.generated.models.synchronization_job_restart_criteria import (
        SynchronizationJobRestartCriteria,
    )
    from msgraph_beta.generated.models.synchronization_job_restart_scope import (
        SynchronizationJobRestartScope,
    )
    from msgraph_beta.generated.models.synchronization_status_code import (
        SynchronizationStatusCode,
    )
    from msgraph_beta.generated.service_principals.item.synchronization.jobs.item.restart.restart_post_request_body import (  # noqa: E501
        RestartPostRequestBody,
    )
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("msgraph-beta-sdk is not installed", allow_module_level=True)


class StaticToken(AccessTokenProvider):  # type: ignore[misc]
    """The daemon's bearer token, for 127.0.0.1 only."""

    async def get_authorization_token(self, uri: str, additional: Any = None) -> str:
        return TOKEN

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator(["127.0.0.1"])


#: one loop for the module: the SDK's httpx client keeps connections bound to the loop
LOOP = asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return LOOP.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def graph(daemon: str) -> Iterator[tuple[Any, str]]:
    """The SDK's jobs request builder of a new servicePrincipal (made over plain HTTP)."""
    made = requests.post(
        f"{daemon}/beta/servicePrincipals",
        json={"displayName": "sdk"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    app = made.json()["id"]
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()))
    adapter.base_url = f"{daemon}/beta"
    client = GraphServiceClient(request_adapter=adapter)
    yield client.service_principals.by_service_principal_id(app).synchronization.jobs, app
    run(adapter._http_client.aclose())


def test_job_lifecycle_through_the_sdk(graph: tuple[Any, str]) -> None:
    jobs, _ = graph
    assert run(jobs.get()).value == []

    created = run(jobs.post(SynchronizationJob(template_id="memoryToMemory")))
    assert created.id and created.id.startswith("memoryToMemory.")
    assert created.template_id == "memoryToMemory"
    job = jobs.by_synchronization_job_id(created.id)

    listed = run(jobs.get()).value
    assert [j.id for j in listed] == [created.id]
    got = run(job.get())
    assert got.id == created.id
    assert got.schedule.interval is not None

    assert run(job.start.post()) is None
    assert run(job.pause.post()) is None
    assert run(job.get()).status.code == SynchronizationStatusCode.Paused
    criteria = SynchronizationJobRestartCriteria(reset_scope=SynchronizationJobRestartScope.Full)
    assert run(job.restart.post(RestartPostRequestBody(criteria=criteria))) is None

    assert run(job.delete()) is None
    assert run(jobs.get()).value == []
    with pytest.raises(ODataError) as missing:
        run(job.get())
    assert missing.value.response_status_code == 404
    assert missing.value.error.code == "itemNotFound"


def test_schema_read_and_replace_through_the_sdk(graph: tuple[Any, str]) -> None:
    jobs, _ = graph
    created = run(jobs.post(SynchronizationJob(template_id="memoryToMemory")))
    job = jobs.by_synchronization_job_id(created.id)
    schema = run(job.schema.get())
    rules = schema.synchronization_rules
    assert rules and rules[0].object_mappings
    assert schema.directories
    mapping = rules[0].object_mappings[0]
    kept = len(mapping.attribute_mappings)
    mapping.attribute_mappings = mapping.attribute_mappings[:-1]
    # the SDK has no schema.put(): it updates with PATCH, which the daemon takes as a replace
    assert run(job.schema.patch(schema)) is None
    again = run(job.schema.get())
    assert len(again.synchronization_rules[0].object_mappings[0].attribute_mappings) == kept - 1
    run(job.delete())


def test_a_partial_schema_patch_keeps_the_rest(daemon: str, graph: tuple[Any, str]) -> None:
    jobs, app = graph
    created = run(jobs.post(SynchronizationJob(template_id="memoryToMemory")))
    url = f"{daemon}/beta/servicePrincipals/{app}/synchronization/jobs/{created.id}/schema"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = requests.get(url, headers=auth, timeout=10).json()
    rules = before["synchronizationRules"]
    rules[0]["objectMappings"] = rules[0]["objectMappings"][:1]
    sent = {"synchronizationRules": rules}
    assert requests.patch(url, json=sent, headers=auth, timeout=10).status_code == 204
    after = requests.get(url, headers=auth, timeout=10).json()
    assert after["directories"] == before["directories"]
    assert len(after["synchronizationRules"][0]["objectMappings"]) == 1
    bad = requests.patch(url, data=b"[1]", headers=auth, timeout=10)
    assert bad.status_code == 400
    run(jobs.by_synchronization_job_id(created.id).delete())
