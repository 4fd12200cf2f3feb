"""Active Directory accounts as an LDAP target writes them: userAccountControl and unicodePwd.

AD keeps whether an account may log on in one integer of flags (userAccountControl), and takes
a password only as ``unicodePwd``: the UTF-16LE bytes of the password in double quotes, over an
encrypted connection only. A mapping writes the password as text to ``unicodePwd`` and enables
or disables the account through the pseudo-attributes ``accountDisabled`` (Entra's name in its
HR-to-AD mappings) or ``accountEnabled``; this module turns those into what AD takes, so that
no mapping has to encode bytes or know the flags' bits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ldap3

from connectors.base import ObjectError, ObjectGone, Value, ValueDelta, as_list
from connectors.ldap.connection import LdapClient, LdapEndpoint

ACCOUNTDISABLE = 0x2
NORMAL_ACCOUNT = 0x200
CONTROL = "userAccountControl"
PASSWORD = "unicodePwd"
DISABLED_FLAG = "accountDisabled"
#: the engine's soft_delete_attribute: update(ref, {accountEnabled: True}) enables again
ENABLED_FLAG = "accountEnabled"
_FLAGS = (DISABLED_FLAG.lower(), ENABLED_FLAG.lower())
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class PasswordInClear(ObjectError):
    """A password would cross an unencrypted connection: refused before it is sent."""


def encode_password(value: Value | ValueDelta | None) -> bytes:
    """The unicodePwd value AD takes: the password in double quotes, as UTF-16LE."""
    values = [] if isinstance(value, ValueDelta) else as_list(value)
    if len(values) != 1 or not isinstance(values[0], str | bytes) or not values[0]:
        raise ObjectError(f"{PASSWORD} takes one password (text); got no usable value")
    password = values[0]
    if isinstance(password, bytes):  # already encoded by whoever built the value
        return password
    return f'"{password}"'.encode("utf-16-le")


def require_encryption(encrypted: bool, shown_url: str) -> None:
    """AD refuses a password on a plain connection; say so before sending it at all."""
    if not encrypted:
        raise PasswordInClear(
            f"{PASSWORD} (a password) is only sent over TLS: {shown_url} is plain ldap:// "
            "without StartTLS; use an ldaps:// URL or the secret StartTls=true"
        )


def _flag(name: str, value: Any) -> bool:
    """Whether the account should be disabled, from a pseudo-attribute's value."""
    first = value[0] if isinstance(value, list | tuple) and value else value
    text = str(first).strip().lower()
    if isinstance(first, bool) or text in _TRUE + _FALSE:
        truth = first if isinstance(first, bool) else text in _TRUE
        return truth if name.lower() == DISABLED_FLAG.lower() else not truth
    raise ObjectError(f"{name} takes true or false, not {text[:40]!r}")


def take_account(values: dict[str, Any]) -> tuple[bytes | None, bool | None, int | None]:
    """Remove the password, the enable/disable pseudo-attributes and userAccountControl from
    ``values``: (encoded password or None, disabled or None if not said, control or None)."""
    password: bytes | None = None
    disabled: bool | None = None
    control: int | None = None
    for name in list(values):
        low = name.lower()
        if low == PASSWORD.lower():
            value = values.pop(name)
            if value not in (None, [], ""):
                password = encode_password(value)
        elif low in _FLAGS:
            value = values.pop(name)
            if value not in (None, [], ""):
                disabled = _flag(name, value)
        elif low == CONTROL.lower():
            value = values.pop(name)
            control = parse_control(value)
    return password, disabled, control


def parse_control(value: Any) -> int | None:
    """A userAccountControl value as an integer (None when there is none)."""
    values = [] if isinstance(value, ValueDelta) else as_list(value)
    if not values:
        return None
    try:
        return int(values[0])
    except (TypeError, ValueError):
        raise ObjectError(f"{CONTROL} must be an integer, not {str(values[0])[:40]!r}") from None


def with_disabled(control: int, disabled: bool) -> int:
    """``control`` with its ACCOUNTDISABLE bit set or cleared, every other bit kept."""
    return control | ACCOUNTDISABLE if disabled else control & ~ACCOUNTDISABLE


def final_control(password: bytes | None, disabled: bool | None, control: int | None) -> int:
    """The userAccountControl a new account ends with: as mapped, else a normal account;
    disabled if the mapping says so, and always without a password (an account with no
    password that could log on is not something to create by default)."""
    value = control if control is not None else NORMAL_ACCOUNT
    if disabled is not None:
        value = with_disabled(value, disabled)
    if password is None and control is None:
        value = with_disabled(value, True)
    return value


def current_control(raw: Mapping[str, Any]) -> int:
    """userAccountControl from an entry's raw attributes (NORMAL_ACCOUNT if unreadable)."""
    values = next((v for k, v in raw.items() if k.lower() == CONTROL.lower()), None) or []
    try:
        return int(bytes(values[0]).decode("ascii"))
    except (IndexError, ValueError):
        return NORMAL_ACCOUNT


class Accounts:
    """What an LDAP target writes for AD accounts, on the connection of the calling thread."""

    def __init__(self, client: Callable[[], LdapClient], endpoint: LdapEndpoint) -> None:
        self._client = client
        self.endpoint = endpoint

    @property
    def _encrypted(self) -> bool:
        return self.endpoint.host_port[2] or self.endpoint.start_tls

    def create(self, payload: dict[str, Any], add: Callable[[dict[str, Any]], None]) -> None:
        """An AD account in one add (by ``add``): its password (unicodePwd, over TLS only) and
        its final userAccountControl (enabled, unless the mapping disables it or gives no
        password).

        One write, so that nothing can be left half made. An account added disabled and then
        given its password by a second write was left disabled with no password by a crash
        between the two; the retry found it by its matching values, joined it, never sent the
        ObjectAddOnly password again, and enabled it with none (Samba takes that; Windows
        refuses it for ever). AD checks the password against its policy in the add itself
        and refuses the whole add (constraintViolation) when it does not meet it.
        """
        password, disabled, control = take_account(payload)
        if password is not None:
            require_encryption(self._encrypted, self.endpoint.shown_url)
            payload[PASSWORD] = [password]
        payload[CONTROL] = [str(final_control(password, disabled, control))]
        add(payload)

    def prepare_update(self, ref: str, changes: dict[str, Any]) -> None:
        """The password encoded, and the enable/disable pseudo-attributes as a new
        userAccountControl (read now, so that its other flags are kept)."""
        password, disabled, control = take_account(changes)
        if password is not None:
            require_encryption(self._encrypted, self.endpoint.shown_url)
            changes[PASSWORD] = password
        if disabled is not None and control is None:
            control = self.control(ref)
            if control is None:
                raise ObjectGone(f"{ref} does not exist")
        if control is not None:
            changes[CONTROL] = control if disabled is None else with_disabled(control, disabled)

    def disable(self, ref: str) -> None:
        """A soft delete: the ACCOUNTDISABLE flag set, the other flags kept (nothing if the
        account is gone or disabled already, so a replay is harmless)."""
        control = self.control(ref)
        if control is not None and control != with_disabled(control, True):
            replace = [(ldap3.MODIFY_REPLACE, [str(with_disabled(control, True))])]
            self._client().modify(ref, {CONTROL: replace})

    def control(self, dn: str) -> int | None:
        """The entry's userAccountControl, or None if the entry is gone."""
        entries = self._client().search(dn, "(objectClass=*)", [CONTROL], scope=ldap3.BASE)
        if not entries:
            return None
        return current_control(entries[0].get("raw_attributes") or {})
