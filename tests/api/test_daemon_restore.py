"""The restore route and ``syncjob restore`` against a real ``syncjob serve`` running an
ldapToScim job with DeleteGracePeriod (a real slapd, a real scim2-server): a user deleted in
LDAP is disabled in SCIM, and restoring it over HTTP, or with the command, makes it active."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result

from engine import SystemClock
from engine.service.cli import main
from tests.api.ldap_scim import (
    TOKEN,
    DaemonApi,
    Start,
    converged,
    daemon,
    delete_user,
    ldap_to_scim_secrets,
    listed,
    source_tree,
    wait_until,
)
from tests.ldap.ldap_jobs import seed
from tests.ldap.slapd import Slapd
from tests.scim.server import ScimServer

__all__ = ["daemon"]  # the fixture
CLOCK = SystemClock()


def active(scim: ScimServer) -> dict[str, Any]:
    return {u["userName"]: u.get("active") for u in listed(scim, "Users")}


def restore(api: DaemonApi, path: str, body: Any) -> Any:
    """POST the restore; a 409 (a scheduled cycle holds the job's lease) is asked again, as an
    operator would."""
    for _ in range(50):
        response = api.session.post(f"{api.url}/v1.0{path}", json=body, timeout=30)
        if response.status_code != 409:
            return response
        CLOCK.sleep(0.2)
    raise AssertionError(f"the job stayed busy: {response.text}")


def cli_restore(env: dict[str, str], *args: str) -> Result:
    for _ in range(50):
        ran = CliRunner().invoke(main, ["restore", *args], env=env)
        if "runner" not in ran.output:  # JobRunningElsewhere: a scheduled cycle runs
            return ran
        CLOCK.sleep(0.2)
    return ran


def test_restore_over_http_and_from_the_command_line(
    slapd_source: Slapd, make_scim_server: Callable[[str], ScimServer], daemon: Start
) -> None:
    tree = source_tree(slapd_source, "daemon-restore")
    seed(tree, 3)
    scim = make_scim_server("scim")
    _, api = daemon("serve")
    app, job = api.create_job(
        ldap_to_scim_secrets(tree, scim), "PT1S", {"DeleteGracePeriod": "P1D"}
    )
    wait_until(lambda: converged(tree, scim), 30, "the initial sync in SCIM", every=0.3)
    delete_user(tree, 1)
    delete_user(tree, 2)
    wait_until(lambda: active(scim) == {"u00000": True, "u00001": False, "u00002": False}, 30,
               "both users disabled in SCIM", every=0.3)  # fmt: skip

    path = f"/servicePrincipals/{app}/synchronization/jobs/{job}/restore"
    response = restore(api, path, {"objectId": "u00001"})
    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["enabled"], done["linked"]) == (True, False)
    assert done["deleteDue"]
    assert active(scim)["u00001"] is True
    again = restore(api, path, {"objectId": "u00001"})  # nothing staged any more
    assert (again.status_code, again.json()["error"]["code"]) == (404, "itemNotFound")
    api.call("POST", f"/servicePrincipals/{app}/synchronization/jobs/nojob/restore", 404,
             {"objectId": "u00002"})  # fmt: skip
    assert api.call("POST", path, 400, {"objectId": ""})["error"]["code"]
    assert api.call("POST", path, 400, {})["error"]["code"]

    env = {"SYNCJOB_URL": api.url, "SYNCJOB_TOKEN": TOKEN}
    ran = cli_restore(env, job, "u00002", "--app", app)
    assert ran.exit_code == 0, ran.output
    assert "restored" in ran.output and "enabled again" in ran.output
    assert active(scim)["u00002"] is True
    unknown = cli_restore(env, job, "nobody", "--app", app)
    assert unknown.exit_code == 1 and "itemNotFound" in unknown.output
