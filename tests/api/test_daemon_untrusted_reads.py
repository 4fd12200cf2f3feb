"""Issue #18's reproduction, through ``syncjob serve`` as an operator drives it: an ldapToScim
job synced, then a slip in the source's base DN saved with the secrets and a restart. Before,
the full read found nothing, reconciled, and deleted every user and group the job had
provisioned. Now the app keeps everyone and the job says why (point 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.ldap_scim import (
    DaemonApi,
    Start,
    converged,
    daemon,
    ldap_to_scim_secrets,
    source_tree,
    total,
    wait_until,
)
from tests.ldap.ldap_jobs import Tree, seed
from tests.ldap.slapd import Slapd
from tests.scim.server import ScimServer

__all__ = ["daemon"]  # the fixture
INTERVAL = "PT1S"


def save_and_restart(api: DaemonApi, app: str, job: str, secrets: dict[str, str]) -> None:
    """What the README has an operator do: PUT the secrets, then restart the job (the
    default scope keeps the links, so the next cycle is a reconciling full read)."""
    pairs = [{"key": k, "value": v} for k, v in secrets.items()]
    api.call("PUT", f"/servicePrincipals/{app}/synchronization/secrets", 204, {"value": pairs})
    api.call("POST", f"/servicePrincipals/{app}/synchronization/jobs/{job}/restart", 204)


def status(api: DaemonApi, app: str, job: str) -> dict[str, Any]:
    found: dict[str, Any] = api.job(app, job)["status"]
    return found


def test_a_base_dn_slip_then_restart_deletes_nothing_and_the_job_says_why(
    slapd_source: Slapd, make_scim_server: Callable[[str], ScimServer], daemon: Start
) -> None:
    tree: Tree = source_tree(slapd_source, "daemon-slip")
    seed(tree, 4, groups=1, members=4)
    scim = make_scim_server("scim")
    process, api = daemon("serve")
    app, job = api.create_job(ldap_to_scim_secrets(tree, scim), INTERVAL)
    wait_until(lambda: converged(tree, scim), 30, "the initial sync in SCIM", every=0.3)
    assert (total(scim, "Users"), total(scim, "Groups")) == (4, 1)

    # a base DN that does not exist: the cycle fails naming it, nothing is deprovisioned
    before = status(api, app, job)["lastExecution"]["timeEnded"]
    typo = ldap_to_scim_secrets(tree, scim, SourceBaseDn=f"ou=x,{tree.base}")
    save_and_restart(api, app, job, typo)
    wait_until(
        lambda: (
            status(api, app, job)["lastExecution"]["timeEnded"] != before
            and status(api, app, job)["lastExecution"]["state"] == "Failed"
        ),
        30,
        "a failed cycle",
    )
    error = status(api, app, job)["lastExecution"]["error"]["message"]
    assert f"ou=people,ou=x,{tree.base}" in error and "does not exist" in error, error
    assert tree.source.password.reveal() not in error
    assert (total(scim, "Users"), total(scim, "Groups")) == (4, 1)

    # a base DN that exists but holds nobody of the job's: the deletes are held, quarantined
    empty = f"ou=empty,{tree.base}"
    connection = tree.source.connect()
    try:
        for dn in (empty, f"ou=people,{empty}", f"ou=groups,{empty}"):
            ou = dn.split(",")[0].split("=")[1]
            assert connection.add(dn, ["organizationalUnit"], {"ou": ou}), connection.result
    finally:
        connection.unbind()
    save_and_restart(api, app, job, ldap_to_scim_secrets(tree, scim, SourceBaseDn=empty))
    wait_until(lambda: status(api, app, job)["code"] == "Quarantine", 30, "the quarantine")
    reason = status(api, app, job)["quarantine"]["error"]["message"]
    assert "saw 0 of the 4" in reason and "held" in reason, reason
    assert (total(scim, "Users"), total(scim, "Groups")) == (4, 1)

    # pointed back at the right base: nothing was lost, nothing is held any more
    save_and_restart(api, app, job, ldap_to_scim_secrets(tree, scim))
    wait_until(
        lambda: (
            status(api, app, job)["code"] == "Active"
            and status(api, app, job)["lastExecution"]["state"] == "Succeeded"
        ),
        30,
        "a successful cycle",
    )
    assert converged(tree, scim)
    assert (total(scim, "Users"), total(scim, "Groups")) == (4, 1)
    process.terminate()
    assert process.wait(15) == 0
