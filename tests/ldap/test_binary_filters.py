"""Binary values and times in filters, against a real slapd with a binary anchor (issue #19).

slapd has no objectGUID, so this module's slapd gets one: AD's name and OID, octetString
syntax with octetStringMatch equality (bytes compared exactly, as AD compares GUIDs), on an
auxiliary class of the test's own (OpenLDAP's experimental arc). The LDAP connector then
reads it as it reads AD's: anchors are the GUIDs' UUID text, filters carry their bytes.

One slapd for the module, loaded with slapadd before it starts: 256 entries whose GUIDs hold
every byte value at every position (entry ``i`` has ``(i + 17 p) mod 256`` at position ``p``),
and entries whose GUIDs start and end with 0x20, which ldap3's filter parser used to strip.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta

import ldap3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ldap import LdapEndpoint, LdapObjectType, LdapSource, LdapTarget
from connectors.ldap._common import format_time, parse_time
from connectors.ldap.syntax import child_dn, equality_filter, rdn
from tests.ldap.slapd import ACCESSLOG_DN, BASE_DN, ROOT_DN, Slapd, require_slapd

SCHEMA = """\
dn: cn=guid,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: guid
olcAttributeTypes: ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
olcObjectClasses: ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'syncjobTestGuid'
  AUXILIARY MAY objectGUID )
"""

GRID = f"ou=grid,{BASE_DN}"  # the seeded entries: a full read reads them all
PROBE = f"ou=probe,{BASE_DN}"  # one entry whose GUID the property test rewrites
GRID_GUIDS = [bytes((i + 17 * p) % 256 for p in range(16)) for i in range(256)]
SPACED_GUIDS = [b" " * 16, b" " + bytes(range(0x21, 0x2F)) + b" ", b" \x00\\*()" + b"\xff" * 10]
CLASSES = ("inetOrgPerson", "syncjobTestGuid")


def _entry(dn: str, uid: str, guid: bytes) -> str:
    return (
        f"dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: syncjobTestGuid\nuid: {uid}\n"
        f"cn: {uid}\nsn: {uid}\nobjectGUID:: {base64.b64encode(guid).decode()}\n"
    )


def _seed() -> str:
    entries = [
        f"dn: {ou}\nobjectClass: organizationalUnit\nou: {ou[3:8]}\n" for ou in (GRID, PROBE)
    ]
    for index, guid in enumerate([*GRID_GUIDS, *SPACED_GUIDS]):
        entries.append(_entry(f"uid=g{index},{GRID}", f"g{index}", guid))
    entries.append(_entry(f"uid=probe,{PROBE}", "probe", b"\x00" * 16))
    return "\n".join(entries)


def _kind(base_dn: str) -> LdapObjectType:
    return LdapObjectType(
        name="User",
        base_dn=base_dn,
        filter="(objectClass=syncjobTestGuid)",
        object_classes=CLASSES,
        rdn_attribute="uid",
        anchor_attribute="objectGUID",
        binary=("objectGUID",),
    )


def _text(guid: bytes) -> str:
    return str(uuid.UUID(bytes_le=guid))


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_slapd()
    with Slapd(
        tmp_path_factory.mktemp("slapd-guid"), "guid", seed_ldif=_seed(), schema=SCHEMA
    ) as s:
        yield s


@pytest.fixture(scope="module")
def endpoint(slapd: Slapd) -> LdapEndpoint:
    return LdapEndpoint(url=slapd.url, bind_dn=ROOT_DN, password=slapd.password.reveal())


def test_every_byte_at_every_position_finds_exactly_its_entry(endpoint: LdapEndpoint) -> None:
    """Each of 256 GUIDs (together every byte at every position), looked up by the source's
    anchor filter and found by the target's equality filter, is that one entry."""
    source = LdapSource(endpoint, [_kind(GRID)], delta_mode="timestamp")
    target = LdapTarget(endpoint, [_kind(GRID)], find_cache_seconds=0)
    try:
        for index, guid in enumerate(GRID_GUIDS):
            assert source.lookup("User", "objectGUID", _text(guid)) == [_text(guid)]
            assert target.find("User", "objectGUID", guid) == f"uid=g{index},{GRID}"
    finally:
        source.close()
        target.close()


def test_a_full_read_reads_guids_that_start_and_end_with_a_space(endpoint: LdapEndpoint) -> None:
    """The full read fetches entries by an OR of anchor filters: none may go missing (a lost
    entry is a delete downstream), including GUIDs starting and ending with 0x20."""
    source = LdapSource(endpoint, [_kind(GRID)])
    try:
        changes = [c for page in source.read("User", None, 100) for c in page.changes]
        expected = sorted(_text(g) for g in [*GRID_GUIDS, *SPACED_GUIDS])
        assert sorted(c.anchor for c in changes) == expected
        spaced = _text(SPACED_GUIDS[0])
        assert next(c for c in changes if c.anchor == spaced).attributes["uid"] == "g256"  # type: ignore[index]
        assert (source.get("User", spaced) or {}).get("objectGUID") == spaced
    finally:
        source.close()


