"""The scimToAd template end to end: SCIM users and a group into a real AD (Samba) over LDAPS
verified by the DC's name; an account that already exists elsewhere in the domain is joined;
a deleted user is disabled (hard deletes off); the random initial password lets the user log
on and shows nowhere in what the engine records or keeps (the state file holds its digest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3
import pytest

from connectors.ldap import LdapTarget
from engine import ManualClock, SyncEngine
from engine.model import TaskExecutionResult
from tests.ad.ad_objects import add_ou, add_user
from tests.ad.samba import ADMIN_UPN, BASE_DN, TLS_SERVER_NAME, USERS_DN, SambaDc
from tests.scim.conftest import make_scim_server
from tests.scim.server import ScimServer

__all__ = ["make_scim_server"]


def entry(dc: SambaDc, account: str) -> dict[str, list[str]]:
    with dc.connect() as connection:
        connection.search(BASE_DN, f"(sAMAccountName={account})",
                          attributes=["userAccountControl", "givenName", "member"])  # fmt: skip
        found = connection.response[0]
        values = {k: [bytes(v).decode() for v in vs] for k, vs in found["raw_attributes"].items()}
        return {"dn": [found["dn"]], **values}


def test_scim_users_and_a_group_into_active_directory(
    samba_dc: SambaDc, make_scim_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scim: ScimServer = make_scim_server("scim")  # type: ignore[operator]
    sent: dict[str, Any] = {}  # the password each account was created with, as the engine sent it
    create = LdapTarget.create

    def recording(target: LdapTarget, object_type: str, attributes: Any) -> str:
        sent[str(attributes.get("sAMAccountName"))] = attributes.get("unicodePwd")
        return create(target, object_type, attributes)

    monkeypatch.setattr(LdapTarget, "create", recording)
    with samba_dc.connect() as connection:
        elsewhere = add_user(connection, "worker", add_ou(connection, "Elsewhere"))

    def person(user: str, given: str, family: str, **more: object) -> dict[str, object]:
        return {"userName": f"{user}@example.org",
                "name": {"familyName": family, "givenName": given}, **more}  # fmt: skip

    boss = scim.create("Users", person("boss", "The", "Boss", displayName="The Boss"))
    worker = scim.create("Users", person("worker", "Ann", "Worker", displayName="A Worker"))
    scim.create("Users", person("gone", "Al", "Gone", active=False))
    leaver = scim.create("Users", person("leaver", "Lee", "Leaver"))
    staff = [{"value": boss["id"]}, {"value": worker["id"]}]
    scim.create("Groups", {"displayName": "staff", "members": staff})
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    app = engine.create_application("ad").id
    engine.set_secrets(app, {
        "SourceBaseAddress": scim.url, "SourceSecretToken": scim.token.reveal(),
        "Url": samba_dc.ldaps_url, "UserName": ADMIN_UPN, "Password": samba_dc.password.reveal(),
        "BaseDn": BASE_DN, "CaFile": samba_dc.ca_file, "TlsServerName": TLS_SERVER_NAME,
        "HardDeletesEnabled": "false",
    })  # fmt: skip
    job_id = engine.create_job("scimToAd", application_id=app).id or ""
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, engine.escrows(job_id)
    assert engine.escrows(job_id) == []

    created = entry(samba_dc, "boss")
    assert created["dn"][0].lower() == f"cn=boss,{USERS_DN}".lower()
    assert created["userAccountControl"] == ["512"]  # given a password, then enabled
    joined = entry(samba_dc, "worker")
    assert joined["dn"][0].lower() == elsewhere.lower()  # joined where it is, not duplicated
    assert joined["givenName"] == ["Ann"]
    assert entry(samba_dc, "gone")["userAccountControl"] == ["514"]  # active false: disabled
    members = {m.split(",")[0].lower() for m in entry(samba_dc, "staff")["member"]}
    assert members == {"cn=boss", "cn=worker"}

    # the initial password was random: the one the engine sent logs the new user on, and
    # neither a provisioning record nor the state file (WAL included) holds it
    password = sent["boss"]
    assert isinstance(password, str) and len(password) == 16
    server = ldap3.Server(samba_dc.url, get_info=ldap3.NONE, connect_timeout=5)
    assert ldap3.Connection(server, "boss@example.org", password).bind()
    records = engine.provisioning_logs(job_id)
    assert any("unicodePwd" in r.attributes for r in records if r.action == "Create")
    assert password not in "\n".join(repr(r) for r in records)
    state = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db"))
    assert b"boss@example.org" in state and password.encode() not in state

    scim.request("DELETE", f"/Users/{leaver['id']}")
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, engine.escrows(job_id)
    assert entry(samba_dc, "leaver")["userAccountControl"] == ["514"]  # disabled, not deleted
    engine.close()
