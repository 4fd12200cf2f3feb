"""The templates adToScim and adToLdap against a real AD DC (issue 19, points 4 and 6): the
domain root as the container (the templates' default), users scoped to one OU by a scoping
filter on their DN, so an enabled user elsewhere and the domain's own accounts (Administrator)
and groups stay out; objectGUID anchors; a disabled user arrives inactive (SCIM; LDAP has no
disabled state); manager and group members resolve to the target's objects."""

from __future__ import annotations

import re
import secrets as random_names
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from engine import ManualClock, SyncEngine, to_graph
from engine.model import TaskExecutionResult
from tests.ad.ad_objects import DISABLED, add_group, add_ou, add_user, guid_of
from tests.ad.samba import ADMIN_UPN, BASE_DN, SambaDc
from tests.ldap.conftest import slapd_target
from tests.ldap.ldap_jobs import entries
from tests.ldap.slapd import ROOT_DN, Slapd
from tests.scim.conftest import make_scim_server
from tests.scim.server import ScimServer

__all__ = ["make_scim_server", "slapd_target"]  # the fixtures this module uses

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@attrs.frozen
class Domain:
    dc: SambaDc
    staff: str  # the OU in scope
    guids: dict[str, str]  # user or group name -> objectGUID as AD shows it


@pytest.fixture(scope="module")
def domain(module_dc: SambaDc) -> Domain:
    """OU=Staff: ada, bob (managed by ada), carol (disabled), group Engineers of the three;
    OU=Elsewhere: eve (enabled, out of scope) and her group Outsiders."""
    connection = module_dc.connect()
    try:
        staff, elsewhere = add_ou(connection, "Staff"), add_ou(connection, "Elsewhere")
        ada = add_user(
            connection, "ada", staff, givenName="Ada", sn="Lovelace", displayName="Ada Lovelace",
            mail="ada@example.org", title="Chief",
        )  # fmt: skip
        bob = add_user(connection, "bob", staff, givenName="Bob", sn="Builder", manager=ada)
        carol = add_user(connection, "carol", staff, sn="Jones", userAccountControl=DISABLED)
        eve = add_user(connection, "eve", elsewhere, sn="Outside")
        engineers = add_group(connection, "Engineers", staff, [ada, bob, carol])
        outsiders = add_group(connection, "Outsiders", elsewhere, [eve])
        dns = {"ada": ada, "bob": bob, "carol": carol, "eve": eve, "Engineers": engineers,
               "Outsiders": outsiders}  # fmt: skip
        return Domain(module_dc, staff, {n: guid_of(connection, dn) for n, dn in dns.items()})
    finally:
        connection.unbind()


def source_secrets(dc: SambaDc) -> dict[str, str]:
    return {
        "SourceUrl": dc.url,
        "SourceUserName": ADMIN_UPN,
        "SourcePassword": dc.password.reveal(),
        "SourceBaseDn": BASE_DN,
    }


def in_ou(ou: str) -> dict[str, Any]:
    """A scoping clause: the object's DN ends with the OU's (AD spells DNs in any case)."""
    pattern = f"(?i),{re.escape(ou)}$"
    return {"operatorName": "REGEX MATCH", "sourceOperandName": "dn",
            "targetOperand": {"values": [pattern]}}  # fmt: skip


def job(
    engine: SyncEngine, template: str, secrets: dict[str, str], ou: str
) -> tuple[str, dict[str, Any]]:
    """A started job of ``template`` whose users and groups are scoped to ``ou``."""
    app = engine.create_application(template).id
    engine.set_secrets(app, secrets)
    job_id = engine.create_job(template, application_id=app).id or ""
    schema = to_graph(engine.get_schema(job_id))
    for mapping in schema["synchronizationRules"][0]["objectMappings"]:
        groups = (mapping.get("scope") or {}).get("groups") or [{"clauses": []}]
        for group in groups:
            group["clauses"] = [*group.get("clauses", []), in_ou(ou)]
        mapping["scope"] = {"groups": groups}
    engine.update_schema(job_id, schema)
    engine.start(job_id)
    return job_id, schema


def run(engine: SyncEngine, job_id: str) -> None:
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED
    assert engine.escrows(job_id) == []


