"""LDAP string syntax: the RFCs' own examples, and properties over any text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.operation.search import compile_filter, parse_filter

from connectors.ldap.syntax import (
    ValueChange,
    child_dn,
    equality_filter,
    escape_filter_value,
    escape_rdn_value,
    parse_dn,
    parse_req_mod,
    rdn,
)

_FILTER_ESCAPE = re.compile(r"\\([0-9a-fA-F]{2})")


def unescape_filter_value(escaped: str) -> bytes:
    """The bytes an RFC 4515 assertion value stands for (the test's independent decoder)."""
    out = bytearray()
    position = 0
    for match in _FILTER_ESCAPE.finditer(escaped):
        out += escaped[position : match.start()].encode("utf-8")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += escaped[position:].encode("utf-8")
    return bytes(out)


# ---------------------------------------------------------------- RFC 4515 filters

# RFC 4515 §4's equality examples: (attribute, value as bytes, the filter the RFC writes).
RFC4515_EQUALITY = [
    ("cn", b"Babs Jensen", "(cn=Babs Jensen)"),
    ("seeAlso", b"", "(seeAlso=)"),
    (
        "o",
        b"Parens R Us (for all your parenthetical needs)",
        r"(o=Parens R Us \28for all your parenthetical needs\29)",
    ),
    ("filename", b"C:\\MyFile", r"(filename=C:\5cMyFile)"),
    ("bin", b"\x00\x00\x00\x04", r"(bin=\00\00\00\04)"),
    ("sn", "Lučić".encode(), r"(sn=Lu\c4\8di\c4\87)"),
    ("1.3.6.1.4.1.1466.0", b"\x04\x02Hi", r"(1.3.6.1.4.1.1466.0=\04\02\48\69)"),
]


@pytest.mark.parametrize(("attribute", "value", "rfc_filter"), RFC4515_EQUALITY)
def test_rfc4515_examples_mean_the_same_value(
    attribute: str, value: bytes, rfc_filter: str
) -> None:
    """Each RFC 4515 §4 equality example: our filter asserts the same bytes as the RFC's."""
    ours = equality_filter(attribute, value)
    assert ours.startswith(f"({attribute}=") and ours.endswith(")")
    rfc_value = rfc_filter[len(attribute) + 2 : -1]
    assert unescape_filter_value(ours[len(attribute) + 2 : -1]) == unescape_filter_value(rfc_value)
    assert unescape_filter_value(rfc_value) == value


def test_rfc4515_examples_exact_text() -> None:
    """Where the RFC escapes exactly what we escape, the filter text is identical."""
    assert equality_filter("cn", "Babs Jensen") == "(cn=Babs Jensen)"
    assert equality_filter("seeAlso", "") == "(seeAlso=)"
    assert (
        equality_filter("o", "Parens R Us (for all your parenthetical needs)")
        == r"(o=Parens R Us \28for all your parenthetical needs\29)"
    )
    assert equality_filter("filename", "C:\\MyFile") == r"(filename=C:\5cMyFile)"
    assert equality_filter("bin", b"\x00\x00\x00\x04") == r"(bin=\00\00\00\04)"


def test_star_is_escaped_never_a_wildcard() -> None:
    """A ``*`` in a matching value is the literal character (RFC 4515 §4: ``\\2A``)."""
    assert escape_filter_value("*") == r"\2a"
    assert equality_filter("cn", "*") == r"(cn=\2a)"


def test_text_stays_readable() -> None:
    """UTF-8 text stays as it is inside a str value; only the specials are escaped."""
    assert escape_filter_value("Lučić (x)") == r"Lučić \28x\29"
    assert escape_filter_value("a b") == "a b"


def test_bytes_are_escaped_byte_for_byte() -> None:
    """Every byte of a binary value is ``\\xx``, printable or not (RFC 4515 allows it): a
    GUID is not text, and ldap3 strips a raw space at either end of an assertion value."""
    every = bytes(range(256))
    assert escape_filter_value(every) == "".join(f"\\{b:02x}" for b in every)
    assert escape_filter_value(b" GUID ") == r"\20\47\55\49\44\20"
    assert escape_filter_value(b"") == ""


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        (" bob ", r"\20bob\20"),
        ("  a  b  ", r"\20 a  b \20"),
        (" ", r"\20"),
        ("\xa0x\u3000", r"\c2\a0x\e3\80\80"),
        ("\tx\n", r"\09x\0a"),
        ("x\u2028y", "x\u2028y"),
    ],
)
def test_whitespace_at_the_edges_of_text_is_escaped(value: str, escaped: str) -> None:
    """ldap3 strips whitespace (Python's idea of it) around an assertion value: at either end
    it is escaped as its UTF-8 bytes, so the server gets it; inside, it stays."""
    assert escape_filter_value(value) == escaped


