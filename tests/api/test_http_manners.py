"""The HTTP layer's manners under hostile or careless clients (#20 points 5 and 7): bodies and
``$filter`` bounded and parsed without stalling the event loop."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import structlog
from starlette.testclient import TestClient

from engine import ConfigurationError, ManualClock, SyncEngine, SystemClock
from engine.service.api import create_app
from engine.service.api._bodies import MAX_BODY
from engine.service.serve import TOKENS_ENV, load_config
from tests.api.daemon import start_daemon
from tests.api.test_api import AUTH, TOKEN, graph_error, new_app, new_job
from tests.processes import tail, terminate

V = "/v1.0"
CLOCK = SystemClock()


def _client(tmp_path: Path) -> TestClient:
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    return TestClient(create_app(engine, [TOKEN]), headers=AUTH)


def _expression_body(size: int) -> bytes:
    """A parseExpression request of about ``size`` bytes: some 60,000 test inputs."""
    value = "v" * 40
    item = len(json.dumps({"key": "k000000", "value": value})) + 2
    properties = [{"key": f"k{i:06d}", "value": value} for i in range(size // item)]
    body = {"expression": "[k000000]", "testInputObject": {"properties": properties}}
    return json.dumps(body).encode()


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        app = new_app(client, V)
        job = new_job(client, V, app)
        url = f"{V}/servicePrincipals/{app}/synchronization/jobs/{job}/schema"
        big = b" " * (MAX_BODY + 1)
        graph_error(client.put(url, content=big), 413, "requestEntityTooLarge")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(MAX_BODY // 65536 + 1):
                yield b" " * 65536

        graph_error(client.put(url, content=chunks()), 413, "requestEntityTooLarge")
        assert client.get(url).status_code == 200  # the schema is unchanged, the app fine


def test_a_long_or_deep_filter_is_400_at_once(tmp_path: Path) -> None:
    """Was: a slice of the unread text per clause (quadratic) and a RecursionError (500)."""
    with _client(tmp_path) as client:
        url = f"{V}/auditLogs/provisioning"
        long = " or ".join(["jobId eq 'x'"] * 2000)  # 32 kB (httpx sends 64 kB, encoded)
        started = CLOCK.monotonic()
        message = graph_error(client.get(url, params={"$filter": long}), 400, "invalidRequest")
        assert "longer than 4096 characters" in message
        assert CLOCK.monotonic() - started < 0.5
        deep = "(" * 400 + "jobId eq 'x'" + ")" * 400
        message = graph_error(client.get(url, params={"$filter": deep}), 400)
        assert "parentheses nest deeper than 32" in message
        fine = " or ".join(["jobId eq 'x'"] * 250)  # 4,000 characters: under the limit
        assert client.get(url, params={"$filter": fine}).json()["value"] == []


def test_healthz_answers_within_100_ms_while_three_large_bodies_are_parsed(
    tmp_path: Path,
) -> None:
    """The daemon itself (uvicorn, its event loop): three bodies just under the limit, sent
    at once, are parsed while /healthz is probed. Was: parsed on the loop, /healthz stalled
    for the whole parse (about a second each for bodies of this shape)."""
    env = {**os.environ, TOKENS_ENV: TOKEN}
    process, url = start_daemon(
        tmp_path / "s.db", tmp_path / "serve.log", env, ["--allow-weak-tokens"]
    )
    try:
        session = requests.Session()
        session.headers.update(AUTH)
        made = session.post(f"{url}{V}/servicePrincipals", json={}, headers={"Host": "x.example"})
        app = made.json()["id"]  # its Location names where uvicorn is bound, not the Host
        assert made.headers["Location"] == f"{url}{V}/servicePrincipals/{app}"
        made = session.post(
            f"{url}{V}/servicePrincipals/{app}/synchronization/jobs",
            json={"templateId": "memoryToMemory"},
        )
        job = made.json()["id"]
        target = f"{url}{V}/servicePrincipals/{app}/synchronization/jobs/{job}"
        body = _expression_body(MAX_BODY - 16384)
        assert MAX_BODY - 65536 < len(body) <= MAX_BODY
        answers: list[int] = []

        def send() -> None:
            answers.append(
                requests.post(
                    f"{target}/schema/parseExpression", data=body, headers=AUTH, timeout=60
                ).status_code
            )

        senders = [threading.Thread(target=send) for _ in range(3)]
        probe = requests.Session()
        probe.get(f"{url}/healthz", timeout=5)  # the connection made before timing
        for sender in senders:
            sender.start()
        waits = []
        while any(s.is_alive() for s in senders):
            started = CLOCK.monotonic()
            assert probe.get(f"{url}/healthz", timeout=5).status_code == 200
            waits.append(CLOCK.monotonic() - started)
            CLOCK.sleep(0.02)
        for sender in senders:
            sender.join()
        assert answers == [200, 200, 200], tail(tmp_path / "serve.log")
        assert len(waits) >= 10, waits  # the parsing took a while: /healthz was asked often
        # Within 100 ms, but for one probe in twenty: on a shared machine (the suite's has 2
        # cores) the OS may deschedule the parsing thread while it holds the GIL, and the loop
        # waits for it however short its turn. Parsed on the loop, a probe waited seconds.
        slow = [wait for wait in waits if wait >= 0.1]
        assert len(slow) <= len(waits) // 20 and max(waits) < 0.3, sorted(waits)[-5:]
    finally:
        terminate(process)


def test_a_wrong_method_is_405_with_allow_naming_every_method_of_the_path(
    tmp_path: Path,
) -> None:
    """Was: no Allow header (and Starlette's, when given, named only the first route's)."""
    with _client(tmp_path) as client:
        app = new_app(client, V)
        cases = {
            f"{V}/servicePrincipals": {"GET", "HEAD", "POST"},
            f"{V}/servicePrincipals/{app}/synchronization/secrets": {"GET", "HEAD", "PUT", "PATCH"},
            "/healthz": {"GET", "HEAD"},
        }
        for path, methods in cases.items():
            response = client.request("TRACE", path)
            graph_error(response, 405, "methodNotAllowed")
            assert set(response.headers["Allow"].split(", ")) == methods, path


def test_query_option_names_in_any_case_are_honoured_or_refused_never_ignored(
    tmp_path: Path,
) -> None:
    """Was: ``$FILTER`` passed the unknown-option check (lower-cased) and was then not read:
    every record answered. Other routes ignored a ``$filter`` and answered every item."""
    with _client(tmp_path) as client:
        audit = f"{V}/auditLogs/provisioning"
        for name, value, says in [
            ("$FILTER", "bogus", "$filter: cannot read"),
            ("$Top", "0", "$top must be"),
            ("$SKIPTOKEN", "x", "$skiptoken is not valid"),
        ]:
            message = graph_error(client.get(audit, params={name: value}), 400)
            assert message.startswith(says), message
        assert client.get(audit, params={"$TOP": "5"}).json()["value"] == []
        twice = client.get(f"{audit}?$filter=status eq 'x'&$FILTER=status eq 'y'")
        assert "given twice" in graph_error(twice, 400)
        listing = f"{V}/servicePrincipals"
        refused = client.get(listing, params={"$Filter": "displayName eq 'x'"})
        assert graph_error(refused, 400) == "unsupported query option '$Filter'"
        assert client.get(listing, params={"$select": "id"}).status_code == 200


def test_links_never_echo_the_host_header(tmp_path: Path) -> None:
    """``Location`` and ``@odata.*`` links start with the configured public URL, else the
    address the request came in on (the TestClient's is testserver:80). Was: the Host
    header's, whatever the client put there."""
    evil = {"Host": "attacker.example"}
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    with TestClient(create_app(engine, [TOKEN]), headers=AUTH) as client:
        made = client.post(f"{V}/servicePrincipals", json={}, headers=evil)
        assert (
            made.headers["Location"]
            == f"http://testserver{V}/servicePrincipals/{made.json()['id']}"
        )
        assert made.json()["@odata.context"].startswith(f"http://testserver{V}/$metadata#")
    public = "https://sync.example.org/api/"
    with TestClient(create_app(engine, [TOKEN], public_url=public), headers=AUTH) as client:
        app = client.post(f"{V}/servicePrincipals", json={}, headers=evil)
        assert app.headers["Location"].startswith(
            "https://sync.example.org/api/v1.0/servicePrincipals/"
        )
        job = client.post(
            f"{V}/servicePrincipals/{app.json()['id']}/synchronization/jobs",
            json={"templateId": "memoryToMemory"},
            headers=evil,
        )
        assert job.headers["Location"].startswith("https://sync.example.org/api/v1.0/")
        audit = client.get(f"{V}/auditLogs/provisioning", headers=evil).json()
        assert audit["@odata.context"] == (
            "https://sync.example.org/api/v1.0/$metadata#auditLogs/provisioning"
        )
    for bad in ["ftp://x", "https://", "https://x/?a=1", "https://u:p@x", "x.example"]:
        with pytest.raises(ConfigurationError, match="public_url"):
            create_app(engine, [TOKEN], public_url=bad)
    config = load_config(
        None, {"public_url": "http://127.0.0.1:9/", "allow_weak_tokens": True}, {TOKENS_ENV: TOKEN}
    )
    assert config.public_url == "http://127.0.0.1:9"
    with pytest.raises(ConfigurationError, match="public_url"):
        load_config(None, {"public_url": "nowhere"}, {})


def test_one_access_log_line_per_request_without_query_or_token(tmp_path: Path) -> None:
    with _client(tmp_path) as client, structlog.testing.capture_logs() as captured:
        client.get(f"{V}/auditLogs/provisioning", params={"$filter": "jobId eq 'ada'"})
        client.get(f"{V}/servicePrincipals", headers={"Authorization": "Bearer wrong-token"})
        client.get(f"{V}/nowhere")
    lines = [e for e in captured if e["event"] == "request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", f"{V}/auditLogs/provisioning", 200),
        ("GET", f"{V}/servicePrincipals", 401),
        ("GET", f"{V}/nowhere", 404),
    ]
    assert all(e["log_level"] == "info" and e["client"] == "testclient" for e in lines)
    assert all(isinstance(e["duration_ms"], float) for e in lines)
    assert TOKEN not in repr(captured) and "wrong-token" not in repr(captured)
    assert "ada" not in repr(captured)
