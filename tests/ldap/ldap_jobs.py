"""ldapToLdap jobs between two real slapd servers, for the integration and kill tests and the
benchmark: a directory of people and groups under a base of its own on each server, the
secrets that point a job at them, and a comparable picture of each side.

Both sides use the same base (``ou=<name>,dc=example,dc=org``), so a target entry's DN equals
its source entry's DN: the picture compares the two directly.
"""

from __future__ import annotations

import secrets as random_names
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import ldap3

from engine import ManualClock, SyncEngine
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd

PERSON = ["inetOrgPerson"]
GROUP = ["groupOfNames"]
#: what the picture compares: the attributes the template maps
USER_ATTRIBUTES = ("uid", "cn", "sn", "givenName", "displayName", "mail", "title",
                   "telephoneNumber", "employeeNumber", "departmentNumber", "manager")  # fmt: skip
GROUP_ATTRIBUTES = ("cn", "description", "member")


@attrs.frozen
class Tree:
    """One job's base on both servers."""

    source: Slapd
    target: Slapd
    base: str

    @property
    def people(self) -> str:
        return f"ou=people,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base}"

    def user_dn(self, n: int | str) -> str:
        return f"uid={user_name(n)},{self.people}"

    def group_dn(self, n: int | str) -> str:
        return f"cn={group_name(n)},{self.groups}"

    def secrets(self, **extra: str) -> dict[str, str]:
        """The application's secrets for an ldapToLdap job between the two bases."""
        return {
            "SourceUrl": self.source.url,
            "SourceUserName": ROOT_DN,
            "SourcePassword": self.source.password.reveal(),
            "SourceBaseDn": self.base,
            "Url": self.target.url,
            "UserName": ROOT_DN,
            "Password": self.target.password.reveal(),
            "BaseDn": self.base,
            **extra,
        }


def user_name(n: int | str) -> str:
    return f"u{n:05d}" if isinstance(n, int) else n


def group_name(n: int | str) -> str:
    return f"g{n:03d}" if isinstance(n, int) else n


def make_tree(source: Slapd, target: Slapd, name: str | None = None) -> Tree:
    """A fresh base with ou=people and ou=groups on both servers."""
    tree = Tree(source, target, f"ou={name or 'j' + random_names.token_hex(5)},{BASE_DN}")
    for server in (source, target):
        add_containers(server, tree)
    return tree


def add_containers(server: Slapd, tree: Tree) -> None:
    """The tree's base, ou=people and ou=groups on ``server``."""
    connection = server.connect()
    try:
        for dn in (tree.base, tree.people, tree.groups):
            connection.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]})
    finally:
        connection.unbind()


def person(tree: Tree, n: int, managers: bool = True, **extra: Any) -> dict[str, Any]:
    """User ``n``; its manager is user ``n // 10`` (users below 100 are everybody's managers)."""
    name = user_name(n)
    values: dict[str, Any] = {
        "uid": name,
        "cn": f"User {n}",
        "sn": f"Surname{n}",
        "givenName": f"Given{n}",
        "displayName": f"User {n}",
        "mail": f"{name}@example.org",
        "title": "Engineer",
        "employeeNumber": str(n),
    }
    if managers and n > 0:
        values["manager"] = tree.user_dn(n // 10)
    values.update(extra)
    return values


def seed(tree: Tree, users: int, groups: int = 0, members: int = 50, managers: bool = True) -> None:
    """``users`` people, then ``groups`` groups: group j has users j, j+groups, ... (at most
    ``members``), so each user is in at most one group."""
    connection = tree.source.connect()
    try:
        for n in range(users):
            connection.add(tree.user_dn(n), PERSON, person(tree, n, managers))
        for j in range(groups):
            names = [tree.user_dn(n) for n in range(j, users, groups)][:members]
            values = {"cn": group_name(j), "description": f"Group {j}", "member": names}
            connection.add(tree.group_dn(j), GROUP, values)
    finally:
        connection.unbind()


def entries(
    server: Slapd, base: str, filter_: str, names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """DN (lower case) -> the named attributes (values as sorted lists, DNs lower case)."""
    connection = server.connect()
    try:
        found = connection.extend.standard.paged_search(
            base, filter_, ldap3.SUBTREE, attributes=list(names), paged_size=500, generator=False
        )
        picture: dict[str, dict[str, Any]] = {}
        for entry in found:
            if entry.get("type") != "searchResEntry":
                continue
            values = {}
            for name, value in entry["attributes"].items():
                items = value if isinstance(value, list) else [value]
                if not items:
                    continue
                lowered = name.lower() in ("member", "manager")
                values[name.lower()] = sorted(str(v).lower() if lowered else str(v) for v in items)
            picture[entry["dn"].lower()] = values
        return picture
    finally:
        connection.unbind()


def picture(server: Slapd, tree: Tree) -> dict[str, dict[str, Any]]:
    """Every user and group of the tree on one server, comparable across servers.

    References to entries that do not exist are left out: the test servers have no refint
    overlay, so a deleted or renamed user's old DN stays in the source's groups, and the
    engine, like Entra, provisions only references to objects that exist.
    """
    found = {
        **entries(server, tree.people, "(objectClass=inetOrgPerson)", USER_ATTRIBUTES),
        **entries(server, tree.groups, "(objectClass=groupOfNames)", GROUP_ATTRIBUTES),
    }
    for values in found.values():
        for name in ("member", "manager"):
            if name in values:
                values[name] = [dn for dn in values[name] if dn in found]
                if not values[name]:
                    del values[name]
    return found


def modify(server: Slapd, changes: Mapping[str, dict[str, list[tuple[str, list[Any]]]]]) -> None:
    connection = server.connect()
    try:
        for dn, change in changes.items():
            if not connection.modify(dn, change):
                raise AssertionError(f"modify {dn}: {connection.result}")
    finally:
        connection.unbind()


def count(server: Slapd, base: str, filter_: str = "(objectClass=inetOrgPerson)") -> int:
    connection = server.connect()
    try:
        found = connection.extend.standard.paged_search(
            base, filter_, ldap3.SUBTREE, attributes=["1.1"], paged_size=1000, generator=False
        )
        return sum(1 for e in found if e.get("type") == "searchResEntry")
    finally:
        connection.unbind()


def ldap_job(
    tree: Tree, state: Path, clock: ManualClock | None = None, **settings: str
) -> tuple[SyncEngine, str]:
    """An engine on ``state`` with an ldapToLdap job between the tree's bases, started."""
    engine = SyncEngine(state, clock or ManualClock())
    app = engine.create_application("ldap").id
    engine.set_secrets(app, tree.secrets())
    job_id = engine.create_job("ldapToLdap", settings=settings or None, application_id=app).id
    assert job_id is not None
    engine.start(job_id)
    return engine, job_id
