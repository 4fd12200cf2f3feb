"""ldapToScim end to end: a real slapd as the source, a real SCIM server as the target.

The initial cycle; minimal PATCHes for a modify, a disable and group member changes (asserted
on the requests the server received); a target answering 429 with Retry-After for a while; a
target that is down (quarantine, then recovery); a SIGKILLed runner process."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import ldap3

from engine import ManualClock, StatusCode, SyncEngine, SystemClock
from engine.model import TaskExecutionResult
from tests.ldap.job_worker import kill_when, settle, start_worker
from tests.ldap.ldap_jobs import Tree, make_tree, seed
from tests.ldap.slapd import ROOT_DN, Slapd
from tests.scim.faults import FaultProxy
from tests.scim.server import ScimServer

ROOT = Path(__file__).resolve().parents[2]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def secrets(tree: Tree, address: str, scim: ScimServer, **extra: str) -> dict[str, str]:
    return {
        "SourceUrl": tree.source.url,
        "SourceUserName": ROOT_DN,
        "SourcePassword": tree.source.password.reveal(),
        "SourceBaseDn": tree.base,
        "BaseAddress": address,
        "SecretToken": scim.token.reveal(),
        **extra,
    }


def scim_job(
    tree: Tree, scim: ScimServer, state: Path, address: str | None = None, **settings: str
) -> tuple[SyncEngine, str]:
    engine = SyncEngine(state, ManualClock())
    app = engine.create_application("scim").id
    engine.set_secrets(app, secrets(tree, address or scim.url, scim))
    job_id = engine.create_job("ldapToScim", settings=settings or None, application_id=app).id
    assert job_id is not None
    engine.start(job_id)
    return engine, job_id


def listed(scim: ScimServer, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = scim.request("GET", f"/{kind}", params={"startIndex": len(found) + 1,
                                                       "count": 500}).json()  # fmt: skip
        found += page.get("Resources", [])
        if not page.get("Resources") or len(found) >= page["totalResults"]:
            return found


def users(scim: ScimServer) -> dict[str, dict[str, Any]]:
    return {u["userName"]: u for u in listed(scim, "Users")}


def members(scim: ScimServer) -> dict[str, set[str]]:
    ids = {u["id"]: name for name, u in users(scim).items()}
    return {g["displayName"]: {ids.get(m["value"], m["value"]) for m in g.get("members") or ()}
            for g in listed(scim, "Groups")}  # fmt: skip


def patches(scim: ScimServer) -> list[tuple[str, list[dict[str, Any]]]]:
    """(path, operations) of every PATCH the server received since the last clear."""
    return [(r.path, (r.body or {}).get("Operations", [])) for r in scim.requests()
            if r.method == "PATCH"]  # fmt: skip


def test_initial_cycle_then_minimal_patches(tree: Tree, scim: ScimServer, tmp_path: Path) -> None:
    """500 users and 10 groups arrive; then one modify is one PATCH with one operation, a
    user deleted in LDAP is disabled (PATCH active=false), and a member added and one removed
    is one PATCH with exactly those two operations."""
    seed(tree, 500, groups=10, members=50)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db")
    first = engine.run_cycle(job_id)
    assert first.state is TaskExecutionResult.SUCCEEDED and engine.escrows(job_id) == []
    found = users(scim)
    assert len(found) == 500 and found["u00042"]["title"] == "Engineer"
    assert found["u00042"][ENTERPRISE]["manager"]["value"] == found["u00004"]["id"]
    assert {name: len(m) for name, m in members(scim).items()} == {
        f"g{j:03d}": 50 for j in range(10)
    }

    scim.clear_requests()
    connection = tree.source.connect()
    connection.modify(tree.user_dn(300), {"title": [(ldap3.MODIFY_REPLACE, ["Manager"])]})
    engine.run_cycle(job_id)
    assert [ops for _, ops in patches(scim)] == [
        [{"op": "replace", "path": "title", "value": "Manager"}]
    ] or [[{**op, "op": op["op"].lower()} for op in ops] for _, ops in patches(scim)] == [
        [{"op": "replace", "path": "title", "value": "Manager"}]
    ]

    scim.clear_requests()
    gone = users(scim)["u00499"]["id"]
    connection.delete(tree.user_dn(499))  # a leaf: nobody's manager; in group 9
    engine.run_cycle(job_id)
    assert "u00499" not in users(scim)  # HardDeletesEnabled (Entra's default): DELETE
    assert [(r.method, r.path) for r in scim.requests() if r.method == "DELETE"] == [
        ("DELETE", f"/v2/Users/{gone}")
    ]
    scim.clear_requests()
    disabled = users(scim)["u00498"]["id"]
    soft = {**secrets(tree, scim.url, scim), "HardDeletesEnabled": "False"}
    engine.set_secrets(engine.store.list_jobs()[0].application_id, soft)
    connection.delete(tree.user_dn(498))
    engine.run_cycle(job_id)
    assert users(scim)["u00498"]["active"] is False  # a soft delete: PATCH active=false
    assert [(path, [op["path"] for op in ops]) for path, ops in patches(scim)
            if path.startswith("/v2/Users")] == [(f"/v2/Users/{disabled}", ["active"])]  # fmt: skip

    scim.clear_requests()
    change = [(ldap3.MODIFY_ADD, [tree.user_dn(4)]), (ldap3.MODIFY_DELETE, [tree.user_dn(3)])]
    connection.modify(tree.group_dn(3), {"member": change})
    connection.unbind()
    engine.run_cycle(job_id)
    group_patches = [ops for path, ops in patches(scim) if "/Groups/" in path]
    values = sorted((op["op"].lower(), v["value"]) for ops in group_patches for op in ops
                    for v in op.get("value") or [])  # fmt: skip
    ids = users(scim)
    assert values == [("add", ids["u00004"]["id"])] or values == sorted(
        [("add", ids["u00004"]["id"]), ("remove", ids["u00003"]["id"])]
    )
    assert "u00004" in members(scim)["g003"] and "u00003" not in members(scim)["g003"]


def test_a_throttling_target_slows_the_cycle_and_loses_nothing(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    """The target answers 429 with Retry-After for a while: the cycle waits and completes."""
    seed(tree, 60)
    with FaultProxy(scim.url.rsplit("/v2", 1)[0]) as proxy:
        engine, job_id = scim_job(tree, scim, tmp_path / "s.db", address=proxy.url + "/v2")
        engine.clock = SystemClock()  # Retry-After is waited out for real
        proxy.fail(429, times=6, retry_after=1)
        execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED
    assert len(users(scim)) == 60 and engine.escrows(job_id) == []


def test_a_target_that_is_down_quarantines_the_job_until_it_is_back(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    """Nothing listens where the target was: each cycle fails (no object escrowed); after
    QuarantineUnreachableCycles (3) the job is quarantined; once the target is back the
    next cycle succeeds and the job is active again."""
    seed(tree, 20)
    upstream = scim.url.rsplit("/v2", 1)[0]
    proxy = FaultProxy(upstream)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db", address=proxy.url + "/v2")
    port = proxy.port
    proxy.stop()
    for _ in range(3):
        assert engine.run_cycle(job_id).state is TaskExecutionResult.FAILED
    status = engine.get_job(job_id).status
    assert status is not None and status.code is StatusCode.QUARANTINE
    assert engine.escrows(job_id) == []
    with FaultProxy(upstream, port=port):  # the target is back
        assert engine.run_cycle(job_id).state is TaskExecutionResult.SUCCEEDED
    status = engine.get_job(job_id).status
    assert status is not None and status.code is StatusCode.ACTIVE
    assert len(users(scim)) == 20


def test_a_sigkilled_runner_converges_with_no_duplicate_user(
    tree: Tree, scim: ScimServer, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    seed(tree, 400, groups=4, members=100)
    state = tmp_path / "s.db"
    engine, job_id = scim_job(tree, scim, state)
    engine.close()

    worker = start_worker(state, job_id)
    workers.append(worker)
    posted = lambda: sum(1 for r in scim.requests() if r.method == "POST") >= 150  # noqa: E731
    assert kill_when(worker, posted, 60)
    settle(state, job_id)
    found = listed(scim, "Users")
    assert len(found) == 400 == len({u["userName"] for u in found})
    assert {name: len(m) for name, m in members(scim).items()} == {
        f"g{j:03d}": 100 for j in range(4)
    }


def test_scim_to_ldap_brings_users_groups_and_managers_over(
    scim: ScimServer, slapd_source: Slapd, slapd_target: Slapd, tmp_path: Path
) -> None:
    """The reverse template: SCIM users (with a manager) and a group into LDAP entries."""
    boss = scim.create("Users", {"userName": "boss", "displayName": "The Boss",
                                 "name": {"familyName": "Boss", "givenName": "The"}})  # fmt: skip
    worker = scim.create("Users", {
        "userName": "worker", "displayName": "A Worker", "title": "Engineer",
        "name": {"familyName": "Worker", "givenName": "A"},
        "emails": [{"type": "work", "primary": True, "value": "worker@example.org"}],
        ENTERPRISE: {"employeeNumber": "7", "manager": {"value": boss["id"]}},
    })  # fmt: skip
    staff = [{"value": boss["id"]}, {"value": worker["id"]}]
    scim.create("Groups", {"displayName": "staff", "members": staff})
    tree = make_tree(slapd_source, slapd_target)
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    app = engine.create_application("back").id
    engine.set_secrets(app, {
        "SourceBaseAddress": scim.url, "SourceSecretToken": scim.token.reveal(),
        "Url": slapd_target.url, "UserName": ROOT_DN,
        "Password": slapd_target.password.reveal(), "BaseDn": tree.base,
    })  # fmt: skip
    job_id = engine.create_job("scimToLdap", application_id=app).id or ""
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED and engine.escrows(job_id) == []
    connection = slapd_target.connect()
    names = ["cn", "sn", "mail", "title", "employeeNumber", "manager"]
    connection.search(tree.user_dn("worker"), "(objectClass=*)", ldap3.BASE, attributes=names)
    got = {k: list(v) for k, v in connection.response[0]["attributes"].items()}
    assert (got["cn"], got["sn"], got["mail"], got["employeeNumber"], got["title"]) == (
        ["A Worker"], ["Worker"], ["worker@example.org"], ["7"], ["Engineer"]
    )  # fmt: skip
    assert got["manager"][0].lower().startswith("uid=boss,")
    connection.search(f"cn=staff,{tree.groups}", "(objectClass=*)", ldap3.BASE,
                      attributes=["member"])  # fmt: skip
    assert sorted(m.split(",")[0] for m in connection.response[0]["attributes"]["member"]) == [
        "uid=boss", "uid=worker"
    ]  # fmt: skip
    connection.unbind()
