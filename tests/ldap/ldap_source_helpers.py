"""Building an LdapSource over a test's own container of a throwaway slapd, and seeding it.

Each test works under ``ou=<unique>,dc=example,dc=org`` (with ``ou=people`` and ``ou=groups``
below it), so tests sharing the session's slapd never see each other's entries. ``seed`` writes
the way a directory's own tools would (plain LDAP adds and modifies as the root DN), so the
accesslog records it like any change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from connectors.base import Change
from connectors.ldap import LdapEndpoint, LdapObjectType, LdapSource, groups, people
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd

PERSON = ("top", "person", "organizationalPerson", "inetOrgPerson")
GROUP = ("top", "groupOfNames")
#: object type name -> (container RDN, naming attribute, object classes, key attribute): the
#: key a test names an entry by lives in its own attribute, so the naming attribute may change
#: (a rename) and the entry is still found by its key
LAYOUT = {
    "User": ("ou=people", "uid", PERSON, "employeeNumber"),
    "Group": ("ou=groups", "cn", GROUP, "businessCategory"),
}


def unique_container() -> str:
    return f"ou=t{uuid.uuid4().hex[:12]},{BASE_DN}"


def ensure_container(connection: ldap3.Connection, container_dn: str) -> None:
    """The container and its ou=people / ou=groups (already there is fine)."""
    for dn in (container_dn, f"ou=people,{container_dn}", f"ou=groups,{container_dn}"):
        name = dn.split(",", 1)[0].split("=", 1)[1]
        try:
            connection.add(dn, ["organizationalUnit"], {"ou": name})
        except ldap3.core.exceptions.LDAPEntryAlreadyExistsResult:
            pass


def object_types(container_dn: str) -> list[LdapObjectType]:
    """The default types: people and groups as :mod:`connectors.ldap.config` defines them."""
    return [people(container_dn), groups(container_dn)]


def make_source(
    slapd: Slapd,
    container_dn: str,
    *,
    types: Iterable[LdapObjectType] | Mapping[str, LdapObjectType] | None = None,
    bind_dn: str = ROOT_DN,
    password: str | None = None,
    **options: Any,
) -> LdapSource:
    """An LdapSource on ``slapd`` reading ``container_dn`` (created if missing), as root by
    default; ``options`` go to LdapSource (delta_mode, timestamp_overlap, ...)."""
    connection = slapd.connect()
    try:
        ensure_container(connection, container_dn)
    finally:
        connection.unbind()
    endpoint = LdapEndpoint(
        url=slapd.url,
        bind_dn=bind_dn,
        password=slapd.password.reveal() if password is None else password,
    )
    options.setdefault("directory_base", container_dn)
    return LdapSource(endpoint, types or object_types(container_dn), **options)


def dn_of(
    connection: ldap3.Connection, container_dn: str, object_type: str, key: str
) -> str | None:
    """The DN of the entry ``seed`` made under ``key`` (wherever a rename put it), or None."""
    container, _, _, key_attribute = LAYOUT[object_type]
    try:
        connection.search(
            f"{container},{container_dn}",
            f"({key_attribute}={escape_filter_chars(key)})",
            attributes=["1.1"],
        )
    except ldap3.core.exceptions.LDAPNoSuchObjectResult:
        return None
    return str(connection.response[0]["dn"]) if connection.response else None


def seed(
    connection: ldap3.Connection,
    container_dn: str,
    object_type: str,
    key: str,
    attributes: dict[str, Any],
) -> str:
    """Add the entry named ``key``, or replace its attributes if it exists (so it keeps its
    entryUUID, as a real edit would: a new naming value is a modrdn); returns its entryUUID.
    Users get cn/sn = key and groups a dangling member unless ``attributes`` give them (their
    schema requires them); the key is kept in employeeNumber / businessCategory."""
    container, naming, classes, key_attribute = LAYOUT[object_type]
    values = {**_required(object_type, container_dn, key), **attributes, key_attribute: key}
    name = str(_list(values.setdefault(naming, key))[0])
    dn = dn_of(connection, container_dn, object_type, key)
    wanted = f"{naming}={escape_rdn(name)},{container},{container_dn}"
    if dn is None:
        try:
            connection.add(wanted, list(classes), values)
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:  # the container is not there yet
            ensure_container(connection, container_dn)
            connection.add(wanted, list(classes), values)
        dn = wanted
    else:
        if dn.lower() != wanted.lower():
            connection.modify_dn(dn, f"{naming}={escape_rdn(name)}")
            dn = wanted
        _replace(connection, dn, naming, values)
    found = _read(connection, dn, ["entryUUID"])
    assert found is not None
    return str(found["entryUUID"][0].decode())


def _replace(connection: ldap3.Connection, dn: str, naming: str, values: dict[str, Any]) -> None:
    """Replace the given attributes and delete the other user attributes."""
    current = _read(connection, dn) or {}
    keep = {"objectclass", naming.lower(), *(name.lower() for name in values)}
    changes: dict[str, Any] = {
        n: [(ldap3.MODIFY_REPLACE, _list(v))] for n, v in values.items() if n.lower() != naming
    }
    for name in current:
        if name.lower() not in keep:
            changes[name] = [(ldap3.MODIFY_DELETE, [])]
    connection.modify(dn, changes)


def remove(connection: ldap3.Connection, container_dn: str, object_type: str, key: str) -> None:
    dn = dn_of(connection, container_dn, object_type, key)
    if dn is not None:
        connection.delete(dn)


def _required(object_type: str, container_dn: str, key: str) -> dict[str, Any]:
    if object_type == "User":
        return {"cn": key, "sn": key}
    return {"member": [f"cn=nobody,{container_dn}"]}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _read(
    connection: ldap3.Connection, dn: str, attributes: list[str] | None = None
) -> dict[str, list[bytes]] | None:
    try:
        connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes or ["*"])
    except ldap3.core.exceptions.LDAPNoSuchObjectResult:
        return None
    if not connection.response:
        return None
    raw: dict[str, list[bytes]] = connection.response[0]["raw_attributes"]
    return raw


def read_through(
    source: LdapSource, kind: str, watermark: str | None, page_size: int = 500
) -> tuple[list[Change], str]:
    """Every page of one read, as the engine consumes it: the changes, the last watermark."""
    changes: list[Change] = []
    last = watermark
    for page in source.read(kind, watermark, page_size):
        changes += page.changes
        last = page.watermark
    assert last is not None
    return changes, last
