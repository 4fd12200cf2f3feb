"""Adversary tests of issue 19 (Active Directory as source and target) against real Samba DCs:
hostile watermarks, references to a DN another entry took over, an account created in one
write (nothing a crash between two writes could leave half made), and real runner processes
(tests.ldap.job_worker) SIGKILLed mid-cycle of scimToAd and adToScim."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connectors.base import WatermarkExpired
from connectors.ldap.config import ad_users
from connectors.ldap.target import LdapTarget
from engine import SyncEngine, SystemClock
from tests.ad.ad_objects import DISABLED, add_group, add_ou, add_users, guid_of, modify
from tests.ad.samba import ADMIN_UPN, BASE_DN, TLS_SERVER_NAME, SambaDc
from tests.ad.test_ad_deltas import make_source, read
from tests.ad.test_ad_target import PASSWORD, endpoint, user
from tests.ad.test_ad_templates import job, source_secrets
from tests.ldap.job_worker import kill_when, settle, start_worker
from tests.scim.conftest import make_scim_server
from tests.scim.server import ScimServer

__all__ = ["make_scim_server"]  # the fixture this module uses


def _hostile(mode: str, mark: str) -> list[str]:
    if mode == "usn":
        dc = mark.split(":")[1]  # u:<invocationId>:<USN>[:<DC time>]
        return [
            f"u:{dc}:\u00b2",  # str.isdigit() is True for it, int() refuses it
            f"u:{dc}:-1", f"u:{dc}:{10**30}", f"u:{dc}:", "u:", "u:garbage",
            f"u:{uuid.uuid4()}:5",  # another DC's invocationId
            f"u:{dc}:5:yesterday", f"u:{dc}:5:99999999999999",  # a last full read's bad time
            f"f:u:{dc}:\u00b2|{uuid.uuid4()}",  # a full read's resume point with a bad start
            f"f:u:garbage|{uuid.uuid4()}",
        ]  # fmt: skip
    cookie = base64.b64decode(mark[2:])
    cut = base64.b64encode(cookie[: len(cookie) // 2]).decode()
    return [
        "d:!!!", "d:a|b|c", f"d:{cut}",  # a cookie cut short: Samba says LDAP 12 to it
        "d:" + base64.b64encode(cookie[:-1]).decode(),
        "d:" + base64.b64encode(cookie[:10] + b"\xff" * (len(cookie) - 10)).decode(),
        f"f:d:!!!|{uuid.uuid4()}",
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["usn", "dirsync"])
def test_a_hostile_watermark_reads_everything_again(module_dc: SambaDc, mode: str) -> None:
    """Every corrupted watermark is WatermarkExpired (the engine reads everything again), never
    another error that fails every cycle, and never a resume that ends on a bad watermark."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"h{tag}")
        add_users(connection, [f"h{i}{tag}" for i in range(3)], root)
    source = make_source(module_dc, root, mode)
    try:
        _, pages = read(source, "User", None)
        for mark in _hostile(mode, pages[-1].watermark):
            with pytest.raises(WatermarkExpired):
                read(source, "User", mark)
    finally:
        source.close()


def _accounts(dc: SambaDc, tag: str, connection: ldap3.Connection | None = None) -> dict[str, Any]:
    """Our accounts (sAMAccountName ends with ``tag``): userAccountControl, pwdLastSet and
    how many writes made them (uSNChanged - uSNCreated: 0 for one add)."""
    names = ["sAMAccountName", "userAccountControl", "pwdLastSet", "uSNCreated", "uSNChanged"]
    bound = connection or dc.connect()
    try:
        bound.search(BASE_DN, f"(&(objectClass=user)(sAMAccountName=*{tag}))", attributes=names)
        found = [e["raw_attributes"] for e in bound.response if e["type"] == "searchResEntry"]
    finally:
        if connection is None:
            bound.unbind()
    return {
        raw["sAMAccountName"][0].decode(): {
            "control": int(raw["userAccountControl"][0]),
            "pwdLastSet": int(raw["pwdLastSet"][0]),
            "writes": int(raw["uSNChanged"][0]) - int(raw["uSNCreated"][0]),
        }
        for raw in found
    }


