"""The SCIM test server and the fault proxy do what the connector tests rely on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.scim.faults import FaultProxy
from tests.scim.server import ENTERPRISE_SCHEMA, ScimServer

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_answers_with_the_token_and_refuses_without(scim_server: ScimServer) -> None:
    assert scim_server.url.startswith("http://127.0.0.1:") and scim_server.url.endswith("/v2")
    assert scim_server.request("GET", "/Users", params={"count": 1}).status_code == 200
    assert scim_server.request("GET", "/Users", authorized=False).status_code == 401
    wrong = requests.get(
        scim_server.url + "/Users", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401


def test_the_token_shows_nowhere(scim_server: ScimServer) -> None:
    token = scim_server.token.reveal()
    assert token not in repr(scim_server) and token not in f"{scim_server.token}"
    assert scim_server.pid is not None
    with open(f"/proc/{scim_server.pid}/cmdline", "rb") as cmdline:
        assert token.encode() not in cmdline.read()
    with open(f"/proc/{scim_server.pid}/environ", "rb") as environ:
        assert token.encode() not in environ.read()


def test_post_get_patch_delete(scim_server: ScimServer) -> None:
    created = scim_server.create(
        "Users",
        {
            "userName": "fixture-crud@example.org",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            ENTERPRISE_SCHEMA: {"department": "R&D"},
        },
    )
    path = f"/Users/{created['id']}"
    got = scim_server.request("GET", path).json()
    assert got["userName"] == "fixture-crud@example.org"
    assert got[ENTERPRISE_SCHEMA]["department"] == "R&D"
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "name.givenName", "value": "Augusta"}],
    }
    assert scim_server.request("PATCH", path, patch).status_code == 204
    assert scim_server.request("GET", path).json()["name"]["givenName"] == "Augusta"
    group = scim_server.create(
        "Groups", {"displayName": "fixture-crud", "members": [{"value": created["id"]}]}
    )
    assert [m["value"] for m in group["members"]] == [created["id"]]
    assert scim_server.request("DELETE", path).status_code == 204
    assert scim_server.request("GET", path).status_code == 404
    assert scim_server.request("DELETE", f"/Groups/{group['id']}").status_code == 204


def test_requests_are_recorded_without_headers(
    make_scim_server: Callable[[str], ScimServer],
) -> None:
    server = make_scim_server("recorded")
    created = server.create("Users", {"userName": "rec@example.org"})
    server.request("GET", "/Users", params={"filter": 'userName eq "rec@example.org"'})
    server.request("GET", "/Users", authorized=False)
    seen = server.requests()
    assert [(r.method, r.path, r.status) for r in seen] == [
        ("POST", "/v2/Users", 201),
        ("GET", "/v2/Users", 200),
        ("GET", "/v2/Users", 401),
    ]
    assert seen[0].body["userName"] == "rec@example.org"
    assert "rec%40example.org" in seen[1].query and seen[1].body is None
    assert server.token.reveal() not in server.request_log.read_text()
    server.clear_requests()
    server.request("GET", f"/Users/{created['id']}")
    assert [r.path for r in server.requests()] == [f"/v2/Users/{created['id']}"]


def test_processes_are_gone_after_stop(make_scim_server: Callable[[str], ScimServer]) -> None:
    server = make_scim_server("stopped")
    pid, url = server.pid, server.url
    assert pid is not None and server.running()
    server.stop()
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/ServiceProviderConfig", timeout=5)
    assert not server.directory.exists()


@pytest.fixture
def proxy(scim_server: ScimServer) -> Iterator[FaultProxy]:
    with FaultProxy(scim_server.url) as made:
        yield made


def _get(proxy: FaultProxy, server: ScimServer, timeout: float = 10) -> requests.Response:
    return requests.get(
        proxy.url + "/ServiceProviderConfig",
        headers={"Authorization": f"Bearer {server.token.reveal()}"},
        timeout=timeout,
    )


def test_proxy_forwards_and_injects_throttling(proxy: FaultProxy, scim_server: ScimServer) -> None:
    assert _get(proxy, scim_server).status_code == 200
    proxy.fail(429, 2, retry_after=7)
    proxy.fail(503, 1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    first, second, third = (_get(proxy, scim_server) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert second.status_code == 429
    assert third.status_code == 503
    assert third.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert _get(proxy, scim_server).status_code == 200
    assert proxy.seen == 5


def test_proxy_delays_and_drops(proxy: FaultProxy, scim_server: ScimServer) -> None:
    proxy.delay(2.0, 1)
    with pytest.raises(requests.Timeout):
        _get(proxy, scim_server, timeout=0.3)
    proxy.drop(1)
    with pytest.raises(requests.ConnectionError):
        _get(proxy, scim_server)
    proxy.fail(503, 5)
    proxy.clear()
    assert _get(proxy, scim_server).status_code == 200
