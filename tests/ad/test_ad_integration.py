"""A populated domain (2,000 users, a 1,600-member group) through the AD templates, as issue
19's point 9 asks: into a SCIM app, an initial cycle and then one incremental cycle with
exactly the changes made (a rename, a move between OUs, a disable, a delete, a member added
and one removed); into slapd, a real runner process SIGKILLed in the middle of its initial
cycle while the domain changes, and a restart that converges with nothing lost or doubled."""

from __future__ import annotations

import re
import secrets as random_names
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3

from engine import ManualClock, SyncEngine, to_graph
from engine.model import TaskExecutionResult
from tests.ad.ad_objects import DISABLED, add_ou, add_user, modify, user_dn
from tests.ad.populated import (
    BIG_GROUP,
    BIG_GROUP_DN,
    GROUP_MEMBERS,
    GROUPS_DN,
    STAFF_DN,
    USERS,
    is_disabled,
    manager_of,
    user_name,
)
from tests.ad.samba import ADMIN_UPN, BASE_DN, REALM, SambaDc
from tests.ldap.conftest import slapd_target
from tests.ldap.job_worker import kill_when, settle, start_worker
from tests.ldap.ldap_jobs import count, entries
from tests.ldap.slapd import ACCESSLOG_DN, ROOT_DN, Slapd
from tests.scim.conftest import make_scim_server
from tests.scim.server import ScimServer

__all__ = ["make_scim_server", "slapd_target"]  # the fixtures this module uses


def source_secrets(dc: SambaDc) -> dict[str, str]:
    return {"SourceUrl": dc.url, "SourceUserName": ADMIN_UPN,
            "SourcePassword": dc.password.reveal(), "SourceBaseDn": BASE_DN}  # fmt: skip


def under(ou: str) -> dict[str, Any]:
    """A scoping clause: the object's DN is in ``ou`` or below it (AD spells DNs in any case)."""
    return {"operatorName": "REGEX MATCH", "sourceOperandName": "dn",
            "targetOperand": {"values": [f"(?i),{re.escape(ou)}$"]}}  # fmt: skip


def ad_job(engine: SyncEngine, template: str, secrets: dict[str, str], **settings: str) -> str:
    """A started job of ``template``: users scoped to OU=Staff, groups to OU=Groups (the
    domain's own accounts and groups stay out)."""
    app = engine.create_application(template).id
    engine.set_secrets(app, secrets)
    job_id = engine.create_job(template, application_id=app, settings=settings).id or ""
    schema = to_graph(engine.get_schema(job_id))
    for mapping in schema["synchronizationRules"][0]["objectMappings"]:
        ou = STAFF_DN if mapping["sourceObjectName"] == "User" else GROUPS_DN
        mapping["scope"] = {"groups": [{"clauses": [under(ou)]}]}
    engine.update_schema(job_id, schema)
    engine.start(job_id)
    return job_id


def listing(scim: ScimServer, path: str) -> list[dict[str, Any]]:
    """Every resource of a collection, page by page."""
    found: list[dict[str, Any]] = []
    while True:
        page = scim.request("GET", f"{path}?startIndex={len(found) + 1}&count=1000").json()
        found += page.get("Resources", [])
        if not page.get("Resources") or len(found) >= page["totalResults"]:
            return found


def target_writes(slapd: Slapd, base: str, after: str = "") -> list[tuple[str, str, str]]:
    """(reqStart, operation, DN) of the writes slapd's accesslog holds under ``base``, later
    than ``after``, oldest first."""
    kinds = {"auditadd": "add", "auditmodify": "modify", "auditmodrdn": "modrdn",
             "auditdelete": "delete"}  # fmt: skip
    with slapd.connect() as connection:
        found = connection.extend.standard.paged_search(
            ACCESSLOG_DN, f"(reqStart>={after or '19700101000000Z'})",
            attributes=["reqStart", "reqDN", "objectClass"], paged_size=1000, generator=False,
        )  # fmt: skip
    writes = []
    for record in found:
        raw = record.get("raw_attributes") or {}
        classes = [c.decode().lower() for c in raw.get("objectClass", [])]
        kind = next((kinds[c] for c in classes if c in kinds), None)
        dn = b"".join(raw.get("reqDN", [])).decode().lower()
        start = b"".join(raw.get("reqStart", [])).decode()
        if kind and dn.endswith(base.lower()) and start > after:
            writes.append((start, kind, dn))
    return sorted(writes)


