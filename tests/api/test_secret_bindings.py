"""Saved secrets stay bound to the address they were saved for (issue #20, point 1): a
capture listener on loopback plays the attacker's host. validateCredentials with only a
changed BaseAddress or SourceUrl, or with the mask for the token, is refused and the listener
receives nothing; a secrets PUT or PATCH that moves an address keeping the stored token is
refused and changes nothing; a new address with new credentials reaches the listener with
the new ones only. Through the HTTP API and the engine facade."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from connectors.base import ConnectorError
from engine import ConfigurationError, ManualClock, SyncEngine
from engine.service.api import create_app

TOKEN = "bindings-api-token"
OLD_TOKEN, NEW_TOKEN = "OLD-scim-token-4711", "NEW-scim-token-0815"
OLD_PASSWORD, NEW_PASSWORD = "OLD-bind-password-4711", "NEW-bind-password-0815"
#: the saved secrets of one application with an ldapToScim and a scimToLdap job; every saved
#: address is a port nobody listens on
SAVED = {
    "SourceUrl": "ldap://127.0.0.1:1",
    "SourceUserName": "cn=admin,dc=example,dc=org",
    "SourcePassword": OLD_PASSWORD,
    "SourceBaseDn": "dc=example,dc=org",
    "BaseAddress": "http://127.0.0.1:1/scim",
    "SecretToken": OLD_TOKEN,
    "SourceBaseAddress": "http://127.0.0.1:1/scim",
    "SourceSecretToken": OLD_TOKEN,
    "Url": "ldap://127.0.0.1:1",
    "UserName": "cn=admin,dc=example,dc=org",
    "Password": OLD_PASSWORD,
    "BaseDn": "dc=example,dc=org",
}


class CaptureListener:
    """The attacker's host: records every byte any client sends it; answers an HTTP request
    401 and closes, closes anything else once the client pauses."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self._received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def received(self) -> bytes:
        return b"".join(self._received)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(0.3)
                data = b""
                try:
                    while chunk := connection.recv(65536):
                        data += chunk
                        if b"\r\n\r\n" in data and data[:1].isalpha():  # an HTTP request
                            connection.sendall(
                                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n"
                            )
                            break
                except (TimeoutError, OSError):
                    pass
                self._received.append(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[CaptureListener]:
    made = CaptureListener()
    yield made
    made.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SyncEngine]:
    with SyncEngine(tmp_path / "s.db", ManualClock()) as made:
        yield made


def _setup(engine: SyncEngine) -> tuple[str, dict[str, str]]:
    """The application and its jobs by template."""
    app = engine.create_application("bound").id
    engine.set_secrets(app, SAVED)
    jobs = {t: engine.create_job(t, application_id=app).id for t in ("ldapToScim", "scimToLdap")}
    return app, jobs


def _pairs(secrets: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in secrets.items()]


def _api(engine: SyncEngine) -> TestClient:
    return TestClient(create_app(engine, [TOKEN]), headers={"Authorization": f"Bearer {TOKEN}"})


#: (job's template, credentials sent, the keys the refusal names)
REFUSED = [
    ("ldapToScim", {"BaseAddress": "http://127.0.0.1:{port}/scim"}, ["SecretToken"]),
    ("ldapToScim", {"SourceUrl": "ldap://127.0.0.1:{port}"}, ["SourcePassword"]),
    (
        "scimToLdap",
        {"SourceBaseAddress": "http://127.0.0.1:{port}/scim", "SourceSecretToken": "*****"},
        ["SourceSecretToken"],
    ),
]


