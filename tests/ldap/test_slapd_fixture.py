"""The throwaway slapd fixtures themselves, checked with ldap3 against the real servers."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPInvalidCredentialsResult, LDAPNoSuchObjectResult

from engine import SystemClock
from tests.ldap import slapd as slapd_module
from tests.ldap.slapd import ACCESSLOG_DN, BASE_DN, PEOPLE_DN, ROOT_DN, Slapd, port_open

PERSON = ["top", "person", "organizationalPerson", "inetOrgPerson"]


def add_person(connection: ldap3.Connection, uid: str, **attributes: Any) -> str:
    dn = f"uid={uid},{PEOPLE_DN}"
    connection.add(dn, PERSON, {"cn": uid.title(), "sn": "Test", **attributes})
    return dn


def read(connection: ldap3.Connection, dn: str) -> dict[str, list[bytes]] | None:
    try:
        connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["*"])
    except LDAPNoSuchObjectResult:
        return None
    raw: dict[str, list[bytes]] = connection.response[0]["raw_attributes"]
    return raw


def log_since(connection: ldap3.Connection, start: str, dn: str) -> list[dict[str, list[bytes]]]:
    """Accesslog records for ``dn`` from ``start`` (GeneralizedTime), in reqStart order."""
    connection.search(
        ACCESSLOG_DN,
        f"(&(objectClass=auditWriteObject)(reqStart>={start})(reqDN={dn}))",
        attributes=["reqStart", "reqType", "reqMod", "reqOld", "reqResult"],
    )
    records = [entry["raw_attributes"] for entry in connection.response]
    return sorted(records, key=lambda record: record["reqStart"][0])  # raw string, gotcha 2


def test_root_bind_works_and_a_wrong_password_is_refused(slapd_source: Slapd) -> None:
    """The root DN binds with the instance's password; a wrong one is refused."""
    connection = slapd_source.connect()
    assert connection.extend.standard.who_am_i() == f"dn:{ROOT_DN}"
    connection.search(BASE_DN, "(objectClass=organizationalUnit)", ldap3.LEVEL, attributes=["ou"])
    # the seeded OUs; other tests add containers of their own (ou=t<unique>) next to them
    assert {"groups", "people"} <= {str(entry.ou) for entry in connection.entries}
    connection.unbind()
    with pytest.raises(LDAPInvalidCredentialsResult):
        slapd_source.connect(password="not-the-password")
    secret = slapd_source.password.reveal()
    assert secret not in repr(slapd_source) and secret not in f"{slapd_source.password}"
    assert secret not in (slapd_source.directory / "config.ldif").read_text()


def test_person_add_modify_delete(slapd_source: Slapd) -> None:
    """An inetOrgPerson under ou=people can be added, modified and deleted."""
    connection = slapd_source.connect()
    dn = add_person(connection, "grace", mail="grace@example.org")
    assert (read(connection, dn) or {}).get("mail") == [b"grace@example.org"]
    connection.modify(dn, {"mail": [(ldap3.MODIFY_REPLACE, ["hopper@example.org"])]})
    assert (read(connection, dn) or {}).get("mail") == [b"hopper@example.org"]
    connection.delete(dn)
    assert read(connection, dn) is None


def test_accesslog_records_add_modify_and_delete_with_old_values(slapd_source: Slapd) -> None:
    """cn=accesslog holds the add, the modify (reqMod) and the delete with its reqOld values."""
    start = (SystemClock().now() - timedelta(seconds=1)).astimezone(UTC)
    connection = slapd_source.connect()
    dn = add_person(connection, "ada", mail="ada@example.org")
    connection.modify(dn, {"mail": [(ldap3.MODIFY_REPLACE, ["lovelace@example.org"])]})
    connection.delete(dn)
    records = log_since(connection, start.strftime("%Y%m%d%H%M%SZ"), dn)
    assert [record["reqType"] for record in records] == [[b"add"], [b"modify"], [b"delete"]]
    assert all(record["reqResult"] == [b"0"] for record in records)
    add, modify, delete = records
    assert b"mail:+ ada@example.org" in add["reqMod"]
    assert b"mail:= lovelace@example.org" in modify["reqMod"]
    assert b"mail: ada@example.org" in modify["reqOld"]
    assert {b"uid: ada", b"mail: lovelace@example.org"} <= set(delete["reqOld"])
    assert any(value.startswith(b"entryUUID: ") for value in delete["reqOld"])


def test_source_and_target_are_independent(slapd_source: Slapd, slapd_target: Slapd) -> None:
    """A write to the source is not seen on the target: two servers, two directories."""
    assert slapd_source.port != slapd_target.port and slapd_source.pid != slapd_target.pid
    assert slapd_source.directory != slapd_target.directory
    source, target = slapd_source.connect(), slapd_target.connect()
    dn = add_person(source, "alan")
    assert read(source, dn) is not None
    assert read(target, dn) is None
    assert log_since(target, "19700101000000Z", dn) == []
    with pytest.raises(LDAPInvalidCredentialsResult):  # each instance has its own root password
        slapd_target.connect(password=slapd_source.password)
    source.delete(dn)


def test_stopped_instance_is_gone(make_slapd: Callable[[str], Slapd]) -> None:
    """After stop the process has exited, its port is closed and its directory removed."""
    server = make_slapd("short-lived")
    pid, port, directory = server.pid, server.port, server.directory
    assert pid is not None and port_open(port) and directory.is_dir()
    assert (directory / "slapd.pid").read_text().strip() == str(pid)
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_open(port)
    assert not directory.exists()


def test_a_missing_slapd_skips_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without slapd the fixtures skip with a reason; with CI=true they fail instead."""
    monkeypatch.setattr(slapd_module, "missing_components", lambda: ["slapd"])
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="slapd is not installed"):
        slapd_module.require_slapd()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: slapd is not installed"):
        slapd_module.require_slapd()
