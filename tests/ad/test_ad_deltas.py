"""Active Directory's delta modes against a real Samba DC: ``dirsync`` (the DirSync control)
and ``usn`` (uSNChanged with Show Deleted) see exactly an add, a modify, a move with a rename
(same objectGUID, new DN), member adds and removes and a delete; DirSync resumes inside one
of its answers; a usn watermark of another DC reads everything again; DirSync without the
replication right says so and names ``usn``, which works for that user (but for deletes).

One module DC (tests use OUs and names of their own); a second DC only where the test is
about another DC."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import ldap3
import pytest

from connectors.base import Change, ConnectorError, Page, WatermarkExpired
from connectors.ldap import LdapEndpoint, LdapObjectType, LdapSource
from tests.ad.ad_objects import add_group, add_ou, add_user, add_users, guid_of, modify
from tests.ad.samba import ADMIN_UPN, REALM, USERS_DN, SambaDc

PERSON = "(&(objectClass=user)(objectCategory=person))"


def object_types(base: str) -> list[LdapObjectType]:
    return [
        LdapObjectType(
            name="User", base_dn=base, filter=PERSON, anchor_attribute="objectGUID",
            attributes=("sAMAccountName", "givenName"),
        ),
        LdapObjectType(
            name="Group", base_dn=base, filter="(objectClass=group)",
            anchor_attribute="objectGUID", references=("member",), multivalued=("member",),
            attributes=("sAMAccountName", "member"),
        ),
    ]  # fmt: skip


def make_source(
    dc: SambaDc,
    base: str,
    mode: str,
    bind: str = ADMIN_UPN,
    password: str | None = None,
    delete_scan_interval: float = 3600.0,
) -> LdapSource:
    endpoint = LdapEndpoint(url=dc.url, bind_dn=bind, password=password or dc.password.reveal())
    return LdapSource(
        endpoint, object_types(base), delta_mode=mode, delete_scan_interval=delete_scan_interval
    )


def read(
    source: LdapSource, kind: str, watermark: str | None, page_size: int = 100
) -> tuple[list[Change], list[Page]]:
    pages = list(source.read(kind, watermark, page_size))
    return [c for p in pages for c in p.changes], pages


def upserts(changes: list[Change]) -> dict[str, dict[str, object]]:
    return {c.anchor: dict(c.attributes or {}) for c in changes if c.kind == "upsert"}


def deletes(changes: list[Change]) -> set[str]:
    return {c.anchor for c in changes if c.kind == "delete"}


@pytest.mark.parametrize("mode", ["dirsync", "usn"])
def test_a_delta_sees_exactly_what_changed(module_dc: SambaDc, mode: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"t{tag}")
        one, two = add_ou(connection, "one", root), add_ou(connection, "two", root)
        u1, u2, u3, gone = add_users(connection, [f"{n}{tag}" for n in "abcd"], one)
        group = add_group(connection, f"g{tag}", one, [u1, u2])
        guid = {dn: guid_of(connection, dn) for dn in (u1, u2, u3, gone, group)}
    source = make_source(module_dc, root, mode)
    try:
        users, pages = read(source, "User", None)
        assert set(upserts(users)) == {guid[u1], guid[u2], guid[u3], guid[gone]}
        user_mark = pages[-1].watermark
        _, pages = read(source, "Group", None)
        group_mark = pages[-1].watermark
        assert user_mark.startswith(f"{mode[0]}:") and group_mark.startswith(f"{mode[0]}:")

        with module_dc.connect() as connection:
            new = add_user(connection, f"e{tag}", one)
            new_guid = guid_of(connection, new)
            modify(connection, u3, {"givenName": "Changed"})
            assert connection.modify_dn(u2, f"CN=moved{tag}", new_superior=two)
            moved = f"CN=moved{tag},{two}"
            member = {"member": [(ldap3.MODIFY_ADD, [u3])]}
            assert connection.modify(group, member)
            assert connection.modify(group, {"member": [(ldap3.MODIFY_DELETE, [u1])]})
            assert connection.delete(gone)

        users, pages = read(source, "User", user_mark)
        seen = upserts(users)
        assert set(seen) == {new_guid, guid[u3], guid[u2]}
        assert seen[guid[u3]]["givenName"] == "Changed"
        assert str(seen[guid[u2]]["dn"]).lower() == moved.lower()  # same anchor, new DN
        # the deleted user, and the group, which changed but is no User
        assert deletes(users) == {guid[gone], guid[group]}
        groups, pages = read(source, "Group", group_mark)
        members = upserts(groups)[guid[group]]["member"]
        assert isinstance(members, list) and set(members) == {guid[u2], guid[u3]}
        assert deletes(groups) == {new_guid, guid[u3], guid[u2], guid[gone]}

        again, _ = read(source, "User", pages[-1].watermark)
        assert set(upserts(again)) <= {guid[group]}  # nothing new (a replay is harmless)
    finally:
        source.close()


def test_dirsync_resumes_inside_one_of_its_answers(module_dc: SambaDc) -> None:
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"r{tag}")
        people = add_users(connection, [f"p{i}{tag}" for i in range(5)], root)
    source = make_source(module_dc, root, "dirsync")
    try:
        # a full read resumed from a page inside it, its delta start taken before the scan
        _, pages = read(source, "User", None, page_size=2)
        assert pages[0].watermark.startswith("f:d:")
        rest, rest_pages = read(source, "User", pages[0].watermark, page_size=2)
        assert len(upserts(rest)) == 3
        mark = rest_pages[-1].watermark

        with module_dc.connect() as connection:
            for dn in people:
                modify(connection, dn, {"givenName": "Once"})
            guids = sorted(guid_of(connection, dn) for dn in people)
        first = next(iter(source.read("User", mark, 2)))  # one page of the answer, then a crash
        assert "|" in first.watermark and {c.anchor for c in first.changes} == set(guids[:2])
        with module_dc.connect() as connection:  # one handled, one not: both changed again
            for dn in people:
                if guid_of(connection, dn) in (guids[0], guids[3]):
                    modify(connection, dn, {"givenName": "Twice"})
        resumed, _ = read(source, "User", first.watermark, page_size=2)
        seen = upserts(resumed)
        assert set(guids[2:]) <= set(seen)
        assert seen[guids[0]]["givenName"] == "Twice"  # after the cookie after the answer
        assert seen[guids[3]]["givenName"] == "Twice"
    finally:
        source.close()


def test_a_usn_watermark_of_another_dc_reads_everything_again(
    module_dc: SambaDc, make_samba_dc: Callable[..., SambaDc]
) -> None:
    source = make_source(module_dc, USERS_DN, "usn")
    restored = make_samba_dc("restored", new_invocation_id=True)
    other = make_source(restored, USERS_DN, "usn")
    try:
        *_, last = source.read("User", None, 1000)
        assert last.watermark.startswith("u:")
        other.validate()
        with pytest.raises(WatermarkExpired, match="another domain controller"):
            list(other.read("User", last.watermark, 100))
        own = [p.watermark for p in source.read("User", last.watermark, 100)]
        assert own[-1].startswith("u:")
    finally:
        source.close()
        other.close()


def test_dirsync_without_the_replication_right_says_so_and_names_usn(
    module_dc: SambaDc,
) -> None:
    tag = uuid.uuid4().hex[:6]
    password = f"Pw-{uuid.uuid4().hex}!"
    with module_dc.connect() as connection:
        root = add_ou(connection, f"n{tag}")
        plain = add_user(connection, f"plain{tag}", root)
        assert connection.extend.microsoft.modify_password(plain, password)
    bind = f"plain{tag}@{REALM.lower()}"
    source = make_source(module_dc, root, "dirsync", bind, password)
    try:
        with pytest.raises(ConnectorError, match="Replicating Directory Changes") as refused:
            source.validate()
        assert "delta_mode='usn'" in str(refused.value)
        with pytest.raises(ConnectorError, match="usn"):
            list(source.read("User", None, 100))
        # the alternative named works for this user (though Samba, as Windows, hides the
        # tombstones from it: its deletes wait for a full read)
        usn = make_source(module_dc, root, "usn", bind, password)
        try:
            usn.validate()
            *_, last = usn.read("User", None, 100)
            with module_dc.connect() as connection:
                new = guid_of(connection, add_user(connection, f"new{tag}", root))
            changes, _ = read(usn, "User", last.watermark)
            assert set(upserts(changes)) == {new}
        finally:
            usn.close()
    finally:
        source.close()


def test_usn_scans_for_deletes_until_it_is_shown_a_tombstone(module_dc: SambaDc) -> None:
    """Samba hides tombstones from a plain account, which no check can tell from none: a
    usn watermark keeps the time of its full read, and once delete_scan_interval has passed
    without a tombstone seen, a delta asks for a reconciling full read. A delta that returns
    a tombstone marks the watermark (``:*``), and no scan falls due after it."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"t{tag}")
        gone = add_user(connection, f"gone{tag}", root)
        add_user(connection, f"stays{tag}", root)
    eager = make_source(module_dc, root, "usn", delete_scan_interval=0)
    source = make_source(module_dc, root, "usn")
    try:
        *_, last = source.read("User", None, 100)
        assert last.watermark.count(":") == 3, last.watermark  # u:<invocationId>:<USN>:<time>
        assert not last.watermark.endswith(":"), last.watermark
        with pytest.raises(WatermarkExpired, match="delete scan due"):
            list(eager.read("User", last.watermark, 100))
        changes, pages = read(source, "User", last.watermark)  # not due yet: a plain delta
        assert changes == [] and pages[-1].watermark == last.watermark
        with module_dc.connect() as connection:
            gone_guid = guid_of(connection, gone)
            assert connection.delete(gone)
        changes, pages = read(source, "User", last.watermark)
        assert deletes(changes) == {gone_guid} and pages[-1].watermark.endswith(":*")
        changes, _ = read(eager, "User", pages[-1].watermark)  # tombstones are seen: no scan
        assert changes == []
    finally:
        source.close()
        eager.close()