def test_an_account_is_created_with_its_password_in_one_write(module_dc: SambaDc) -> None:
    """Nothing for a crash to split: the password and the enable are part of the add."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        synced = add_ou(connection, f"o{tag}")
    target = LdapTarget(endpoint(module_dc), [ad_users(BASE_DN, synced)])
    try:
        target.create("User", user(f"one{tag}", unicodePwd=PASSWORD))
        target.create("User", user(f"bare{tag}"))
    finally:
        target.close()
    accounts = _accounts(module_dc, tag)
    assert accounts[f"one{tag}"]["control"] == 512 and accounts[f"one{tag}"]["pwdLastSet"] > 0
    assert accounts[f"bare{tag}"]["control"] == 514  # no password: disabled
    assert {a["writes"] for a in accounts.values()} == {0}


def test_a_runner_killed_while_creating_accounts_leaves_none_without_a_password(
    module_dc: SambaDc, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    """scimToAd run by a real process, SIGKILLed as soon as the DC holds a new account of its
    cycle. Before, an account was added disabled and given its password by a second write: a
    kill between the two left it without one, the retry joined it (by userPrincipalName),
    never sent the ObjectAddOnly password again and enabled it with none."""
    tag = uuid.uuid4().hex[:6]
    scim = make_scim_server("scim")
    for index in range(12):
        name = {"familyName": "Killed", "givenName": f"K{index}"}
        scim.create("Users", {"userName": f"k{index}{tag}@example.org", "name": name})
    state = tmp_path / "s.db"
    engine = SyncEngine(state, SystemClock())
    app = engine.create_application("ad").id
    engine.set_secrets(app, {
        "SourceBaseAddress": scim.url, "SourceSecretToken": scim.token.reveal(),
        "Url": module_dc.ldaps_url, "UserName": ADMIN_UPN,
        "Password": module_dc.password.reveal(), "BaseDn": BASE_DN,
        "CaFile": module_dc.ca_file, "TlsServerName": TLS_SERVER_NAME,
    })  # fmt: skip
    job_id = engine.create_job("scimToAd", application_id=app).id or ""
    engine.start(job_id)
    engine.close()

    with module_dc.connect() as watch:  # one connection: polled as fast as it answers
        for wanted in (2, 5, 8):  # killed three times, as soon as the DC shows a new account
            worker = start_worker(state, job_id)
            ready = lambda n=wanted: len(_accounts(module_dc, tag, watch)) >= n  # noqa: E731
            assert kill_when(worker, ready, 60)
    settle(state, job_id)
    accounts = _accounts(module_dc, tag)
    assert len(accounts) == 12
    without = {n for n, a in accounts.items() if a["pwdLastSet"] == 0 or a["control"] != 512}
    assert without == set()


@pytest.mark.parametrize("mode", ["usn", "dirsync"])
@pytest.mark.parametrize("group_read", ["delta", "full"])
def test_a_member_whose_dn_another_user_took_over_is_that_user(
    module_dc: SambaDc, mode: str, group_read: str
) -> None:
    """An old hand moves to another OU and a new one takes their DN (CN=John Smith is
    common), then joins a group, between the job's read of users and its read of groups: the
    group's member DN names the new user. The DN -> anchor cache, filled by the users' read,
    still gave it the old one's objectGUID, and nothing read the group again."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"c{tag}")
        one, two = add_ou(connection, "one", root), add_ou(connection, "two", root)
        (old,) = add_users(connection, [f"smith{tag}"], one)
        group = add_group(connection, f"g{tag}", one)
        old_guid = guid_of(connection, old)
    source = make_source(module_dc, root, mode)
    try:
        read(source, "User", None)  # fills the DN -> anchor cache: old's DN is old's
        _, pages = read(source, "Group", None) if group_read == "delta" else ([], [])
        with module_dc.connect() as connection:
            assert connection.modify_dn(old, old.split(",")[0], new_superior=two)
            (new,) = add_users(connection, [f"smith{tag}"[::-1]], one)
            assert connection.modify_dn(new, old.split(",")[0])  # the new one takes old's DN
            assert connection.modify(group, {"member": [(ldap3.MODIFY_ADD, [old])]})
            new_guid = guid_of(connection, old)
        assert new_guid != old_guid
        changes, _ = read(source, "Group", pages[-1].watermark if pages else None)
        members = {c.anchor: c.attributes for c in changes if c.kind == "upsert"}
        assert [m["member"] for m in members.values()] == [[new_guid]], old_guid
    finally:
        source.close()