def test_control_characters_are_escaped() -> None:
    """Newlines and other controls are escaped, so a filter in a log stays one line."""
    assert escape_filter_value("a\nb\r\x1b\x7f") == r"a\0ab\0d\1b\7f"


@pytest.mark.parametrize(
    "attribute",
    ["cn", "sAMAccountName", "x-custom-1", "2.5.4.3", "cn;lang-en", "userCertificate;binary"],
)
def test_valid_attribute_descriptions_are_accepted(attribute: str) -> None:
    """Names, numeric OIDs and ;options are attribute descriptions (RFC 4512)."""
    assert equality_filter(attribute, "v") == f"({attribute}=v)"


@pytest.mark.parametrize(
    "attribute",
    ["", "cn=x", "cn)(uid=*", "1cn", "-cn", "cn x", "2.5.04.3", "2.", "2", "cn;", "ç", "cn\n"],
)
def test_invalid_attribute_descriptions_are_refused(attribute: str) -> None:
    """Anything else is refused, not escaped: it would change the filter's structure."""
    with pytest.raises(ValueError, match="attribute description"):
        equality_filter(attribute, "v")


@given(st.text())
def test_filter_escaping_leaves_no_special_character(value: str) -> None:
    """For any text, the escaped value has no raw ( ) * NUL, and every \\ starts a \\XX."""
    escaped = escape_filter_value(value)
    assert not set(escaped) & set("()*\x00")
    assert re.fullmatch(r"(?:[^\\]|\\[0-9a-f]{2})*", escaped, re.DOTALL)


@given(st.one_of(st.text(), st.binary()))
def test_filter_escaping_round_trips(value: str | bytes) -> None:
    """For any text or bytes, decoding the escaped value gives back the same bytes."""
    expected = value.encode("utf-8") if isinstance(value, str) else value
    assert unescape_filter_value(escape_filter_value(value)) == expected


@given(st.one_of(st.text(), st.binary()))
def test_ldap3_sends_exactly_the_value(value: str | bytes) -> None:
    """What ldap3 puts on the wire for our filter (its parser strips whitespace around an
    assertion value, then unescapes) is exactly the value's bytes, whatever they are."""
    node = parse_filter(equality_filter("cn", value), None, True, True, None, False)
    sent = compile_filter(node.elements[0])["equalityMatch"]["assertionValue"]
    assert bytes(sent) == (value.encode("utf-8") if isinstance(value, str) else value)


# ---------------------------------------------------------------- RFC 4514 DNs

# RFC 4514 §4's examples that are single-valued string RDNs, with the pairs they stand for.
RFC4514_EXAMPLES = [
    ("UID=jsmith,DC=example,DC=net", [("UID", "jsmith"), ("DC", "example"), ("DC", "net")]),
    (
        'CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net',
        [("CN", 'James "Jim" Smith, III'), ("DC", "example"), ("DC", "net")],
    ),
    (
        "CN=Before\\0dAfter,DC=example,DC=net",
        [("CN", "Before\rAfter"), ("DC", "example"), ("DC", "net")],
    ),
    ("CN=Lu\\C4\\8Di\\C4\\87", [("CN", "Lučić")]),
]


@pytest.mark.parametrize(("dn", "pairs"), RFC4514_EXAMPLES)
def test_rfc4514_examples_parse(dn: str, pairs: list[tuple[str, str]]) -> None:
    """Each RFC 4514 §4 single-valued example parses to the values the RFC describes."""
    assert parse_dn(dn) == pairs


