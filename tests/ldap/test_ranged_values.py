"""Ranged attribute values: the merging of an answer's ``member;range=a-b`` parts (pure), and a
type asking for ranges against slapd, which knows no range option (issue 19, point 5). Samba,
which ranges when asked, is in tests/ad/test_ad_ranged_values.py."""

from __future__ import annotations

import attrs
import ldap3
import pytest

from connectors.ldap import groups
from connectors.ldap._ranges import Part, merge, split_range
from tests.ldap.ldap_source_helpers import make_source, unique_container
from tests.ldap.slapd import Slapd


def test_a_range_option_is_split_off_the_attribute_description() -> None:
    assert split_range("member;range=0-1499") == Part("member", 0, 1499)
    assert split_range("Member;Range=1500-*") == Part("Member", 1500, None)
    assert split_range("member;binary;range=3-4") == Part("member;binary", 3, 4)
    for plain in ("member", "cn;lang-en", "member;range=", "member;range=a-*", "member;range=1"):
        assert split_range(plain) is None


def test_parts_merge_under_the_plain_name_and_say_where_to_continue() -> None:
    values, pending = merge({"cn": [b"g"], "member;range=0-1": [b"a", b"b"], "owner": None})
    assert values == {"cn": [b"g"], "member": [b"a", b"b"], "owner": []}
    assert pending == {"member": 2}
    values, pending = merge({"member;range=0-*": [b"a"]})
    assert values == {"member": [b"a"]} and pending == {}
    # a plain copy beside a ranged part (either order) gives way to the part that was asked for
    for raw in ({"member": [b"a", b"b", b"c"], "member;range=0-1": [b"a", b"b"]},
                {"member;range=0-1": [b"a", b"b"], "MEMBER": [b"a", b"b", b"c"]}):  # fmt: skip
        values, pending = merge(raw)
        assert values == {"member": [b"a", b"b"]} and pending == {"member": 2}


def test_a_type_asking_for_ranges_still_reads_every_member_from_slapd(
    slapd_source: Slapd,
) -> None:
    """slapd returns nothing for ``member;range=0-9`` (measured): the plain name asked beside
    it brings the values, and no ``;range=`` key reaches the changes."""
    container = unique_container()
    kind = attrs.evolve(groups(container), range_size=10)
    source = make_source(slapd_source, container, types=[kind], delta_mode="timestamp")
    connection = slapd_source.connect()
    try:
        people = f"ou=people,{container}"
        members = []
        for n in range(25):
            members.append(f"uid=m{n},{people}")
            connection.add(members[-1], ["inetOrgPerson"], {"uid": f"m{n}", "cn": "m", "sn": "m"})
        connection.add(f"cn=big,{kind.base_dn}", ["groupOfNames"], {"cn": "big", "member": members})
        connection.search(kind.base_dn, "(cn=big)", ldap3.SUBTREE, attributes=["member;range=0-9"])
        assert not any(connection.response[0]["raw_attributes"].values())  # slapd: no range
    finally:
        connection.unbind()
    try:
        (page,) = list(source.read("Group", None, 100))
        (change,) = page.changes
        assert change.attributes is not None
        assert len(change.attributes["member"]) == 25
        assert not [name for name in change.attributes if ";" in name]
    finally:
        source.close()


def test_a_negative_range_size_is_refused() -> None:
    with pytest.raises(ValueError):
        attrs.evolve(groups("dc=x"), range_size=-1)
