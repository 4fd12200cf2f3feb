"""TLS to a real slapd with a throwaway CA: ldaps://, StartTLS, and verification on by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.base import UnreachableError
from connectors.ldap import LdapTarget
from tests.ldap.ldap_objects import endpoint, object_types
from tests.ldap.slapd import BASE_DN, Slapd, require_slapd
from tests.ldap.tls import Ca, make_ca, make_server_certificate


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory, ca: Ca) -> Iterator[Slapd]:
    require_slapd()
    certificate = make_server_certificate(tmp_path_factory.mktemp("server-cert"), ca)
    with Slapd(tmp_path_factory.mktemp("slapd-tls"), "tls", tls=certificate) as server:
        yield server


def check(server: Slapd, **options: object) -> None:
    """Bind and read the base entry through an LdapTarget with these endpoint options."""
    target = LdapTarget(endpoint(server, **options), object_types(BASE_DN))
    try:
        target.validate()
    finally:
        target.close()


def test_ldaps_with_the_ca_file(tls_slapd: Slapd, ca: Ca) -> None:
    check(tls_slapd, url=tls_slapd.ldaps_url, ca_file=str(ca.certificate))


def test_start_tls_with_the_ca_file(tls_slapd: Slapd, ca: Ca) -> None:
    check(tls_slapd, start_tls=True, ca_file=str(ca.certificate))


@pytest.mark.parametrize("start_tls", [False, True])
def test_certificates_are_verified_by_default(tls_slapd: Slapd, start_tls: bool) -> None:
    """No ca_file: the system's CAs do not know ours, so the connection is refused."""
    url = tls_slapd.url if start_tls else tls_slapd.ldaps_url
    with pytest.raises(UnreachableError, match="certificate was not verified"):
        check(tls_slapd, url=url, start_tls=start_tls)


def test_another_ca_is_not_trusted(
    tls_slapd: Slapd, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = make_ca(tmp_path_factory.mktemp("other-ca"), "stranger-ca")
    with pytest.raises(UnreachableError, match="certificate was not verified"):
        check(tls_slapd, url=tls_slapd.ldaps_url, ca_file=str(stranger.certificate))


def test_verify_false_accepts_an_unknown_certificate(tls_slapd: Slapd) -> None:
    check(tls_slapd, url=tls_slapd.ldaps_url, verify=False)
