"""An NTLM bind, as a SASL exchange of raw NTLMSSP messages (mechanism GSS-SPNEGO).

ldap3's own NTLM bind speaks Microsoft's "Sicily" bind, which Samba does not understand (it
drops the connection with a protocol error). SPNEGO servers, Samba's and Windows', also accept
a raw NTLMSSP negotiate message as the first SASL token, so this bind works with both; the
messages themselves are ldap3's (:class:`ldap3.utils.ntlm.NtlmClient`). No signing or sealing
is negotiated: where a DC requires LDAP signing, bind over LDAPS or StartTLS.

ldap3 hashes the password with MD4, which OpenSSL 3 no longer offers to Python's hashlib;
ldap3 then takes it from pycryptodome (a dependency of the project for this reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ldap3
from ldap3.protocol.sasl.sasl import send_sasl_negotiation
from ldap3.utils.ntlm import NtlmClient

from connectors.base import CredentialsError

if TYPE_CHECKING:
    from connectors.ldap.connection import LdapEndpoint

MECHANISM = "GSS-SPNEGO"
_IN_PROGRESS = 14  # saslBindInProgress: the server's challenge came back


def ntlm_bind(connection: ldap3.Connection, endpoint: LdapEndpoint) -> bool:
    """Bind the open ``connection``; False (with ``connection.result`` saying why) if the
    server refused."""
    domain, _, user = (endpoint.bind_dn or "").partition("\\")
    if not domain or not user:
        raise CredentialsError(
            f"{endpoint.role or 'LDAP'} NTLM bind to {endpoint.shown_url}: the user name must "
            "be DOMAIN\\user"
        )
    client = NtlmClient(domain=domain, user_name=user, password=endpoint.password or "")
    connection.sasl_mechanism = MECHANISM
    result = send_sasl_negotiation(connection, None, client.create_negotiate_message())
    if result.get("result") != _IN_PROGRESS or not result.get("saslCreds"):
        return False
    client.parse_challenge_message(result["saslCreds"])
    try:
        message = client.create_authenticate_message()
    except ValueError as exc:  # no MD4: neither OpenSSL nor pycryptodome has it
        raise CredentialsError(
            f"NTLM bind to {endpoint.shown_url}: the MD4 hash NTLM needs is missing ({exc}); "
            "install pycryptodome"
        ) from None
    result = send_sasl_negotiation(connection, None, message)
    if result.get("result") != 0:
        return False
    connection.bound = True  # ldap3 sets it only for the binds it runs itself
    return True
