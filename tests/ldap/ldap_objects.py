"""Helpers to point an :class:`LdapTarget` at a container of its own on a test slapd.

The session servers are shared by every test, so each test (and the shared contract suite)
writes under its own ``ou=<unique>,dc=example,dc=org`` and sees no one else's entries.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from connectors.ldap import LdapEndpoint, LdapObjectType, LdapTarget, groups, people
from connectors.ldap.syntax import child_dn, equality_filter, rdn
from tests.ldap.slapd import ACCESSLOG_DN, BASE_DN, Slapd


def make_container(slapd: Slapd, name: str | None = None) -> str:
    """Create ``ou=<name>,dc=example,dc=org`` (a random name by default) and return its DN."""
    dn = child_dn(rdn("ou", name or f"t-{secrets.token_hex(6)}"), BASE_DN)
    connection = slapd.connect()
    try:
        connection.add(dn, ["organizationalUnit"], {})
    finally:
        connection.unbind()
    return dn


def endpoint(slapd: Slapd, **options: Any) -> LdapEndpoint:
    """The root bind of ``slapd`` as an endpoint (the password goes nowhere else)."""
    settings: dict[str, Any] = {
        "url": slapd.url,
        "bind_dn": f"cn=admin,{BASE_DN}",
        "password": slapd.password.reveal(),
        "connect_timeout": 5.0,
        "operation_timeout": 10.0,
        **options,
    }
    return LdapEndpoint(**settings)


def object_types(container_dn: str) -> dict[str, LdapObjectType]:
    """``User`` (inetOrgPerson named by uid) and ``Group`` (groupOfNames named by cn), both
    created directly in ``container_dn``."""
    return {
        "User": attrs.evolve(people(BASE_DN), base_dn=container_dn),
        "Group": attrs.evolve(groups(BASE_DN), base_dn=container_dn),
    }


def make_target(
    slapd: Slapd,
    container_dn: str,
    types: Mapping[str, LdapObjectType] | None = None,
    **options: Any,
) -> LdapTarget:
    """An LdapTarget writing under ``container_dn`` of ``slapd`` as its root DN; ``options``
    go to the LdapTarget (``find_cache_seconds``, ...)."""
    return LdapTarget(endpoint(slapd), types or object_types(container_dn), **options)


def modify_records(slapd: Slapd, dn: str) -> list[list[bytes]]:
    """The ``reqMod`` values of every modify the accesslog recorded for ``dn``, in order,
    without the operational attributes slapd adds to each (entryCSN, modifiersName, ...)."""
    connection = slapd.connect()
    try:
        connection.search(
            ACCESSLOG_DN,
            f"(&(objectClass=auditModify){equality_filter('reqDN', dn)})",
            attributes=["reqStart", "reqMod"],
        )
        records = sorted(connection.response, key=lambda r: r["raw_attributes"]["reqStart"][0])
        operational = (b"entryCSN:", b"modifiersName:", b"modifyTimestamp:")
        return [
            [v for v in record["raw_attributes"]["reqMod"] if not v.startswith(operational)]
            for record in records
        ]
    finally:
        connection.unbind()
