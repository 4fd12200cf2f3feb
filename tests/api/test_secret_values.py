"""Credentials that masking could not follow are refused at the door (issue #20, point 4, in
part): a SecretToken pasted with its newline was quoted escaped (``\\n``) in errors and logs,
where masking its raw value hid nothing; one outside Latin-1 cannot go into an HTTP header
(a 500, and every object escrowed). Refused by PUT and PATCH of secrets and by the engine,
naming the key, never the value; nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engine import ConfigurationError, ManualClock, SyncEngine
from engine.service.api import create_app

TOKEN = "values-token"
BAD = [
    ("SecretToken", "abc-token-value\n", "whitespace"),
    ("SourcePassword", " padded-password", "whitespace"),
    ("Password", "pass\x00word", "control character"),
    ("SecretToken", "tökén-ŝecret", "HTTP header"),
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SyncEngine]:
    with SyncEngine(tmp_path / "s.db", ManualClock()) as made:
        yield made


@pytest.mark.parametrize(("key", "value", "fault"), BAD)
def test_a_credential_masking_could_not_follow_is_refused(
    engine: SyncEngine, key: str, value: str, fault: str
) -> None:
    app = engine.create_application("values").id
    engine.set_secrets(app, {"BaseAddress": "http://127.0.0.1:9/scim", key: "good-one"})
    with pytest.raises(ConfigurationError, match=fault) as refused:
        engine.set_secrets(app, {key: value})
    assert key in str(refused.value) and value.strip() not in str(refused.value)
    with pytest.raises(ConfigurationError, match=fault):
        engine.merge_secrets(app, {key: value})
    path = f"/v1.0/servicePrincipals/{app}/synchronization/secrets"
    with TestClient(create_app(engine, [TOKEN]), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for method in ("PUT", "PATCH"):
            answer = c.request(method, path, json={"value": [{"key": key, "value": value}]})
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] and value.strip() not in answer.text
    assert engine.store.get_secrets(app)[key] == "good-one"


def test_ordinary_values_and_non_credentials_pass(engine: SyncEngine) -> None:
    app = engine.create_application("fine").id
    secrets = {
        "SecretToken": "eyJhbGciOi.JIUzI1NiJ9-_x",
        "SourcePassword": "pässwörd with inner spaces",  # LDAP binds take UTF-8
        "SourceBaseDn": " dc=example,dc=org",  # not a credential: trimmed where it is used
    }
    engine.set_secrets(app, secrets)
    assert engine.store.get_secrets(app) == secrets
