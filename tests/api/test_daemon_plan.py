"""Preview and apply through ``syncjob serve`` (ldapToScim, real slapd and scim2-server):
``POST …/plan`` answers the changeset and writes nothing; ``syncjob plan --out`` then
``syncjob apply`` writes it; an apply of a plan the source moved past is a 409 PlanOutdated
naming the object; a dry-run provisionOnDemand names its subject by DN."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3
from click.testing import CliRunner, Result

from engine.clock import SystemClock
from engine.service.cli import main
from tests.api.ldap_scim import (
    TOKEN,
    Start,
    converged,
    daemon,
    ldap_to_scim_secrets,
    source_tree,
    title_of,
    wait_until,
)
from tests.ldap.ldap_jobs import Tree, modify, seed
from tests.ldap.slapd import Slapd
from tests.scim.server import ScimServer

__all__ = ["daemon"]  # the fixture


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SYNCJOB_URL": url, "SYNCJOB_TOKEN": TOKEN})


def _title(tree: Tree, n: int, title: str) -> dict[str, dict[str, list[tuple[str, list[Any]]]]]:
    return {tree.user_dn(n): {"title": [(ldap3.MODIFY_REPLACE, [title])]}}


def _plan(api: Any, path: str) -> dict[str, Any]:
    """POST …/plan, again while the job's lease is still being let go (409 "running")."""
    for _ in range(50):
        answer = api.session.post(f"{api.url}/v1.0{path}/plan", timeout=30)
        if answer.status_code != 409:
            break
        SystemClock().sleep(0.1)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _cycle_ended(job: dict[str, Any]) -> bool:
    last = (job.get("status") or {}).get("lastExecution") or {}
    return bool(last.get("timeEnded")) and (job.get("status") or {}).get("code") == "Active"


def test_plan_then_apply_through_the_daemon_and_the_cli(
    slapd_source: Slapd,
    make_scim_server: Callable[[str], ScimServer],
    daemon: Start,
    tmp_path: Path,
) -> None:
    tree = source_tree(slapd_source, "daemon-plan")
    seed(tree, 6)
    scim = make_scim_server("scim")
    _, api = daemon("serve")
    app, job = api.create_job(ldap_to_scim_secrets(tree, scim), "PT1H")  # one cycle, at start
    wait_until(lambda: converged(tree, scim), 30, "the initial sync in SCIM", every=0.3)
    path = f"/servicePrincipals/{app}/synchronization/jobs/{job}"

    # the SCIM app has everyone before the initial cycle has ended (its last checkpoints):
    # a plan asked meanwhile is a 409 "running", so wait for the cycle's end
    wait_until(lambda: _cycle_ended(api.job(app, job)), 30, "the initial cycle's end", every=0.2)
    modify(tree.source, _title(tree, 3, "Director"))
    scim.clear_requests()
    plan = _plan(api, path)
    assert [(c["action"], c["displayName"]) for c in plan["changes"]] == [("update", "User 3")]
    assert plan["changes"][0]["changes"][0] | {"added": [], "removed": []} == {
        "name": "title", "old": "Engineer", "new": "Director", "added": [], "removed": []
    }  # fmt: skip
    assert [r for r in scim.requests() if r.method != "GET"] == []

    modify(tree.source, _title(tree, 3, "Chief"))  # moved past the plan: refused, named
    refused = api.session.post(f"{api.url}/v1.0{path}/apply", json=plan, timeout=30)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "PlanOutdated" and "User 3" in error["message"], error
    assert title_of(scim, "u00003") == "Engineer"

    planned = cli(api.url, "plan", job, "--app", app, "--out", str(tmp_path / "plan.json"))
    assert planned.exit_code == 0, planned.output
    assert "update User User 3: title: Engineer → Chief" in planned.output
    assert "1 change;" in planned.output
    assert json.loads((tmp_path / "plan.json").read_text())["changes"][0]["anchor"]
    applied = cli(api.url, "apply", job, str(tmp_path / "plan.json"), "--app", app)
    assert applied.exit_code == 0, applied.output
    assert "Succeeded" in applied.output and "1 exported, 0 escrowed" in applied.output
    assert title_of(scim, "u00003") == "Chief"
    again = cli(api.url, "apply", job, str(tmp_path / "plan.json"), "--app", app)
    assert again.exit_code == 1 and "PlanOutdated" in again.output
    nothing = cli(api.url, "plan", job, "--app", app, "--json")
    assert nothing.exit_code == 0 and json.loads(nothing.output)["changes"] == []

    schema = api.call("GET", f"{path}/schema", 200)
    rule = schema["synchronizationRules"][0]["id"]
    subject = {"objectId": tree.user_dn(4), "objectTypeName": "User"}
    body = {"parameters": [{"ruleId": rule, "subjects": [subject]}], "dryRun": True}
    modify(tree.source, _title(tree, 4, "Architect"))
    answer = api.call("POST", f"{path}/provisionOnDemand", 200, body)
    assert json.loads(answer["key"])["result"] == "DryRun"
    one = json.loads(answer["value"])
    assert [(c["action"], c["displayName"]) for c in one["changes"]] == [("update", "User 4")]
    assert title_of(scim, "u00004") == "Engineer"
