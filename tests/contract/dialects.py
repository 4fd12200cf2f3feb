"""The connectors of this repository the contract suite runs against, each as a
:class:`connectors.testing.Dialect` (what a dialect is and does is explained there).

A new connector joins by adding a factory to SOURCES and/or TARGETS (a callable taking the
pytest request, for fixtures such as a real server, and a temporary directory) and a class
naming it in ``test_connector_contract.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from connectors.memory import MemoryDirectory
from connectors.testing import Dialect
from tests.crash.sqlite_directory import SqliteDirectory


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    directory = MemoryDirectory()

    def put(object_type: str, key: str, attributes: dict[str, Any]) -> str:
        directory.put(object_type, key, attributes)
        return key

    return Dialect(directory, put, directory.remove, directory.get)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    directory = SqliteDirectory(tmp_path / "directory.sqlite")

    def put(object_type: str, key: str, attributes: dict[str, Any]) -> str:
        directory.put(object_type, key, attributes)
        return key

    return Dialect(directory, put, directory.remove, directory.get, closers=[directory.close])


#: the suite's names in an inetOrgPerson: department is a single-valued attribute there,
#: emails and proxyAddresses a multi-valued one other than mail (which the suite also uses)
LDAP_NAMES = {
    "userName": "uid",
    "department": "title",
    "emails": "departmentNumber",
}
LDAP_SOURCE_NAMES = {**LDAP_NAMES, "proxyAddresses": "departmentNumber"}
LDAP_REQUIRED = {"User": {"cn": "contract", "sn": "contract"}}


def ldap_types(container: str) -> dict[str, Any]:
    """inetOrgPerson users and groupOfNames groups in ``container``, with the suite's
    multi-valued attribute (and only it) declared multi-valued."""
    from tests.ldap.ldap_objects import object_types  # noqa: PLC0415

    return {
        name: attrs.evolve(kind, multivalued=("departmentNumber", "member"))
        for name, kind in object_types(container).items()
    }


def _ldap_source(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    from tests.ldap.ldap_source_helpers import (  # noqa: PLC0415
        make_source,
        remove,
        seed,
        unique_container,
    )

    slapd = request.getfixturevalue("slapd_source")
    container = unique_container()
    connection = slapd.connect()
    source = make_source(slapd, container, types=list(ldap_types(container).values()))

    def put(object_type: str, key: str, attributes: dict[str, Any]) -> str:
        named = {LDAP_SOURCE_NAMES.get(k, k): v for k, v in attributes.items()}
        return seed(connection, container, object_type, key, named)

    return Dialect(
        source,
        put,
        lambda object_type, key: remove(connection, container, object_type, key),
        source.get,
        names=LDAP_SOURCE_NAMES,
        closers=[connection.unbind, source.close],
    )


#: the suite's names in a SCIM User as Entra names them; proxyAddresses needs a multi-valued
#: attribute of strings, which entitlements.value is (the source is told to read it)
SCIM_SOURCE_NAMES = {
    "mail": 'emails[type eq "work"].value',
    "cn": "displayName",
    "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "proxyAddresses": "entitlements.value",
}


def _scim_source(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    """A server of the test's own (the source reads every user of it)."""
    from connectors.scim import ScimSource  # noqa: PLC0415
    from connectors.scim.paths import GROUP_SCHEMA, USER_SCHEMA, build_resource  # noqa: PLC0415

    server = request.getfixturevalue("make_scim_server")("contract-source")
    source = ScimSource(
        server.url,
        server.token.reveal(),
        extra_attributes={"User": ["entitlements.value"]},
    )
    ids: dict[tuple[str, str], str] = {}
    endpoints = {"User": ("/Users", USER_SCHEMA), "Group": ("/Groups", GROUP_SCHEMA)}

    def put(object_type: str, key: str, attributes: dict[str, Any]) -> str:
        """As an admin tool would: POST a new resource, PUT over an existing one."""
        endpoint, schema = endpoints[object_type]
        named = {SCIM_SOURCE_NAMES.get(k, k): v for k, v in attributes.items()}
        body = build_resource([schema], named)
        existing = ids.get((object_type, key))
        if existing is None:
            response = server.request("POST", endpoint, body)
        else:
            response = server.request("PUT", f"{endpoint}/{existing}", body)
        assert response.status_code in (200, 201), response.text
        ids[(object_type, key)] = response.json()["id"]
        return ids[(object_type, key)]

    def remove(object_type: str, key: str) -> None:
        anchor = ids.pop((object_type, key))
        server.request("DELETE", f"{endpoints[object_type][0]}/{anchor}")

    return Dialect(source, put, remove, source.get, names=SCIM_SOURCE_NAMES, closers=[source.close])


def _not_a_source(*_: Any) -> Any:
    raise AssertionError("this dialect is a target only")


def _ldap_target(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    from tests.ldap.ldap_objects import make_container, make_target  # noqa: PLC0415

    slapd = request.getfixturevalue("slapd_target")
    container = make_container(slapd)
    target = make_target(slapd, container, ldap_types(container))
    return Dialect(
        target,
        _not_a_source,
        _not_a_source,
        target.get,
        names=LDAP_NAMES,
        required=LDAP_REQUIRED,
        closers=[target.close],
    )


#: the suite's names as Entra's target attribute names for a SCIM app; the suite's
#: multi-valued attribute is ``roles.value`` (the target is told to read it back)
SCIM_NAMES = {
    "mail": 'emails[type eq "work"].value',
    "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "emails": "roles.value",
}


def _scim_target(request: pytest.FixtureRequest, tmp_path: Path) -> Dialect:
    from connectors.scim import ScimTarget  # noqa: PLC0415

    server = request.getfixturevalue("make_scim_server")("contract")  # fresh: fixed names
    target = ScimTarget(
        server.url, server.token.reveal(), extra_attributes={"User": ["roles.value"]}
    )
    return Dialect(
        target, _not_a_source, _not_a_source, target.get, names=SCIM_NAMES, closers=[target.close]
    )


SOURCES: dict[str, Callable[[pytest.FixtureRequest, Path], Dialect]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "ldap": _ldap_source,
    "scim": _scim_source,
}
TARGETS: dict[str, Callable[[pytest.FixtureRequest, Path], Dialect]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "ldap": _ldap_target,
    "scim": _scim_target,
}
