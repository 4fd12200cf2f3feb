"""Active Directory (Samba) as the LDAP target: accounts created with an initial password over
TLS (never in clear), existing accounts joined wherever they are in the domain, deprovisioning
as a disable, the DC's certificate verified by its name when reached by address, NTLM binds."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import attrs
import ldap3
import pytest

from connectors.base import CredentialsError, ObjectError, UnreachableError
from connectors.ldap.config import ad_groups, ad_users
from connectors.ldap.connection import LdapEndpoint
from connectors.ldap.target import LdapTarget
from tests.ad.ad_objects import add_ou, add_user
from tests.ad.samba import ADMIN_UPN, BASE_DN, DOMAIN, TLS_SERVER_NAME, USERS_DN, SambaDc

PASSWORD = "Initial-Pw-9x!Q"  # an account's password: must appear in no error
_names = (f"u{n}" for n in itertools.count())


def endpoint(dc: SambaDc, *, tls: bool = True, **changes: object) -> LdapEndpoint:
    """The DC as a target sees it: by address, over LDAPS verified by the certificate's name."""
    base = LdapEndpoint(
        url=dc.ldaps_url if tls else dc.url,
        bind_dn=ADMIN_UPN,
        password=dc.password.reveal(),
        ca_file=dc.ca_file,
        tls_server_name=TLS_SERVER_NAME,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def synced(module_dc: SambaDc) -> str:
    """The container the target creates in; users elsewhere are still found."""
    with module_dc.connect() as connection:
        return add_ou(connection, "Synced")


@pytest.fixture
def target(module_dc: SambaDc, synced: str) -> Iterator[LdapTarget]:
    target = LdapTarget(
        endpoint(module_dc), [ad_users(BASE_DN, synced), ad_groups(BASE_DN, synced)]
    )
    yield target
    target.close()


def user(name: str, **more: object) -> dict[str, object]:
    return {"cn": name, "sAMAccountName": name, "userPrincipalName": f"{name}@example.org",
            "givenName": "Ada", "sn": "Lovelace", **more}  # fmt: skip


def control(dc: SambaDc, dn: str) -> int:
    with dc.connect() as connection:
        connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
        return int(connection.response[0]["raw_attributes"]["userAccountControl"][0])


def binds(dc: SambaDc, name: str, password: str) -> bool:
    server = ldap3.Server(dc.url, get_info=ldap3.NONE, connect_timeout=5)
    return bool(ldap3.Connection(server, f"{name}@example.org", password).bind())


def test_a_user_created_with_a_password_over_ldaps_is_enabled_and_can_log_on(
    module_dc: SambaDc, target: LdapTarget, synced: str
) -> None:
    name = next(_names)
    dn = target.create("User", user(name, unicodePwd=PASSWORD))
    assert dn.lower() == f"cn={name},{synced}".lower()
    assert control(module_dc, dn) == 512  # NORMAL_ACCOUNT: enabled, a password required
    assert binds(module_dc, name, PASSWORD)
    assert not binds(module_dc, name, PASSWORD + "x")
    # without a password an account is created, but left disabled
    bare = target.create("User", user(next(_names)))
    assert control(module_dc, bare) == 514


def test_a_password_is_refused_in_clear_and_a_refused_password_leaves_no_account(
    module_dc: SambaDc, synced: str, target: LdapTarget
) -> None:
    clear = LdapTarget(endpoint(module_dc, tls=False), [ad_users(BASE_DN, synced)])
    name = next(_names)
    with pytest.raises(ObjectError, match="unicodePwd.*TLS") as refused:
        clear.create("User", user(name, unicodePwd=PASSWORD))
    assert PASSWORD not in str(refused.value)
    assert clear.find("User", "sAMAccountName", name) is None  # nothing was sent
    clear.close()
    # a password the DC's policy refuses: the one add is refused whole, nothing is created
    with pytest.raises(ObjectError) as weak:
        target.create("User", user(name, unicodePwd="weakling"))
    assert "weakling" not in str(weak.value)
    assert target.find("User", "sAMAccountName", name) is None


def test_an_account_outside_the_container_is_found_across_the_domain(
    module_dc: SambaDc, target: LdapTarget, synced: str
) -> None:
    with module_dc.connect() as connection:
        elsewhere = add_user(connection, "grace", add_ou(connection, "Elsewhere"))
    assert "OU=Synced" not in elsewhere
    found = target.find("User", "sAMAccountName", "grace")
    assert found is not None and found.lower() == elsewhere.lower()
    # the default users container too (the Administrator is in CN=Users)
    assert target.find("User", "sAMAccountName", "Administrator") == f"CN=Administrator,{USERS_DN}"


def test_deprovisioning_disables_keeping_the_other_flags_and_a_hard_delete_deletes(
    module_dc: SambaDc, target: LdapTarget
) -> None:
    dn = target.create("User", user(next(_names), unicodePwd=PASSWORD, userAccountControl=0x10200))
    assert control(module_dc, dn) == 0x10200  # as mapped: DONT_EXPIRE_PASSWORD kept
    target.delete("User", dn, soft=True)
    assert control(module_dc, dn) == 0x10202
    target.delete("User", dn, soft=True)  # replayed: harmless
    target.update("User", dn, {target.soft_delete_attribute: True})  # the engine's restore
    assert control(module_dc, dn) == 0x10200
    target.update("User", dn, {"accountDisabled": "True"})  # as a mapping writes it
    assert control(module_dc, dn) == 0x10202
    target.delete("User", dn, soft=False)
    assert target.get("User", dn) is None
    target.delete("User", dn, soft=True)  # a disable of what is gone: nothing to do


def test_the_certificate_is_verified_by_tls_server_name_when_connecting_by_address(
    module_dc: SambaDc, synced: str
) -> None:
    for url, start_tls in ((module_dc.ldaps_url, False), (module_dc.url, True)):
        good = endpoint(module_dc, url=url, start_tls=start_tls)
        LdapTarget(good, [ad_users(BASE_DN, synced)]).validate()
        for name in ("wrong.example.org", None):
            bad = LdapTarget(attrs.evolve(good, tls_server_name=name), [ad_users(BASE_DN, synced)])
            with pytest.raises(UnreachableError, match="TLS with .* failed"):
                bad.validate()


def test_an_ntlm_bind_as_domain_user(module_dc: SambaDc, synced: str) -> None:
    ntlm = endpoint(module_dc, tls=False, bind_dn=f"{DOMAIN}\\Administrator", authentication="ntlm")
    target = LdapTarget(ntlm, [ad_users(BASE_DN, synced)])
    target.validate()
    assert (
        target.find("User", "sAMAccountName", "Administrator") is not None
    )  # bound: not anonymous
    target.close()
    wrong = LdapTarget(attrs.evolve(ntlm, password="not-it"), [ad_users(BASE_DN, synced)])
    with pytest.raises(CredentialsError, match="invalid credentials"):
        wrong.validate()
    no_domain = LdapTarget(attrs.evolve(ntlm, bind_dn="Administrator"), [ad_users(BASE_DN, synced)])
    with pytest.raises(CredentialsError, match="DOMAIN"):
        no_domain.validate()