# bytes that mean something to a filter, to ldap3's parser or to UTF-8, drawn more often
_SPECIAL = st.sampled_from(b" \t\n\r\x0b\x0c\x00()*\\=~<>:\x7f\x80\xa0\xc2\xff")
_GUID = st.lists(st.one_of(_SPECIAL, st.integers(0, 255)), min_size=16, max_size=16).map(bytes)


@pytest.fixture(scope="module")
def probe(
    endpoint: LdapEndpoint, slapd: Slapd
) -> Iterator[tuple[ldap3.Connection, LdapSource, LdapTarget]]:
    connection = slapd.connect()
    source = LdapSource(endpoint, [_kind(PROBE)], delta_mode="timestamp")
    target = LdapTarget(endpoint, [_kind(PROBE)], find_cache_seconds=0)
    yield connection, source, target
    connection.unbind()
    source.close()
    target.close()


@settings(max_examples=300, deadline=None)
@given(guid=_GUID, flip=st.integers(0, 15))
def test_any_guid_matches_exactly_and_only_itself(
    probe: tuple[ldap3.Connection, LdapSource, LdapTarget], guid: bytes, flip: int
) -> None:
    """Any 16 bytes as the probe entry's GUID: the source's and the target's filters find the
    entry, and the same GUID with one byte changed finds nothing."""
    connection, source, target = probe
    assert connection.modify(f"uid=probe,{PROBE}", {"objectGUID": [(ldap3.MODIFY_REPLACE, [guid])]})
    assert source.lookup("User", "objectGUID", _text(guid)) == [_text(guid)]
    assert target.find("User", "objectGUID", guid) == f"uid=probe,{PROBE}"
    other = guid[:flip] + bytes([guid[flip] ^ 0x01]) + guid[flip + 1 :]
    assert source.lookup("User", "objectGUID", _text(other)) == []
    assert target.find("User", "objectGUID", other) is None


def test_text_edges_are_escaped_where_spaces_matter(slapd: Slapd, endpoint: LdapEndpoint) -> None:
    """ldap3 strips spaces around any assertion value. uid (caseIgnoreMatch) ignores them
    anyway (RFC 4518), but an exact match (octetStringMatch, here with a str value) does not:
    escaped as \\20 they reach the server. The target matches a str value of a binary
    attribute as its UTF-8 bytes, from its index and live alike."""
    connection = slapd.connect()
    targets = [LdapTarget(endpoint, [_kind(PROBE)], find_cache_seconds=s) for s in (60, 0)]
    try:
        dn = child_dn(rdn("uid", " bob "), PROBE)
        spaced = {"uid": " bob ", "cn": "b", "sn": "b", "objectGUID": b" bob "}
        assert connection.add(dn, list(CLASSES), spaced)
        found = []
        for value in (" bob ", "bob"):
            assert connection.search(PROBE, equality_filter("uid", value), attributes=["1.1"])
            found.append(len(connection.entries))
            connection.search(PROBE, equality_filter("objectGUID", value), attributes=["1.1"])
            found.append(len(connection.entries))
        assert found == [1, 1, 1, 0]  # uid: with or without spaces; octets: exactly
        for target in targets:
            assert target.find("User", "objectGUID", " bob ") is not None
            assert target.find("User", "objectGUID", "bob") is None
        connection.delete(dn)
    finally:
        connection.unbind()
        for target in targets:
            target.close()


def test_time_filters_carry_a_fraction_that_slapd_takes(slapd: Slapd) -> None:
    """Filters from a time read ``…SS.0Z`` (Samba answers ``…SSZ`` with every entry); slapd
    compares them as times, for modifyTimestamp and for the accesslog's reqStart alike."""
    connection = slapd.connect()
    try:
        dn = f"uid=timed,{PROBE}"
        assert connection.add(dn, list(CLASSES), {"cn": "t", "sn": "t"})
        connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["modifyTimestamp"])
        written = parse_time(
            connection.response[0]["raw_attributes"]["modifyTimestamp"][0].decode()
        )
        assert written is not None
        at, after = format_time(written), format_time(written + timedelta(seconds=1))
        assert at.endswith(".0Z") and at[:14] == written.strftime("%Y%m%d%H%M%S")
        for base, term in ((dn, "modifyTimestamp"), (ACCESSLOG_DN, "reqStart")):
            scope = equality_filter("reqDN", dn) if base == ACCESSLOG_DN else "(objectClass=*)"
            connection.search(base, f"(&{scope}({term}>={at}))", attributes=["1.1"])
            assert len(connection.entries) == 1, term
            connection.search(base, f"(&{scope}({term}>={after}))", attributes=["1.1"])
            assert connection.entries == [], term
        connection.delete(dn)
    finally:
        connection.unbind()
