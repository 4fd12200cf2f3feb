"""What a provisioning record shows of an object (engine.cycle._names): names found where the
cycle has them, values masked where they may be secrets, and every value and record bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ValueDelta
from engine.cycle._names import (
    MAX_ATTRIBUTES,
    MAX_TEXT,
    Naming,
    changed,
    created,
    identity,
    naming_of,
    render,
)
from engine.mapping import compile_schema
from engine.masking import MASK, opaque_value
from engine.store.base import LogRecord
from engine.templates import load_builtin

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlMTIzNDU2Nzg5"


def test_credential_attributes_are_masked_whatever_their_value() -> None:
    for name in ("userPassword", "password", "unicodePwd", "apiToken", "clientSecret"):
        assert render(name, "hunter2") == MASK
        assert render(name, ["a", "b"]) == MASK
        assert render(name, b"\x00\x01") == MASK
    assert render("userPassword", None) is None  # a cleared password shows as cleared


def test_token_like_values_are_masked_under_any_name_and_ids_stay_readable() -> None:
    assert render("description", JWT) == MASK
    assert render("note", "Zm9vYmFyYmF6cXV4cXV1eHF1dXg0Mg==") == MASK
    for readable in (
        "3f2b9c1e-8d4a-4b6f-9e2d-1a2b3c4d5e6f",  # a GUID: no upper case
        "00000000000000000000000000000001",  # digits only
        "uid=ada.lovelace,ou=people,dc=example,dc=org",  # a DN
        "ada.lovelace@example.org",
        "https://example.org/Profile/Ada1815",
        "Ada Lovelace, Countess of Lovelace 1815",
    ):
        assert render("x", readable) == readable
        assert not opaque_value(readable)


def test_binary_values_are_summarized() -> None:
    assert render("jpegPhoto", b"\xff\xd8" * 600) == "<binary, 1200 bytes>"
    assert render("userCertificate", b"abc") == MASK  # named like a credential: masked
    assert render("photos", [b"a", b"bc"]) == "[<binary, 1 bytes>, <binary, 2 bytes>]"


@given(st.text(min_size=0, max_size=3000))
def test_every_rendered_text_is_bounded(text: str) -> None:
    shown = render("description", text)
    assert shown is not None and len(shown) <= MAX_TEXT + 1


def test_long_lists_show_their_first_values_and_how_many_more() -> None:
    members = [f"uid=user{n},ou=people,dc=example,dc=org" for n in range(50_000)]
    shown = render("member", members)
    assert shown is not None and len(shown) < 2 * MAX_TEXT
    assert shown.startswith("[uid=user0,ou=people") and shown.endswith(" more]")
    assert "+49995 more" in shown
    assert render("mail", ["a@x", "b@x"]) == "[a@x, b@x]"
    assert render("active", True) == "true" and render("count", 3) == "3"


#: a mapping's naming with one credential attribute, as naming_of finds it
NAMING = Naming("displayName", True, ("displayName",), "mail", frozenset({"userPassword"}))


def test_changed_pairs_old_and_new_masks_and_bounds() -> None:
    before = {"mail": "old@example.org", "userPassword": "old-secret", "title": "Engineer"}
    after = {"mail": "new@example.org", "userPassword": "new-secret"}
    names = ["mail", "userPassword", "title"]
    assert changed(NAMING, names, before, after) == (
        ("new@example.org", MASK, None),  # title cleared
        ("old@example.org", MASK, "Engineer"),
    )
    assert created(NAMING, ["mail"], after) == (("new@example.org",), ())
    many = [f"a{n}" for n in range(MAX_ATTRIBUTES * 3)]
    new, old = changed(NAMING, many, dict.fromkeys(many, "u"), dict.fromkeys(many, "v"))
    assert len(new) == len(old) == MAX_ATTRIBUTES


def test_a_record_pairs_its_attributes_with_their_values() -> None:
    record = LogRecord(
        "j", "c", "c.1", datetime(2026, 1, 1, tzinfo=UTC), "Update", "success", "m", "a",
        attributes=("mail", "title", "beyond"), new=("new", None), old=("old", "Engineer"),
    )  # fmt: skip
    assert record.changes() == [("mail", "old", "new"), ("title", "Engineer", None)]
    assert record._replace(old=()).changes() == [("mail", None, "new"), ("title", None, None)]


def test_short_lists_show_old_and_new_whole_even_when_sent_as_deltas() -> None:
    delta = {"mail": ValueDelta(add=("b@x",), remove=("a@x",))}
    assert changed(NAMING, ["mail"], {"mail": ["a@x"]}, {"mail": ["b@x"]}, delta) == (
        ("b@x",),
        ("a@x",),
    )


def test_value_deltas_of_long_lists_show_what_was_added_and_removed() -> None:
    delta = {"member": ValueDelta(add=("uid=ada",), remove=("uid=bob", "uid=eve"))}
    assert changed(NAMING, ["member"], {"member": ["x"] * 1000}, {"member": []}, delta) == (
        ("added uid=ada",),
        ("removed [uid=bob, uid=eve]",),
    )
    hidden = {"userPassword": ValueDelta(add=("a",) * 30, remove=("b",))}
    assert changed(NAMING, ["userPassword"], {}, {"userPassword": ["a"] * 30}, hidden) == (
        (MASK,),
        (MASK,),
    )


def test_naming_knows_the_mappings_credential_attributes() -> None:
    schema = load_builtin("scimToLdap").schema
    assert schema is not None
    for mapping in compile_schema(schema, 1.0):
        names = {t.lower() for t, *_ in mapping.plan}
        expected = {"userpassword"} & names
        assert {s.lower() for s in naming_of(mapping).secret} == expected


def test_names_come_from_the_mapped_display_name_else_common_naming_attributes() -> None:
    schema = load_builtin("ldapToScim").schema
    assert schema is not None
    ldap = {m.key: m for m in compile_schema(schema, 1.0)}
    users = next(m for k, m in ldap.items() if k.endswith(":User:User"))
    naming = naming_of(users)
    assert naming.target == "displayName" and naming.direct  # displayName <- cn
    entry = {"dn": "uid=ada,ou=people,dc=example,dc=org", "cn": "Ada Lovelace", "uid": "ada"}
    desired = {"displayName": "Ada Lovelace", "userName": "ada"}
    assert identity(naming, entry, desired) == (
        "Ada Lovelace",
        "uid=ada,ou=people,dc=example,dc=org",
        "Ada Lovelace",
    )
    # before mapping (an escrow, a scoped-out object): the source's own naming attributes
    assert identity(naming, entry, None) == ("Ada Lovelace", entry["dn"], None)
    # no DN: the matching value identifies it; nothing known: nothing shown
    assert identity(naming, None, desired) == ("Ada Lovelace", "ada", "Ada Lovelace")
    assert identity(naming, None, None) == (None, None, None)
    assert identity(naming, {"jpegPhoto": b"x"}, {"displayName": b"\x00"}) == (None, None, None)
