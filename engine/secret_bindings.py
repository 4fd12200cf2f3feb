"""Saved credentials stay bound to the address they were saved for (issue #20): a request
that points a connector somewhere else (validateCredentials, a secrets PUT or PATCH) must
bring every credential used there, or a caller could have the saved token or bind password
sent to a host of its choosing.

The bindings come from the built-in connectors (engine/templates ``_ldap``, ``_scim``), which
read each side's keys with the side's prefix, ``Source`` for the source and none for the
target: an LDAP side connects to ``[Source]Url`` and binds with ``[Source]Password``, a SCIM
side sends ``[Source]SecretToken`` to ``[Source]BaseAddress``. So each of those four addresses
is bound to every credential of its side but the one the other connector kind sends to the
other address (``BaseAddress`` to all the target's but ``Password``: an application's secrets
may serve an LDAP and a SCIM target at once). Any other key named like an address (ending in
Url, Uri, Address, Host or Server, in any case: a registered template's ``TokenUrl``) is bound
to every credential of both sides, since which connector reads it, and what it sends there,
is not known here: the safe default. A credential is a key
:func:`engine.masking.credential_name` says is one, except the connectors' switches whose
names only read like one (``VerifyCertificate``, ``Authentication``) and the addresses.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit, urlunsplit

from engine.errors import ConfigurationError
from engine.limits import shown
from engine.masking import credential_name

SOURCE_PREFIX = "Source"
#: the built-in connectors' addresses (unprefixed) and the credential each sends there
_OWN = {"Url": "Password", "BaseAddress": "SecretToken"}
#: the built-in connectors' addresses and their side (True: the source)
_SIDE_ADDRESSES = {SOURCE_PREFIX + a: True for a in _OWN} | dict.fromkeys(_OWN, False)
_ADDRESS = re.compile(r"(url|uri|address|host|server)$", re.IGNORECASE)
#: the built-in connectors' switches (unprefixed) whose names read like credentials
_SWITCHES = frozenset({"VerifyCertificate", "Authentication"})
_TRUE = ("true", "1", "yes")
#: the built-in connectors' switches (unprefixed) saying how a side's channel is protected,
#: each with what its absence means: turning one (StartTLS off, NTLM to a simple bind, another
#: CA or certificate name, no verification) sends the saved password in clear or to whoever
#: answers at the address, so a change is bound like a changed address
_CHANNEL = {
    "StartTls": "false",
    "VerifyCertificate": "true",
    "Authentication": "simple",
    "CaFile": "",
    "TlsServerName": "",
}


def is_address(key: str) -> bool:
    """Whether a secret says where a connector connects."""
    return key in _SIDE_ADDRESSES or _ADDRESS.search(key) is not None


def is_channel(key: str) -> bool:
    """Whether a secret says how a side's connection is protected (TLS, the bind's kind)."""
    return key.removeprefix(SOURCE_PREFIX) in _CHANNEL


def _channel_meaning(key: str, secrets: Mapping[str, str]) -> str:
    """What the connectors make of a channel switch (absent: its default)."""
    bare = key.removeprefix(SOURCE_PREFIX)
    value = (secrets.get(key) or _CHANNEL[bare]).strip()
    if bare in ("StartTls", "VerifyCertificate"):
        return str(value.lower() in _TRUE)
    return value.lower() if bare == "Authentication" else value


def is_credential(key: str) -> bool:
    """Whether a secret is sent to an address to prove who the connector is (an address is
    none, though ``TokenUrl`` reads like a credential)."""
    bare = key.removeprefix(SOURCE_PREFIX)
    return credential_name(key) and bare not in _SWITCHES and not is_address(key)


def bound_to(address: str, keys: Collection[str]) -> list[str]:
    """The credentials among ``keys`` that are used at ``address``: those of its side (but
    the other built-in connector's own) for a built-in connector's address, every one for
    any other."""
    side = _SIDE_ADDRESSES.get(address)
    if side is None:
        return sorted(k for k in keys if is_credential(k))
    prefix = SOURCE_PREFIX if side else ""
    bare = address.removeprefix(prefix)
    others = {prefix + own for a, own in _OWN.items() if a != bare}
    return sorted(
        k
        for k in keys
        if is_credential(k) and k.startswith(SOURCE_PREFIX) == side and k not in others
    )


def same_address(a: str, b: str) -> bool:
    """Equal once surrounding blanks, a trailing ``/`` and the case of the scheme and host are
    set aside (what the connectors ignore too); anything else is another address."""
    return _normal(a) == _normal(b)


def _normal(value: str) -> str:
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket: compared as written
        return text
    if not parts.scheme or not parts.netloc:
        return text.lower().rstrip("/")  # a bare host name
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def unbound_credentials(
    stored: Mapping[str, str], result: Mapping[str, str], fresh: Collection[str]
) -> dict[str, list[str]]:
    """For each address the request changes, the saved credentials that would be used there
    without the request having sent them. ``stored``: the secrets before the request;
    ``result``: what connectors would be built from (or what is stored) after it; ``fresh``:
    the keys the request gave a value of its own (not the mask). An address changes when the
    request sends one that differs from the stored one, or that was not stored. A channel
    switch (:func:`is_channel`) that changes meaning, sent or left out, binds its side's
    credentials the same way."""
    unbound: dict[str, list[str]] = {}
    for key in sorted(fresh):
        if key not in result or not is_address(key):
            continue
        if key in stored and same_address(stored[key], result[key]):
            continue
        follow = [k for k in bound_to(key, list(result)) if k in stored and k not in fresh]
        if follow:
            unbound[key] = follow
    for key in sorted({k for k in (*stored, *fresh) if is_channel(k)}):
        if _channel_meaning(key, stored) == _channel_meaning(key, result):
            continue  # (a PUT that leaves a switch out turns it to its default)
        side = key.startswith(SOURCE_PREFIX)
        follow = [
            k
            for k in sorted(result)
            if is_credential(k) and k.startswith(SOURCE_PREFIX) == side
            and k in stored and k not in fresh
        ]  # fmt: skip
        if follow:
            unbound[key] = follow
    return unbound


def check_bound(
    stored: Mapping[str, str], result: Mapping[str, str], fresh: Collection[str]
) -> None:
    """Refuse (ConfigurationError, naming keys, never values) a request that would use a saved
    credential at an address it changed; see :func:`unbound_credentials`."""
    unbound = unbound_credentials(stored, result, fresh)
    if not unbound:
        return
    addresses = ", ".join(shown(k) for k in unbound)
    keys = ", ".join(shown(k) for k in sorted({k for ks in unbound.values() for k in ks}))
    raise ConfigurationError(
        f"a changed address or channel ({addresses}) needs its credentials sent with it: send "
        f"{keys} with a value, not the mask (a saved credential is never used at a new address "
        "nor over a weaker channel)"
    )