def upn(n: int | str) -> str:
    return f"{user_name(n) if isinstance(n, int) else n}@{REALM.lower()}"


def test_a_populated_domain_into_scim_then_one_cycle_with_exactly_the_changes(
    populated_dc: SambaDc, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    scim = make_scim_server("scim")
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    secrets = {**source_secrets(populated_dc), "BaseAddress": scim.url,
               "SecretToken": scim.token.reveal()}  # fmt: skip
    job_id = ad_job(engine, "adToScim", secrets, PageSize="500")
    first = engine.run_cycle(job_id)
    assert first.state is TaskExecutionResult.SUCCEEDED and engine.escrows(job_id) == []

    users = {u["userName"]: u for u in listing(scim, "/Users")}
    assert set(users) == {upn(n) for n in range(USERS)}
    assert [n for n in range(USERS) if not users[upn(n)]["active"]] == [
        n for n in range(USERS) if is_disabled(n)
    ]
    manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    for n in (1, 19, 1999):
        boss = manager_of(n)
        assert boss is not None
        assert users[upn(n)][manager]["manager"]["value"] == users[upn(boss)]["id"]
    (group,) = listing(scim, "/Groups")
    ids = {u["id"]: name for name, u in users.items()}
    assert group["displayName"] == BIG_GROUP
    assert sorted(ids[m["value"]] for m in group["members"]) == sorted(
        upn(n) for n in range(GROUP_MEMBERS)
    )

    # the changes: a rename, a move between OUs, a disable, a delete, a member in and one out
    with populated_dc.connect() as connection:
        sub = add_ou(connection, "Sub", STAFF_DN)
        renamed = user_dn(user_name(1), STAFF_DN)
        assert connection.modify_dn(renamed, "CN=r0001")
        modify(connection, user_dn("r0001", STAFF_DN),
               {"sAMAccountName": "r0001", "userPrincipalName": upn("r0001")})  # fmt: skip
        assert connection.modify_dn(user_dn(user_name(2), STAFF_DN), "CN=u0002",
                                    new_superior=sub)  # fmt: skip
        modify(connection, user_dn(user_name(3), STAFF_DN), {"userAccountControl": DISABLED})
        assert connection.delete(user_dn(user_name(4), STAFF_DN))
        assert connection.modify(
            BIG_GROUP_DN, {"member": [(ldap3.MODIFY_ADD, [user_dn(user_name(1700), STAFF_DN)])]}
        )
        assert connection.modify(BIG_GROUP_DN, {
            "member": [(ldap3.MODIFY_DELETE, [user_dn(user_name(5), STAFF_DN)])]})  # fmt: skip
    scim.clear_requests()
    second = engine.run_cycle(job_id)
    assert second.state is TaskExecutionResult.SUCCEEDED and engine.escrows(job_id) == []

    writes = sorted((r.method, r.path) for r in scim.requests() if r.method != "GET")
    one, three, four = (users[upn(n)]["id"] for n in (1, 3, 4))
    expected = {("PATCH", f"/v2/Users/{one}"), ("PATCH", f"/v2/Users/{three}"),
                ("PATCH", f"/v2/Groups/{group['id']}")}  # fmt: skip
    deleted = {("DELETE", f"/v2/Users/{four}"), ("PATCH", f"/v2/Users/{four}")}
    assert len(writes) == 4 and expected < set(writes) and len(set(writes) & deleted) == 1
    after = {u["id"]: u for u in listing(scim, "/Users")}
    assert after[one]["userName"] == upn("r0001") and after[one]["externalId"] == "r0001"
    assert after[users[upn(2)]["id"]]["userName"] == upn(2)  # moved: the same SCIM user
    assert after[three]["active"] is False
    assert four not in after or after[four]["active"] is False
    (group,) = listing(scim, "/Groups")
    # AD drops a deleted user from its groups itself: u0004 left with u0005
    expected_members = {*range(GROUP_MEMBERS), 1700} - {4, 5}
    assert {m["value"] for m in group["members"]} == {users[upn(n)]["id"] for n in expected_members}


def test_a_runner_sigkilled_in_its_initial_cycle_converges_with_nothing_lost_or_doubled(
    populated_dc: SambaDc, slapd_target: Slapd, tmp_path: Path
) -> None:
    base = f"ou=ad{random_names.token_hex(4)},dc=example,dc=org"
    with slapd_target.connect() as connection:
        for dn in (base, f"ou=people,{base}", f"ou=groups,{base}"):
            connection.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]})
    state = tmp_path / "s.db"
    engine = SyncEngine(state, ManualClock())
    secrets = {**source_secrets(populated_dc), "Url": slapd_target.url, "UserName": ROOT_DN,
               "Password": slapd_target.password.reveal(), "BaseDn": base}  # fmt: skip
    job_id = ad_job(engine, "adToLdap", secrets, PageSize="100")
    engine.close()

    people = f"ou=people,{base}"
    worker = start_worker(state, job_id)
    try:
        killed = kill_when(worker, lambda: count(slapd_target, people) >= 700, timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert killed, "the runner finished before it could be killed"
    # the domain moves while no runner runs
    with populated_dc.connect() as connection:
        add_user(connection, "n9000", STAFF_DN, givenName="New", sn="Comer")
        assert connection.delete(user_dn(user_name(1999), STAFF_DN))
        modify(connection, user_dn(user_name(10), STAFF_DN), {"sn": "Changed"})
        assert connection.modify(BIG_GROUP_DN, {
            "member": [(ldap3.MODIFY_ADD, [user_dn("n9000", STAFF_DN)])]})  # fmt: skip
    settle(state, job_id)

    found = entries(slapd_target, people, "(objectClass=inetOrgPerson)", ["uid", "sn"])
    uids = sorted(values["uid"][0] for values in found.values())
    assert uids == sorted([*(user_name(n) for n in range(USERS - 1)), "n9000"])  # none twice
    assert found[f"uid={user_name(10)},{people}"]["sn"] == ["Changed"]
    groups = entries(slapd_target, f"ou=groups,{base}", "(objectClass=groupOfNames)", ["member"])
    (members,) = (values["member"] for values in groups.values())
    expected = [*(user_name(n) for n in range(GROUP_MEMBERS)), "n9000"]
    assert sorted(members) == sorted(f"uid={uid},{people}".lower() for uid in expected)

    # then one cycle with exactly the changes: a rename, a move, a disable, a delete, members
    mark = target_writes(slapd_target, base)[-1][0]
    with populated_dc.connect() as connection:
        sub = add_ou(connection, "Sub", STAFF_DN)
        assert connection.modify_dn(user_dn(user_name(1), STAFF_DN), "CN=r0001")
        modify(connection, user_dn("r0001", STAFF_DN), {"sAMAccountName": "r0001"})
        assert connection.modify_dn(user_dn(user_name(2), STAFF_DN), "CN=u0002",
                                    new_superior=sub)  # fmt: skip
        modify(connection, user_dn(user_name(3), STAFF_DN), {"userAccountControl": DISABLED})
        assert connection.delete(user_dn(user_name(4), STAFF_DN))
        assert connection.modify(BIG_GROUP_DN, {"member": [
            (ldap3.MODIFY_ADD, [user_dn(user_name(1700), STAFF_DN)]),
            (ldap3.MODIFY_DELETE, [user_dn(user_name(5), STAFF_DN)])]})  # fmt: skip
    engine = SyncEngine(state, ManualClock())
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED and engine.escrows(job_id) == []
    engine.close()
    group = next(iter(groups)).lower()
    writes = [(kind, dn) for _, kind, dn in target_writes(slapd_target, base, mark)]
    # the rename is a modrdn (and its new cn); the move and the disable change nothing LDAP
    # holds (inetOrgPerson has no disabled state); u0004 goes, and leaves the group with u0005
    assert sorted(set(writes)) == sorted({
        ("modrdn", f"uid={user_name(1)},{people}"), ("modify", f"uid=r0001,{people}"),
        ("delete", f"uid={user_name(4)},{people}"), ("modify", group)})  # fmt: skip
    found = entries(slapd_target, f"ou=groups,{base}", "(objectClass=groupOfNames)", ["member"])
    expected = {*range(GROUP_MEMBERS), 1700} - {1, 4, 5}
    wanted = {f"uid={user_name(n)},{people}" for n in expected}
    assert set(found[group]["member"]) == {*wanted, f"uid=r0001,{people}", f"uid=n9000,{people}"}