def test_rfc4514_example_built() -> None:
    """Building the RFC's escaped example from its value gives the RFC's own text."""
    built = child_dn(rdn("CN", 'James "Jim" Smith, III'), "DC=example,DC=net")
    assert built == 'CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net'


@pytest.mark.parametrize(
    "dn",
    [
        "OU=Sales+CN=J.  Smith,DC=example,DC=net",  # RFC 4514 §4: multi-valued RDN
        "1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com",  # RFC 4514 §4: hex BER value
        "cn",
        "cn=a,uid",
        "c n=x",
        "cn=a\\zz",
        "cn=a\\",
        "cn=\\ff",
    ],
)
def test_unsupported_or_malformed_dns_are_refused(dn: str) -> None:
    """Multi-valued RDNs, BER values and malformed DNs raise ValueError, never a guess."""
    with pytest.raises(ValueError):
        parse_dn(dn)


def test_escape_rdn_value_edges() -> None:
    """Leading space or #, trailing space, specials and NUL are escaped (RFC 4514 §2.4)."""
    assert escape_rdn_value(" #a# ") == "\\ #a#\\ "
    assert escape_rdn_value("#") == "\\#"
    assert escape_rdn_value(" ") == "\\ "
    assert escape_rdn_value('a,b+c"d\\e<f>g;h=i') == 'a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i'
    assert escape_rdn_value("a\x00b") == "a\\00b"
    assert escape_rdn_value("") == ""


def test_parse_dn_tolerates_spaces_but_keeps_escaped_ones() -> None:
    """Unescaped spaces around separators are dropped; escaped edge spaces survive."""
    assert parse_dn(" cn = a b , dc=x ") == [("cn", "a b"), ("dc", "x")]
    assert parse_dn("cn=\\ a\\ ,dc=x") == [("cn", " a "), ("dc", "x")]
    assert parse_dn("") == []


def test_rdn_refuses_bad_attribute_types() -> None:
    """An RDN's attribute is a name or OID without options; anything else is refused."""
    for attribute in ("", "cn;lang-en", "cn=x", "c,n"):
        with pytest.raises(ValueError, match="attribute type"):
            rdn(attribute, "v")
    with pytest.raises(ValueError):
        child_dn("", "dc=x")


_ATTRIBUTES = st.sampled_from(["cn", "uid", "ou", "employeeNumber", "2.5.4.3"])
_PARENTS = st.sampled_from(["", "dc=example,dc=org", "ou=people,dc=example,dc=org", "o=\\#1"])


@given(_ATTRIBUTES, st.text(), _PARENTS)
def test_rdn_round_trips_through_parse_dn(attribute: str, value: str, parent: str) -> None:
    """For any value, parse_dn(child_dn(rdn(a, v), parent))[0] == (a, v)."""
    assert parse_dn(child_dn(rdn(attribute, value), parent))[0] == (attribute, value)


@given(st.lists(st.tuples(_ATTRIBUTES, st.text()), max_size=5))
def test_dn_of_many_rdns_round_trips(pairs: list[tuple[str, str]]) -> None:
    """For any list of (attribute, value), joining the built RDNs and parsing gives it back."""
    dn = ""
    for attribute, value in reversed(pairs):
        dn = child_dn(rdn(attribute, value), dn)
    assert parse_dn(dn) == pairs


# ---------------------------------------------------------------- accesslog reqMod

# Two reqMod values exactly as slapd 2.5.13 logged them here (bytes, as ldap3 returns them).
MEASURED_MODIFY = [
    b"mail:+ m3",
    b"mail:+ m4",
    b"mail:- m1",
    b"description:-",
    b"telephoneNumber:=",
    b"sn:= y",
    b"sn:= z",
    b"entryCSN:= 20261127103754.970086Z#000000#000#000000",
    b"modifiersName:= cn=admin,dc=example,dc=org",
    b"modifyTimestamp:= 20261127103754Z",
]
MEASURED_MODIFY_2 = [
    b"description:+ \xc3\xa9: x\nline2",
    b"uidNumber:# 3",
    b"title:+ t",
    b"entryCSN:= 20261127103754.971175Z#000000#000#000000",
]