def _writes(scim: ScimServer) -> int:
    return sum(1 for r in scim.requests() if r.method in ("POST", "PATCH", "PUT", "DELETE"))


def _scim_users(scim: ScimServer) -> dict[str, dict[str, Any]]:
    listed = scim.request("GET", "/Users", params={"count": "500"}).json()["Resources"]
    names = [u["userName"] for u in listed]
    assert len(names) == len(set(names)), "a user was created twice"
    return {u["userName"]: u for u in listed}


def test_an_ad_to_scim_runner_killed_mid_cycle_converges(
    module_dc: SambaDc, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    """adToScim (usn deltas, users scoped to OU=Team by their DN) run by a real process,
    SIGKILLed in its first cycle and again in a delta cycle while users are added, renamed,
    moved out of the OU and back in, disabled, deleted, and group members change: once it
    settles, SCIM holds exactly the users in scope, each once, and the group's members."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        team, away = add_ou(connection, f"Team{tag}"), add_ou(connection, f"Away{tag}")
        people = add_users(connection, [f"m{i}{tag}" for i in range(40)], team)
        group = add_group(connection, f"crew{tag}", team, people[:20])
    scim = make_scim_server("scim")
    state = tmp_path / "s.db"
    engine = SyncEngine(state, SystemClock())
    secrets = {**source_secrets(module_dc), "BaseAddress": scim.url,
               "SecretToken": scim.token.reveal()}  # fmt: skip
    job_id, _ = job(engine, "adToScim", secrets, team)
    engine.close()

    worker = start_worker(state, job_id)
    assert kill_when(worker, lambda: _writes(scim) >= 15, 60)  # inside the first cycle
    with module_dc.connect() as connection:
        moved_out, moved_back, renamed, disabled, deleted = people[20:25]
        assert connection.modify_dn(moved_out, moved_out.split(",")[0], new_superior=away)
        assert connection.modify_dn(moved_back, moved_back.split(",")[0], new_superior=away)
        back = f"{moved_back.split(',')[0]},{away}"
        assert connection.modify_dn(back, moved_back.split(",")[0], new_superior=team)
        assert connection.modify_dn(renamed, f"CN=renamed{tag}")
        modify(connection, disabled, {"userAccountControl": DISABLED})
        assert connection.delete(deleted)
        added = add_users(connection, [f"n{i}{tag}" for i in range(10)], team)
        member = {"member": [(ldap3.MODIFY_ADD, added[:3]), (ldap3.MODIFY_DELETE, people[:2])]}
        assert connection.modify(group, member)
    scim.clear_requests()
    worker = start_worker(state, job_id)
    assert kill_when(worker, lambda: _writes(scim) >= 10, 60)  # inside a later cycle
    with module_dc.connect() as connection:  # and more while it is down
        assert connection.modify_dn(f"CN=renamed{tag},{team}", "CN=again", new_superior=away)
        assert connection.modify(group, {"member": [(ldap3.MODIFY_ADD, [people[30]])]})
    settle(state, job_id)

    with module_dc.connect() as connection:
        connection.search(team, "(&(objectClass=user)(objectCategory=person))",
                          attributes=["userPrincipalName", "userAccountControl"])  # fmt: skip
        found = [e["raw_attributes"] for e in connection.response if e["type"] == "searchResEntry"]
        expected = {
            raw["userPrincipalName"][0].decode(): not int(raw["userAccountControl"][0]) & 2
            for raw in found
        }
        connection.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        crew = {
            m.decode().split(",")[0][3:] for m in connection.response[0]["raw_attributes"]["member"]
        }
    users = _scim_users(scim)
    active = {name: bool(u.get("active", True)) for name, u in users.items()}
    assert {n: a for n, a in active.items() if n in expected} == expected
    assert all(not a for n, a in active.items() if n not in expected)  # scope exits: inactive
    (listed,) = scim.request("GET", "/Groups").json()["Resources"]
    ids = {u["id"]: name.split("@")[0] for name, u in users.items()}
    assert {ids[m["value"]] for m in listed.get("members", [])} == crew
