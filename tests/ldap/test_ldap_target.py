"""LdapTarget against real slapd servers: each test writes under a container of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
import pytest

from connectors.base import (
    Capability,
    ConnectorError,
    CredentialsError,
    ObjectError,
    Target,
    TransientError,
    UnreachableError,
    ValueDelta,
)
from connectors.ldap import LdapTarget
from connectors.ldap.syntax import child_dn, rdn
from tests.ldap.ldap_objects import (
    endpoint,
    make_container,
    make_target,
    modify_records,
    object_types,
)
from tests.ldap.slapd import Slapd

HOSTILE = ['cn=a,b+c"\\#<>;=', "*)(uid=*", "  lead and trail  ", "Łukasz Żółć 名前 ✓", "#x"]


@pytest.fixture
def container(slapd_target: Slapd) -> str:
    return make_container(slapd_target)


@pytest.fixture
def target(slapd_target: Slapd, container: str) -> Iterator[LdapTarget]:
    made = make_target(slapd_target, container)
    yield made
    made.close()


def person(uid: str, **more: object) -> dict[str, object]:
    return {"uid": uid, "cn": uid.strip() or "x", "sn": "Test", **more}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def searches(target: LdapTarget) -> int:
    return target.client.operations["search"]


# ------------------------------------------------------------------------ create and get
def test_is_a_target_with_ldap_capabilities(target: LdapTarget) -> None:
    """DELETE, RENAME, REFERENCES and VALUE_DELTAS, and no soft delete: LDAP has no disable."""
    assert isinstance(target, Target)
    assert target.capabilities == {
        Capability.DELETE, Capability.RENAME, Capability.REFERENCES, Capability.VALUE_DELTAS
    }  # fmt: skip
    target.validate()


def test_create_names_the_entry_by_its_rdn_attribute(target: LdapTarget, container: str) -> None:
    """The DN is uid=<value>,<base_dn>; values come back shaped as a source gives them."""
    ref = target.create(
        "User",
        person(
            "ada",
            mail=["ada@x", "lovelace@x"],
            employeeNumber=7,
            jpegPhoto=b"\xff\xd8\x00",
            description=None,
            telephoneNumber=[],
        ),  # fmt: skip
    )
    assert ref == f"uid=ada,{container}"
    assert target.get("User", ref) == {
        "uid": "ada", "cn": "ada", "sn": "Test", "mail": ["ada@x", "lovelace@x"],
        "employeeNumber": "7", "jpegPhoto": b"\xff\xd8\x00",
    }  # fmt: skip


def test_create_at_a_given_dn(target: LdapTarget, container: str) -> None:
    """``dn`` names the entry and is not written as an attribute; the RDN value is added when
    the attributes lack it; references are written as the DNs given."""
    user = target.create("User", {"dn": f"uid=grace,{container}", "cn": "Grace", "sn": "H"})
    assert user == f"uid=grace,{container}"
    assert (target.get("User", user) or {}).get("uid") == "grace"
    group = target.create("Group", {"dn": f"cn=Team,{container}", "cn": "Team", "member": [user]})
    assert target.get("Group", group) == {"cn": "Team", "member": [user]}


def test_create_without_a_name_is_an_object_error(target: LdapTarget) -> None:
    with pytest.raises(ObjectError, match="no uid value"):
        target.create("User", {"cn": "x", "sn": "y"})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_round_trip(target: LdapTarget, container: str, value: str) -> None:
    """RFC 4514/4515 escaping: a value is never a wildcard, a new level or a second AVA."""
    other = target.create("User", person("plain"))
    ref = target.create("User", person(value))
    assert ref == child_dn(rdn("uid", value), container)
    for cached in (True, False):
        target.find_cache_seconds = 60.0 if cached else 0.0
        assert target.find("User", "uid", value) == ref
        assert target.find("User", "uid", "*") is None
    assert (target.get("User", ref) or {})["uid"] == value
    assert (target.get("User", other) or {})["uid"] == "plain"


# ------------------------------------------------------------------------ find and its cache
def test_find_answers_from_one_search_per_attribute(slapd_target: Slapd, container: str) -> None:
    """The first find reads the whole type once; later finds send nothing; matching is
    case-insensitive; an entry created by this target is found without a search."""
    clock = FakeClock()
    target = make_target(slapd_target, container, monotonic=clock)
    try:
        refs = [target.create("User", person(f"user{n}", mail=f"u{n}@X.org")) for n in range(5)]
        assert searches(target) == 0
        assert target.find("User", "uid", "USER3") == refs[3]
        assert searches(target) == 1
        for n in range(5):
            assert target.find("User", "uid", f"user{n}") == refs[n]
        assert target.find("User", "uid", "nobody") is None
        assert target.find("User", "mail", "u1@x.org") == refs[1]  # another attribute: 1 more
        late = target.create("User", person("late"))
        assert target.find("User", "uid", "late") == late
        assert searches(target) == 2
    finally:
        target.close()


def test_find_cache_goes_stale_after_its_age(slapd_target: Slapd, container: str) -> None:
    """An entry someone else adds is seen once the index is older than find_cache_seconds;
    with 0 every find is a live search."""
    clock = FakeClock()
    target = make_target(slapd_target, container, monotonic=clock, find_cache_seconds=30)
    outsider = make_target(slapd_target, container, find_cache_seconds=0)
    try:
        assert target.find("User", "uid", "bob") is None
        bob = outsider.create("User", person("bob"))
        clock.now += 29
        assert target.find("User", "uid", "bob") is None  # younger than 30 s: not searched
        clock.now += 1
        assert target.find("User", "uid", "bob") == bob
        before = searches(outsider)
        for _ in range(3):
            assert outsider.find("User", "uid", "bob") == bob
        assert searches(outsider) == before + 3
    finally:
        target.close()
        outsider.close()


def test_create_of_an_existing_entry_drops_the_index(slapd_target: Slapd, container: str) -> None:
    """entryAlreadyExists (68) is this object's error, and the engine's retry finds it live."""
    target = make_target(slapd_target, container)
    outsider = make_target(slapd_target, container, find_cache_seconds=0)
    try:
        assert target.find("User", "uid", "carol") is None
        carol = outsider.create("User", person("carol"))
        with pytest.raises(ObjectError, match="LDAP 68 entryAlreadyExists"):
            target.create("User", person("carol"))
        assert target.find("User", "uid", "carol") == carol
    finally:
        target.close()
        outsider.close()


def test_find_keeps_up_with_renames_updates_and_deletes(target: LdapTarget, container: str) -> None:
    ref = target.create("User", person("dave", mail="d@x"))
    assert target.find("User", "uid", "dave") == ref
    assert target.find("User", "mail", "d@x") == ref
    before = searches(target)
    moved = target.update("User", ref, {"uid": "david", "mail": ["david@x"]})
    assert moved == f"uid=david,{container}"
    assert target.find("User", "uid", "dave") is None
    assert target.find("User", "uid", "david") == moved
    assert target.find("User", "mail", "d@x") is None
    assert target.find("User", "mail", "DAVID@x") == moved
    target.delete("User", moved)
    assert target.find("User", "uid", "david") is None
    assert searches(target) == before


def test_several_matches_are_ambiguous(target: LdapTarget) -> None:
    target.create("User", person("e1", mail="same@x"))
    target.create("User", person("e2", mail="same@x"))
    for seconds in (60.0, 0.0):
        target.find_cache_seconds = seconds
        with pytest.raises(ObjectError, match="ambiguous"):
            target.find("User", "mail", "same@x")


# ------------------------------------------------------------------------ update
def test_update_replaces_and_clears(target: LdapTarget) -> None:
    ref = target.create("User", person("fay", mail=["a@x", "b@x"], title="T"))
    assert target.update("User", ref, {"mail": "c@x", "title": None, "description": []}) is None
    got = target.get("User", ref) or {}
    assert got["mail"] == ["c@x"] and "title" not in got and "description" not in got
    before = target.client.operations["modify"]
    assert target.update("User", ref, {}) is None
    assert target.client.operations["modify"] == before  # nothing to say, nothing sent


def test_value_delta_is_one_modify_with_exactly_the_values(
    slapd_target: Slapd, target: LdapTarget, container: str
) -> None:
    """One member more of a group is one modify carrying that member only (accesslog shows
    what the server received); replaying it, or removing an absent member, is harmless."""
    users = [target.create("User", person(f"m{n}")) for n in range(4)]
    group = target.create("Group", {"cn": "Big", "member": users[:3]})
    target.update("Group", group, {"member": ValueDelta(add=(users[3],))})
    assert modify_records(slapd_target, group) == [[f"member:+ {users[3]}".encode()]]
    target.update("Group", group, {"member": ValueDelta(add=(users[1],), remove=(users[0],))})
    assert modify_records(slapd_target, group)[1] == [
        f"member:- {users[0]}".encode(), f"member:+ {users[1]}".encode()
    ]  # fmt: skip
    target.update("Group", group, {"member": ValueDelta(add=(users[3],), remove=(users[0],))})
    assert sorted(target.get("Group", group)["member"]) == sorted(users[1:])  # type: ignore[index]


def test_rename_by_the_rdn_attribute(target: LdapTarget, container: str) -> None:
    ref = target.create("User", person("gil"))
    new = target.update("User", ref, {"uid": "gilbert", "title": "Dr"})
    assert new == f"uid=gilbert,{container}"
    assert target.get("User", ref) is None
    got = target.get("User", new) or {}
    assert got["uid"] == "gilbert" and got["title"] == "Dr"
    assert target.update("User", new, {"uid": "GILBERT"}) is None  # same RDN to LDAP


def test_an_update_whose_modify_failed_after_its_rename_goes_on_at_the_new_dn(
    target: LdapTarget, container: str
) -> None:
    """The rename went through, the modify was refused (a schema violation): the engine keeps
    the old ref and sends the update again, which finishes at the new DN."""
    ref = target.create("User", person("ned"))
    with pytest.raises(ObjectError, match="LDAP 17|LDAP 21|LDAP 65"):
        target.update("User", ref, {"uid": "ned2", "noSuchAttributeType": "x"})
    assert target.get("User", ref) is None  # renamed, not modified
    assert target.update("User", ref, {"uid": "ned2", "title": "Cpt"}) == f"uid=ned2,{container}"
    assert (target.get("User", f"uid=ned2,{container}") or {})["title"] == "Cpt"


def test_rename_by_dn_moves_to_another_container(
    slapd_target: Slapd, target: LdapTarget, container: str
) -> None:
    other = make_container(slapd_target)
    ref = target.create("User", person("hal"))
    new = target.update("User", ref, {"dn": f"uid=hal2,{other}", "uid": "hal2"})
    assert new == f"uid=hal2,{other}"
    assert target.get("User", ref) is None
    assert (target.get("User", new) or {})["uid"] == "hal2"
    assert target.update("User", new, {"dn": new.upper()}) is None


def test_update_of_a_missing_entry_is_an_object_error(target: LdapTarget, container: str) -> None:
    for ref, code in ((f"uid=ghost,{container}", "LDAP 32"), ("no-such-ref", "LDAP 34")):
        with pytest.raises(ObjectError, match=code):
            target.update("User", ref, {"mail": "x@x"})
    assert target.get("User", "no-such-ref") is None
    with pytest.raises(ObjectError, match="LDAP 32 noSuchObject"):
        target.update("User", f"uid=ghost,{container}", {"uid": "ghost2"})


# ------------------------------------------------------------------------ delete
def test_delete_twice_succeeds_and_soft_delete_is_refused(target: LdapTarget) -> None:
    ref = target.create("User", person("ivy"))
    with pytest.raises(ObjectError, match="cannot soft-delete"):
        target.delete("User", ref, soft=True)
    target.delete("User", ref, soft=False)
    target.delete("User", ref, soft=False)
    assert target.get("User", ref) is None


# ------------------------------------------------------------------------ errors of one object
@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"uid": "noname"}, "LDAP 65 objectClassViolation"),  # sn and cn are required
        (
            {"dn": "uid=x,ou=nowhere,dc=example,dc=org", "cn": "x", "sn": "y"},
            "LDAP 32 noSuchObject",
        ),
        ({"dn": "not a dn", "cn": "x", "sn": "y"}, "LDAP 34 invalidDNSyntax"),
        ({"dn": "foo=x,dc=example,dc=org", "cn": "x", "sn": "y"}, "LDAP 34 invalidDNSyntax"),
        ({"uid": "z", "cn": "z", "sn": "z", "noSuchAttr": "v"}, "LDAP 17 undefinedAttributeType"),
    ],
)
def test_refused_objects_are_object_errors_naming_the_code(
    target: LdapTarget, attributes: dict[str, object], expected: str
) -> None:
    with pytest.raises(ObjectError, match=expected):
        target.create("User", attributes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ validate
def test_validate_names_a_missing_base_dn(slapd_target: Slapd, container: str) -> None:
    types = object_types(container)
    types["Group"] = attrs.evolve(types["Group"], base_dn=f"ou=missing,{container}")
    target = make_target(slapd_target, container, types)
    try:
        with pytest.raises(ConnectorError, match=f"ou=missing,{container}"):
            target.validate()
    finally:
        target.close()


def test_wrong_password_is_a_credentials_error(slapd_target: Slapd, container: str) -> None:
    target = LdapTarget(endpoint(slapd_target, password="wrong"), object_types(container))
    with pytest.raises(CredentialsError, match="invalid credentials \\(LDAP 49\\)") as caught:
        target.validate()
    assert slapd_target.password.reveal() not in str(caught.value)
    assert slapd_target.password.reveal() not in repr(target)


# ------------------------------------------------------------------------ connections
def test_reconnects_after_the_server_drops_the_connection(
    make_slapd: Callable[[str], Slapd],
) -> None:
    server = make_slapd("restarted")
    container = make_container(server)
    target = make_target(server, container, find_cache_seconds=0)
    try:
        ref = target.create("User", person("kim"))
        server.restart()  # every connection is closed by the server
        assert target.find("User", "uid", "kim") == ref
    finally:
        target.close()


def test_a_server_that_does_not_answer_is_a_transient_error(
    make_slapd: Callable[[str], Slapd],
) -> None:
    server = make_slapd("paused")
    container = make_container(server)
    target = LdapTarget(endpoint(server, operation_timeout=1.0), object_types(container),
                        find_cache_seconds=0)  # fmt: skip
    try:
        target.validate()
        server.pause()
        try:
            with pytest.raises(TransientError, match="did not answer in time"):
                target.find("User", "uid", "x")
        finally:
            server.resume()
        assert target.find("User", "uid", "x") is None
    finally:
        target.close()


def test_a_stopped_server_is_unreachable(make_slapd: Callable[[str], Slapd]) -> None:
    server = make_slapd("stopped")
    container = make_container(server)
    target = make_target(server, container, find_cache_seconds=0)
    try:
        target.validate()
        server.stop()
        with pytest.raises(UnreachableError, match="127.0.0.1"):
            target.find("User", "uid", "x")
        with pytest.raises(UnreachableError):
            target.validate()
    finally:
        target.close()


def test_permissive_modify_as_slapd_implements_it(slapd_target: Slapd, target: LdapTarget) -> None:
    """slapd 2.5 honours Permissive Modify for an add of a present value without listing it
    in supportedControl, and still refuses to delete an absent value of a present attribute:
    why the target re-reads and trims a replayed delta (one extra read, only then)."""
    assert not target.supports_permissive_modify()
    users = [target.create("User", person(f"p{n}")) for n in range(2)]
    group = target.create("Group", {"cn": "P", "member": [users[0]]})
    target.update("Group", group, {"member": ValueDelta(add=(users[0],))})
    target.update("Group", group, {"member": ValueDelta(remove=(users[1],))})
    assert (target.get("Group", group) or {})["member"] == [users[0]]
