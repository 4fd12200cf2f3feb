"""The Samba AD fixture itself: a fresh DC per test, on its own address, reachable by plain
simple binds and by LDAPS, and gone (process and files) when the test ends."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import ldap3
import pytest

from tests.ad.samba import ADMIN_UPN, BASE_DN, TLS_SERVER_NAME, SambaDc


def test_two_fresh_dcs_run_side_by_side_each_with_its_own_data(
    make_samba_dc: Callable[[str], SambaDc],
) -> None:
    first, second = make_samba_dc("first"), make_samba_dc("second")
    assert first.address != second.address
    assert first.address.startswith("127.") and second.address.startswith("127.")
    with first.connect() as connection:
        connection.add(f"OU=only-in-first,{BASE_DN}", ["top", "organizationalUnit"])
    with second.connect() as connection:
        connection.search(BASE_DN, "(ou=only-in-first)", attributes=["ou"])
        assert connection.entries == []
    directory, process = first.directory, first.process
    first.stop()
    assert process is not None and process.poll() is not None
    assert not directory.exists()


def test_ldaps_verifies_the_dc_certificate_by_its_name(samba_dc: SambaDc) -> None:
    with samba_dc.connect(tls=True) as connection:  # unverified: the fixture's own setup
        assert connection.bound
    # verified against Samba's CA: the certificate names the host, not the address
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file)
    server = ldap3.Server(samba_dc.ldaps_url, tls=tls, get_info=ldap3.NONE, connect_timeout=5)
    with pytest.raises(ldap3.core.exceptions.LDAPSocketOpenError):
        ldap3.Connection(server, ADMIN_UPN, samba_dc.password.reveal(), auto_bind=True)
    assert TLS_SERVER_NAME.lower().startswith("dc1.")