def test_req_mod_as_slapd_logged_it() -> None:
    """A modify of every kind, as logged by slapd 2.5.13, folds per attribute."""
    changes = parse_req_mod(MEASURED_MODIFY)
    assert changes["mail"] == ValueChange(add=("m3", "m4"), remove=("m1",))
    assert changes["description"] == ValueChange(clear=True)
    assert changes["telephoneNumber"] == ValueChange(replace=())
    assert changes["sn"] == ValueChange(replace=("y", "z"))
    assert changes["modifiersName"] == ValueChange(replace=("cn=admin,dc=example,dc=org",))
    assert changes["mail"].apply(["m1", "m2"]) == ("m2", "m3", "m4")


def test_req_mod_values_are_raw_text_after_one_space() -> None:
    """Values keep ':' and newlines (no base64); increments are parsed as integers."""
    changes = parse_req_mod(MEASURED_MODIFY_2)
    assert changes["description"] == ValueChange(add=("é: x\nline2",))
    assert changes["uidNumber"] == ValueChange(increment=3)
    assert changes["uidNumber"].apply(["10"]) == ("13",)
    assert parse_req_mod(["description:=  two spaces"]) == {
        "description": ValueChange(replace=(" two spaces",))
    }


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["cn:+ a", "cn:- a"], ValueChange()),
        (["cn:- a", "cn:+ a"], ValueChange(add=("a",), remove=("a",))),
        (["cn:-", "cn:+ b"], ValueChange(add=("b",), clear=True)),
        (["cn:= a", "cn:+ b", "cn:- a"], ValueChange(replace=("b",))),
        (["cn:+ x", "cn:= a", "cn:= b"], ValueChange(replace=("a", "b"))),
        (["cn:= a", "sn:+ s", "cn:= b"], ValueChange(replace=("b",))),
        (["cn:= a", ":", "cn:= b"], ValueChange(replace=("b",))),
        (["uidNumber:# 2", "uidNumber:# -5"], ValueChange(increment=-3)),
        (["CN:+ a", "cn:+ b"], ValueChange(add=("a", "b"))),
    ],
)
def test_req_mod_lines_accumulate_in_order(lines: list[str], expected: ValueChange) -> None:
    """Several lines of one attribute fold in request order into one change."""
    changes = parse_req_mod(lines)
    (key,) = (key for key in changes if key.lower() in {"cn", "uidnumber"})
    assert changes[key] == expected


@pytest.mark.parametrize(
    ("lines", "old", "after"),
    [
        (["cn:- a", "cn:+ a"], ["a", "b"], ("b", "a")),
        (["cn:-", "cn:+ b"], ["a"], ("b",)),
        (["cn:=", "cn:+ b"], ["a"], ("b",)),
        (["cn:- a"], ["a", "b"], ("b",)),
    ],
)
def test_value_change_apply(lines: list[str], old: list[str], after: tuple[str, ...]) -> None:
    """apply() gives the values the server holds after the request."""
    assert parse_req_mod(lines)["cn"].apply(old) == after


@pytest.mark.parametrize(
    "line",
    ["cn", "cn:", "cn:* a", "cn:+a", "cn:+", "c n:+ a", ":+ a", "uidNumber:# x", "uidNumber:#"],
)
def test_malformed_req_mod_lines_are_refused(line: str) -> None:
    """A line that is not in the format raises ValueError: a skipped line is a lost change."""
    with pytest.raises(ValueError):
        parse_req_mod([line])


def test_req_mod_refuses_non_utf8_and_unfoldable() -> None:
    """Bytes that are not UTF-8, and a change after an increment, are refused."""
    with pytest.raises(ValueError):
        parse_req_mod([b"jpegPhoto:+ \xff\xd8"])
    with pytest.raises(ValueError, match="increment"):
        parse_req_mod(["uidNumber:# 1", "uidNumber:+ 5"])
