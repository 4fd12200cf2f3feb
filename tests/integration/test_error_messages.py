"""Errors that say which side and what (issue #18, point 7), on real servers: a wrong bind
password on either side, a port nobody listens on, a refused SCIM token, a base address with
``user:password@``, a slapd without the accesslog overlay in accesslog mode. Each message, as
validateCredentials raises it (engine and HTTP API), as ``syncjob run --once`` prints it and as
the job's status keeps it, names the side (source or target), the bind DN or the URL (its
userinfo masked) and what failed, shows no credential, and does not repeat its error type."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from connectors.base import ConnectorError, CredentialsError, UnreachableError
from engine import ManualClock, SyncEngine
from engine.service.api import create_app
from engine.service.cli import main
from tests.ldap.ldap_jobs import Tree, seed
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd, free_port, require_slapd
from tests.scim.server import ScimServer

WRONG = "wrong-Pa55word-4711"  # a credential no message may show
IN_URL = "pw-in-url-0815"


@pytest.fixture(scope="module")
def slapd_without_accesslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_slapd()
    with Slapd(tmp_path_factory.mktemp("no-accesslog"), "noal", accesslog=False) as server:
        yield server


#: (template, secrets changed from a working set, error class, what the message must say)
Case = tuple[str, Callable[..., dict[str, str]], type[ConnectorError], Callable[..., list[str]]]
_SCIM_PORT = free_port()
_LDAP_PORT = free_port()
CASES: dict[str, Case] = {
    "source bind password": (
        "ldapToScim",
        lambda **k: {"SourcePassword": WRONG},
        CredentialsError,
        lambda tree, **k: [f"source bind as {ROOT_DN} to {tree.source.url}: invalid credentials"],
    ),
    "target bind password": (
        "ldapToLdap",
        lambda **k: {"Password": WRONG},
        CredentialsError,
        lambda tree, **k: [f"target bind as {ROOT_DN} to {tree.target.url}: invalid credentials"],
    ),
    "source url userinfo": (
        "ldapToScim",
        lambda tree, **k: {
            "SourceUrl": tree.source.url.replace("//", f"//admin:{IN_URL}@"),
            "SourcePassword": WRONG,
        },
        CredentialsError,
        lambda tree, **k: [
            f"source bind as {ROOT_DN} to {tree.source.url.replace('//', '//*****@')}: invalid"
        ],
    ),
    "source port closed": (
        "ldapToScim",
        lambda **k: {"SourceUrl": f"ldap://127.0.0.1:{_LDAP_PORT}"},
        UnreachableError,
        lambda **k: [f"source cannot reach ldap://127.0.0.1:{_LDAP_PORT}", "refused"],
    ),
    "target port closed": (
        "ldapToScim",
        lambda **k: {"BaseAddress": f"http://127.0.0.1:{_SCIM_PORT}/v2"},
        UnreachableError,
        lambda **k: ["target", f"http://127.0.0.1:{_SCIM_PORT}/v2", "refused"],
    ),
    "target token": (
        "ldapToScim",
        lambda **k: {"SecretToken": WRONG},
        CredentialsError,
        lambda scim, **k: ["target", scim.url, "SecretToken"],
    ),
    "target userinfo": (
        "ldapToScim",
        lambda scim, **k: {"BaseAddress": scim.url.replace("//", f"//admin:{IN_URL}@")},
        CredentialsError,
        lambda scim, **k: ["target", scim.url.replace("//", "//*****@")],
    ),
    "no accesslog": (
        "ldapToScim",
        lambda noal, **k: {
            "SourceUrl": noal.url,
            "SourcePassword": noal.password.reveal(),
            "SourceBaseDn": BASE_DN,
        },
        ConnectorError,
        lambda noal, **k: [
            f"source {noal.url}",
            f"the accesslog cn=accesslog cannot be read by {ROOT_DN}",
            "set the secret SourceDeltaMode=timestamp",
        ],
    ),
}


def _secrets(tree: Tree, scim: ScimServer) -> dict[str, str]:
    """A working set for both templates: the tree's source, its LDAP target or the SCIM one."""
    return {
        **tree.secrets(),
        "BaseAddress": scim.url,
        "SecretToken": scim.token.reveal(),
    }


def _check(text: str, kind: type[ConnectorError], says: list[str], shown: str) -> None:
    """``text`` says each of ``says``, shows no credential, and names its type at most once."""
    for part in says:
        assert part in text, f"{part!r} not in {shown}: {text}"
    for secret in (WRONG, IN_URL):
        assert secret not in text, f"a credential in {shown}: {text}"
    name = kind.__name__
    assert f"{name}: {name}" not in text and not text.startswith(f"{name}:"), text


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_error_says_which_side_and_what(
    case: str,
    tree: Tree,
    scim_server: ScimServer,
    slapd_without_accesslog: Slapd,
    tmp_path: Path,
) -> None:
    template, changed, kind, says_for = CASES[case]
    seed(tree, 1, managers=False)  # a cycle that gets past the source writes to the target
    servers: dict[str, Any] = {"tree": tree, "scim": scim_server, "noal": slapd_without_accesslog}
    says = says_for(**servers)
    state = tmp_path / "state.db"
    with SyncEngine(state, ManualClock()) as engine:
        engine.set_secrets(None, {**_secrets(tree, scim_server), **changed(**servers)})
        job_id = engine.create_job(template).id
        with pytest.raises(kind) as caught:
            engine.validate_credentials(job_id)
        assert type(caught.value) is kind or kind is ConnectorError
        _check(str(caught.value), kind, says, "validate_credentials")
        app = engine.list_applications()[0].id
        with TestClient(create_app(engine, ["t"]), headers={"Authorization": "Bearer t"}) as api:
            url = f"/v1.0/servicePrincipals/{app}/synchronization/jobs/{job_id}"
            answer = api.post(f"{url}/validateCredentials", json={"useSavedCredentials": True})
        error = answer.json()["error"]
        assert error["code"] == type(caught.value).__name__
        _check(error["message"], kind, says, "the API's validateCredentials")
        engine.start(job_id)
    run = CliRunner().invoke(main, ["run", job_id, "--state", str(state), "--once"])
    assert run.exit_code == 1, run.output
    failed = next(x for x in run.output.splitlines() if x.startswith("syncjob run: "))
    _check(failed, kind, says, "run --once")
    with SyncEngine(state, ManualClock()) as engine:
        status = engine.get_job(job_id).status
    assert status is not None and status.last_execution is not None
    stored = status.last_execution.error
    assert stored is not None and stored.code == type(caught.value).__name__
    _check(stored.message or "", kind, says, "the job's status")
