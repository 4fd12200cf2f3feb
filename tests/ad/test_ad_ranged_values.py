"""Ranged values from a real AD DC (issue 19, point 5): a group's members come in parts
(``member;range=0-24``, ``member;range=25-49``, ...) and every read converting entries (full
read, get, timestamp delta) reads them to the end, under the plain name ``member``.

Samba 4.17 has no MaxValRange of its own (measured: ``member;range=0-*`` brings all 1,600
members of a group; ``member;range=0-9`` exactly ten, named so), so the type asks for parts of
25 values (``range_size``) and the path Windows takes beyond 1,500 values runs here with 60.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import ldap3
import pytest

from connectors.base import Change
from connectors.ldap import LdapEndpoint, LdapObjectType, LdapSource
from tests.ad.ad_objects import add_group, add_ou, add_user, guid_of
from tests.ad.samba import ADMIN_UPN, BASE_DN, SambaDc

MEMBERS = 60


@attrs.frozen
class Directory:
    dc: SambaDc
    ou: str
    group: str
    members: list[str]


@pytest.fixture(scope="module")
def directory(module_dc: SambaDc) -> Directory:
    connection = module_dc.connect()
    try:
        ou = add_ou(connection, "Ranged")
        members = [add_user(connection, f"r{n:04d}", ou) for n in range(MEMBERS)]
        group = add_group(connection, "big", ou, members)
        return Directory(module_dc, ou, group, members)
    finally:
        connection.unbind()


def group_type(ou: str, range_size: int) -> LdapObjectType:
    return LdapObjectType(
        name="Group",
        base_dn=ou,
        filter="(objectClass=group)",
        anchor_attribute="objectGUID",
        references=("member",),
        multivalued=("member",),
        attributes=("cn", "member"),
        range_size=range_size,
    )


@pytest.fixture
def source(directory: Directory) -> Iterator[LdapSource]:
    endpoint = LdapEndpoint(
        url=directory.dc.url, bind_dn=ADMIN_UPN, password=directory.dc.password.reveal()
    )
    kind = group_type(directory.ou, 25)
    made = LdapSource(endpoint, [kind], delta_mode="timestamp", directory_base=BASE_DN)
    yield made
    made.close()


def members_of(change: Change) -> list[str]:
    assert change.attributes is not None
    assert not [name for name in change.attributes if ";" in name]  # no stray ;range= keys
    found = change.attributes["member"]
    assert isinstance(found, list)
    return [str(anchor) for anchor in found]


def test_samba_answers_the_range_asked_for(directory: Directory) -> None:
    connection = directory.dc.connect()
    try:
        connection.search(directory.group, "(objectClass=*)", ldap3.BASE,
                          attributes=["member;range=0-24"])  # fmt: skip
        raw = connection.response[0]["raw_attributes"]
    finally:
        connection.unbind()
    assert "member;range=0-24" in raw  # Samba names the part (this connection reads the rest)


def test_full_read_get_and_delta_read_every_part(directory: Directory, source: LdapSource) -> None:
    connection = directory.dc.connect()
    try:
        expected = sorted(guid_of(connection, dn) for dn in directory.members)
        anchor = guid_of(connection, directory.group)
    finally:
        connection.unbind()
    pages = list(source.read("Group", None, 100))
    (change,) = [c for page in pages for c in page.changes]
    assert change.anchor == anchor and sorted(members_of(change)) == expected
    searches = source._lookup.client.operations["search"]
    got = source.get("Group", anchor)
    assert got is not None
    assert sorted(members_of(Change("upsert", anchor, got))) == expected
    assert source._lookup.client.operations["search"] - searches == 3  # 0-24, 25-49, 50-*

    connection = directory.dc.connect()
    try:
        late = add_user(connection, "late", directory.ou)
        connection.modify(directory.group, {"member": [(ldap3.MODIFY_ADD, [late])]})
        expected.append(guid_of(connection, late))
    finally:
        connection.unbind()
    delta = [c for page in source.read("Group", pages[-1].watermark, 100) for c in page.changes]
    assert sorted(members_of(next(c for c in delta if c.anchor == anchor))) == sorted(expected)
