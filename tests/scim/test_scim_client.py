"""ScimClient against the real server, and through the fault proxy for what it cannot do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from connectors.base import CredentialsError, TransientError, UnreachableError
from connectors.scim.client import ScimClient, ScimNotFound, ScimRefused
from tests.scim.faults import FaultProxy
from tests.scim.server import USER_SCHEMA, ScimServer


@pytest.fixture
def proxy(scim_server: ScimServer) -> Iterator[FaultProxy]:
    with FaultProxy(scim_server.url) as made:
        yield made


def _client(url: str, server: ScimServer, **options: float) -> ScimClient:
    return ScimClient(url, server.token.reveal(), **options)  # type: ignore[arg-type]


def test_crud_and_refusals(scim_server: ScimServer) -> None:
    client = _client(scim_server.url, scim_server)
    body = {"schemas": [USER_SCHEMA], "userName": "client-crud@example.org"}
    created = client.post("/Users", body)
    path = f"/Users/{created['id']}"
    assert client.get(path)["userName"] == "client-crud@example.org"
    with pytest.raises(ScimRefused) as refused:
        client.post("/Users", body)
    assert (refused.value.status, refused.value.scim_type) == (409, "uniqueness")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "C"}],
    }
    assert client.patch(path, patch) is None
    client.delete(path)
    with pytest.raises(ScimNotFound):
        client.get(path)
    client.close()


def test_wrong_token_is_a_credentials_error_that_hides_it(scim_server: ScimServer) -> None:
    client = ScimClient(scim_server.url, "not-the-token-4711")
    with pytest.raises(CredentialsError, match="token") as refused:
        client.get("/Users")
    assert "not-the-token-4711" not in str(refused.value) + repr(client)


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnreachableError, match="cannot connect"):
        ScimClient(f"http://127.0.0.1:{port}/v2", "t").get("/Users")


def test_throttling_carries_retry_after(proxy: FaultProxy, scim_server: ScimServer) -> None:
    client = _client(proxy.url, scim_server)
    proxy.fail(429, 1, retry_after=7)
    with pytest.raises(TransientError) as throttled:
        client.get("/Users")
    assert throttled.value.retry_after == 7.0
    proxy.fail(503, 1, retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    with pytest.raises(TransientError) as busy:
        client.get("/Users")
    assert busy.value.retry_after is not None and busy.value.retry_after > 3600
    proxy.fail(500, 1)
    with pytest.raises(TransientError) as failed:
        client.get("/Users")
    assert failed.value.retry_after is None


def test_timeouts_and_drops(proxy: FaultProxy, scim_server: ScimServer) -> None:
    client = _client(proxy.url, scim_server, timeout=0.3)
    proxy.delay(2.0, 1)
    with pytest.raises(TransientError, match="timeout"):
        client.get("/Users")
    proxy.drop(1)
    assert client.get("/Users")["totalResults"] >= 0  # a GET is sent again once
    proxy.drop(2)
    with pytest.raises(TransientError, match="dropped"):
        client.get("/Users")
    proxy.drop(1)
    with pytest.raises(TransientError, match="dropped"):
        client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "never-sent"})


def test_sessions_are_bounded_by_what_is_in_flight_not_by_threads(
    scim_server: ScimServer,
) -> None:
    """The export pool makes its threads per page (issue #21, point 3): 1,000 short-lived
    threads, four at a time, as 1,000 cycles' export pages make them, leave the client with
    at most four sessions (it held one per thread that ever sent: 123 after 40 cycles)."""
    client = _client(scim_server.url, scim_server)
    created = client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "sessions@example"})
    path = f"/Users/{created['id']}"
    failures: list[BaseException] = []

    def send() -> None:
        try:
            client.get(path)
        except BaseException as error:  # noqa: BLE001 (shown by the assertion below)
            failures.append(error)

    for _ in range(250):
        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, failures[:1]
    assert 1 <= client.session_count <= 4
    client.delete(path)
    client.close()
    assert client.session_count == 0