@pytest.mark.parametrize(("template", "sent", "named"), REFUSED)
def test_validate_with_a_changed_address_alone_sends_nothing(
    engine: SyncEngine,
    listener: CaptureListener,
    template: str,
    sent: dict[str, str],
    named: list[str],
) -> None:
    """Was: the saved SecretToken sent to the caller's BaseAddress as a bearer header, the
    saved SourcePassword bound at the caller's SourceUrl. Should: 400 naming the keys to send,
    before any connection; the listener receives nothing."""
    app, jobs = _setup(engine)
    credentials = {k: v.format(port=listener.port) for k, v in sent.items()}
    url = f"/v1.0/servicePrincipals/{app}/synchronization/jobs/{jobs[template]}"
    with _api(engine) as client:
        answer = client.post(
            f"{url}/validateCredentials", json={"credentials": _pairs(credentials)}
        )
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert all(k in message for k in named), message
    assert "OLD" not in answer.text and "NEW" not in answer.text
    with pytest.raises(ConfigurationError, match=named[0]):
        engine.validate_credentials(jobs[template], credentials)
    assert listener.received == b""


def test_a_secrets_put_or_patch_moving_an_address_keeps_no_credential(
    engine: SyncEngine, listener: CaptureListener
) -> None:
    """Was: a PUT with a new BaseAddress and the mask for the rest kept the old token for the
    new host. Should: 400 naming SecretToken, nothing stored; the same for our PATCH (which
    keeps what it does not name) and for the engine's set_secrets and merge_secrets; the mask
    for everything, address unchanged, still changes nothing."""
    app, _ = _setup(engine)
    moved = f"http://127.0.0.1:{listener.port}/scim"
    masked = dict.fromkeys(SAVED, "*****")
    path = f"/v1.0/servicePrincipals/{app}/synchronization/secrets"
    with _api(engine) as client:
        put = client.put(path, json={"value": _pairs({**masked, "BaseAddress": moved})})
        assert put.status_code == 400 and "SecretToken" in put.text, put.text
        patch = client.patch(path, json={"value": _pairs({"SourceUrl": "ldap://127.0.0.2"})})
        assert patch.status_code == 400 and "SourcePassword" in patch.text, patch.text
        assert client.put(path, json={"value": _pairs(masked)}).status_code == 204
        same = {**masked, "BaseAddress": " HTTP://127.0.0.1:1/scim/ "}  # the same address
        assert client.put(path, json={"value": _pairs(same)}).status_code == 204
    with pytest.raises(ConfigurationError, match="SecretToken"):
        engine.set_secrets(app, {**SAVED, "BaseAddress": moved}, keep=["SecretToken"])
    with pytest.raises(ConfigurationError, match="SourcePassword"):
        engine.merge_secrets(app, {"SourceUrl": "ldap://127.0.0.2"})
    assert engine.store.get_secrets(app) == {**SAVED, "BaseAddress": " HTTP://127.0.0.1:1/scim/ "}
    engine.merge_secrets(app, {"BaseAddress": moved, "SecretToken": NEW_TOKEN})
    assert engine.store.get_secrets(app)["SecretToken"] == NEW_TOKEN
    assert listener.received == b""


def test_a_new_address_with_new_credentials_gets_those_only(
    engine: SyncEngine, listener: CaptureListener
) -> None:
    """Sent together, the address and its credentials are used: the SCIM request carries the
    new token, the LDAP bind the new password, and neither the saved one."""
    app, jobs = _setup(engine)
    scim = {
        "SourceBaseAddress": f"http://127.0.0.1:{listener.port}/scim",
        "SourceSecretToken": NEW_TOKEN,
    }
    url = f"/v1.0/servicePrincipals/{app}/synchronization/jobs/{jobs['scimToLdap']}"
    with _api(engine) as client:
        answer = client.post(f"{url}/validateCredentials", json={"credentials": _pairs(scim)})
    assert answer.status_code in (400, 502), answer.text
    assert f"Bearer {NEW_TOKEN}".encode() in listener.received
    assert OLD_TOKEN.encode() not in listener.received
    with pytest.raises(ConnectorError):
        engine.validate_credentials(
            jobs["ldapToScim"],
            {"SourceUrl": f"ldap://127.0.0.1:{listener.port}", "SourcePassword": NEW_PASSWORD},
        )
    assert NEW_PASSWORD.encode() in listener.received  # a simple bind reached the listener
    assert OLD_PASSWORD.encode() not in listener.received
    assert engine.store.get_secrets(app) == SAVED  # validateCredentials saves nothing
