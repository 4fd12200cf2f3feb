"""Objects in a test DC, added the way an AD administrator's tools add them: OUs, users
(sAMAccountName, userPrincipalName, enabled with no password needed: userAccountControl 544),
groups (global security groups) with members."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ldap3

from tests.ad.samba import BASE_DN, REALM

ENABLED = 544  # NORMAL_ACCOUNT (512) + PASSWD_NOTREQD (32)
DISABLED = 546  # ... + ACCOUNTDISABLE (2)
GLOBAL_SECURITY_GROUP = -2147483646  # 0x80000002


def _check(connection: ldap3.Connection, ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"{what}: {connection.result}")


def add_ou(connection: ldap3.Connection, name: str, parent: str = BASE_DN) -> str:
    dn = f"OU={name},{parent}"
    _check(connection, connection.add(dn, ["top", "organizationalUnit"]), f"add {dn}")
    return dn


def user_dn(name: str, ou: str) -> str:
    return f"CN={name},{ou}"


def add_user(connection: ldap3.Connection, name: str, ou: str, **attributes: Any) -> str:
    """A user ``name`` (its cn and sAMAccountName) in ``ou``, enabled; more attributes given as
    keywords (``givenName="Ada"``)."""
    dn = user_dn(name, ou)
    values: dict[str, Any] = {
        "sAMAccountName": name,
        "userPrincipalName": f"{name}@{REALM.lower()}",
        "userAccountControl": ENABLED,
        **attributes,
    }
    classes = ["top", "person", "organizationalPerson", "user"]
    _check(connection, connection.add(dn, classes, values), f"add {dn}")
    return dn


def add_users(connection: ldap3.Connection, names: Iterable[str], ou: str) -> list[str]:
    return [add_user(connection, name, ou, givenName=name, sn="Test") for name in names]


def add_group(connection: ldap3.Connection, name: str, ou: str, members: Sequence[str] = ()) -> str:
    dn = f"CN={name},{ou}"
    values: dict[str, Any] = {"sAMAccountName": name, "groupType": GLOBAL_SECURITY_GROUP}
    if members:
        values["member"] = list(members)
    _check(connection, connection.add(dn, ["top", "group"], values), f"add {dn}")
    return dn


def modify(connection: ldap3.Connection, dn: str, changes: Mapping[str, Any]) -> None:
    """Replace each named attribute with the given value(s)."""
    request = {name: [(ldap3.MODIFY_REPLACE, value if isinstance(value, list) else [value])]
               for name, value in changes.items()}  # fmt: skip
    _check(connection, connection.modify(dn, request), f"modify {dn}")


def guid_of(connection: ldap3.Connection, dn: str) -> str:
    """An entry's objectGUID in the text form AD shows."""
    connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    raw = connection.response[0]["raw_attributes"]["objectGUID"][0]
    return str(uuid.UUID(bytes_le=bytes(raw)))