def test_ad_to_scim(
    domain: Domain, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    scim = make_scim_server("scim")
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    secrets = {**source_secrets(domain.dc), "BaseAddress": scim.url,
               "SecretToken": scim.token.reveal()}  # fmt: skip
    job_id, _ = job(engine, "adToScim", secrets, domain.staff)
    run(engine, job_id)

    users = {u["userName"]: u for u in scim.request("GET", "/Users").json()["Resources"]}
    assert set(users) == {"ada@example.org", "bob@example.org", "carol@example.org"}
    ada, bob, carol = (users[f"{n}@example.org"] for n in ("ada", "bob", "carol"))
    assert (ada["active"], bob["active"], carol["active"]) == (True, True, False)
    assert ada["displayName"] == "Ada Lovelace" and ada["title"] == "Chief"
    assert ada["name"]["familyName"] == "Lovelace" and ada["externalId"] == "ada"
    assert ada["emails"][0]["value"] == "ada@example.org"
    assert bob[ENTERPRISE]["manager"]["value"] == ada["id"]
    (group,) = scim.request("GET", "/Groups").json()["Resources"]
    assert group["displayName"] == "Engineers"
    assert {m["value"] for m in group["members"]} == {ada["id"], bob["id"], carol["id"]}
    # anchored on objectGUID, in the text form AD shows
    anchors = {r.anchor for r in engine.provisioning_logs(job_id) if r.status == "success"}
    assert anchors == {domain.guids[n] for n in ("ada", "bob", "carol", "Engineers")}

    scim.clear_requests()
    run(engine, job_id)  # nothing changed: the next cycle writes nothing
    assert [r for r in scim.requests() if r.method in ("POST", "PATCH", "PUT", "DELETE")] == []


def test_ad_to_ldap(domain: Domain, slapd_target: Slapd, tmp_path: Path) -> None:
    base = f"ou=ad{random_names.token_hex(4)},dc=example,dc=org"
    connection = slapd_target.connect()
    try:
        for dn in (base, f"ou=people,{base}", f"ou=groups,{base}"):
            connection.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]})
    finally:
        connection.unbind()
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    secrets = {**source_secrets(domain.dc), "Url": slapd_target.url, "UserName": ROOT_DN,
               "Password": slapd_target.password.reveal(), "BaseDn": base}  # fmt: skip
    job_id, _ = job(engine, "adToLdap", secrets, domain.staff)
    run(engine, job_id)

    people = entries(slapd_target, base, "(objectClass=inetOrgPerson)",
                     ["uid", "cn", "sn", "givenName", "mail", "manager"])  # fmt: skip
    ada, bob, carol = (f"uid={n},ou=people,{base}".lower() for n in ("ada", "bob", "carol"))
    assert set(people) == {ada, bob, carol}  # eve is elsewhere: out of scope
    assert people[ada] == {"uid": ["ada"], "cn": ["ada"], "sn": ["Lovelace"],
                           "givenname": ["Ada"], "mail": ["ada@example.org"]}  # fmt: skip
    assert people[bob]["manager"] == [ada] and people[carol]["sn"] == ["Jones"]
    groups = entries(slapd_target, base, "(objectClass=groupOfNames)", ["cn", "member"])
    assert groups == {
        f"cn=engineers,ou=groups,{base}".lower(): {
            "cn": ["Engineers"],
            "member": sorted([ada, bob, carol]),
        }
    }


def test_moves_keep_the_link_and_a_move_out_of_scope_is_a_scope_exit(
    module_dc: SambaDc, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    """Container the domain root, scope OU=Team by its DN (issue 19, point 4): a user moved
    into a sub-OU of Team stays the same SCIM user (objectGUID anchor), one moved out of Team
    is a scope exit (disabled: PATCH active=false), not a delete; neither is re-created."""
    connection = module_dc.connect()
    try:
        team = add_ou(connection, "Team")
        away = add_ou(connection, "Away")
        dan = add_user(connection, "dan", team, sn="Mover")
        fay = add_user(connection, "fay", team, sn="Leaver")
    finally:
        connection.unbind()
    scim = make_scim_server("scim")
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    secrets = {**source_secrets(module_dc), "BaseAddress": scim.url,
               "SecretToken": scim.token.reveal(), "HardDeletesEnabled": "True"}  # fmt: skip
    job_id, _ = job(engine, "adToScim", secrets, team)
    run(engine, job_id)
    before = {u["userName"]: u for u in scim.request("GET", "/Users").json()["Resources"]}
    assert set(before) == {"dan@example.org", "fay@example.org"}

    connection = module_dc.connect()
    try:
        sub = add_ou(connection, "Sub", team)
        assert connection.modify_dn(dan, "CN=dan", new_superior=sub)
        assert connection.modify_dn(fay, "CN=fay", new_superior=away)
    finally:
        connection.unbind()
    scim.clear_requests()
    run(engine, job_id)
    after = {u["userName"]: u for u in scim.request("GET", "/Users").json()["Resources"]}
    assert {name: user["id"] for name, user in after.items()} == {
        name: user["id"] for name, user in before.items()
    }
    assert (after["dan@example.org"]["active"], after["fay@example.org"]["active"]) == (True, False)
    writes = [(r.method, r.path) for r in scim.requests() if r.method != "GET"]
    assert writes == [("PATCH", f"/v2/Users/{before['fay@example.org']['id']}")]
