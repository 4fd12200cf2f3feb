"""Passwords a mapping writes, kept in the state as keyed digests, never in clear.

A link keeps the values last exported, so that the next cycle can tell what changed without
reading the target (ARCHITECTURE rule 7). For a password (``unicodePwd`` from RandomString in
scimToAd, a ``userPassword`` a source hands over) that would leave the password in clear in the
state file, its backups and every plan's copy of it. "Is it the one we sent?" needs no clear
value: an HMAC-SHA256 of it answers, under a random key of the state file's own
(``StateStore.value_key``). The same value gives the same digest in every cycle and plan of
that file, so an unchanged password is not sent again and a changed one is; digests differ
from one file to the next, so neither a table of precomputed hashes nor two files compared
tell a password. It is no encryption: whoever holds the file holds its key and can test
guesses of a weak password one at a time, as against any salted hash (a random password
cannot be guessed). A slow hash would make each guess dearer, but would cost every cycle one
slow hash per object for a password that flows on every update.

Which attributes: a target attribute whose name holds ``pass`` or ``pwd`` (unicodePwd,
userPassword, password). Not every name engine.masking hides in records: ``key``, ``cert``,
``token``, ``auth`` would take in userCertificate, publicKey or sshPublicKey, public values,
often multi-valued, whose changes must go as values added and removed (a digest of a whole
list only tells that it changed) and which name nothing secret. A name caught wrongly
(passwordLastSet) still works: a change of it is sent, whole.

State written before this keeps a password in clear until its object is seen again: the diff
digests a clear password as it reads it (so it is not sent again only because it is stored
another way) and the link is written back sealed; the SQLite store seals all of them once,
when it makes its key (schema 7).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from engine.directory_values import Sealed, ValueRefused, check_value, json_default
from engine.mapping import CompiledMapping, diff

_PASSWORD = re.compile(r"pass|pwd", re.IGNORECASE)


def password_name(name: str) -> bool:
    """Whether values of the target attribute ``name`` are kept only as digests."""
    return _PASSWORD.search(name) is not None


def seal(key: bytes, value: Any) -> Sealed:
    """The keyed digest of one attribute's value (all of a list at once); a digest as it is.
    Bytes are digested as stored (base64 in JSON), so a value read back from stored JSON
    digests as the value the cycle mapped."""
    if value.__class__ is Sealed:
        return value
    text = orjson.dumps(value, default=json_default)
    return Sealed(hmac.new(key, text, hashlib.sha256).hexdigest())


@attrs.frozen
class Passwords:
    """The password attributes of one object mapping, and the state file's key."""

    key: bytes = attrs.field(repr=False)
    names: tuple[str, ...]

    def seal(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``values`` with each password digested: what the state keeps."""
        sealed = dict(values)
        for name in self.names:
            value = sealed.get(name)
            if value is None or value.__class__ is Sealed:
                continue
            check_value(name, value)  # too long: refused here, as it would be unsealed
            try:
                sealed[name] = seal(self.key, value)
            except (TypeError, orjson.JSONEncodeError) as exc:
                raise ValueRefused(f"{name}: the value cannot be stored: {exc}") from None
        return sealed

    def diff(
        self,
        mapping: CompiledMapping,
        desired: Mapping[str, Any],
        exported: Mapping[str, Any] | None,
        *,
        value_deltas: bool,
    ) -> dict[str, Any]:
        """engine.mapping.diff with passwords compared by digest (a clear one in ``exported``,
        from an old state file, digested as read) and sent in clear. A password known only by
        its digest (kept by IgnoreFlowIfNullOrEmpty) cannot be sent: it is left out."""
        before = None if exported is None else self.seal(exported)
        delta = diff(mapping, self.seal(desired), before, value_deltas=value_deltas)
        for name in self.names:
            if name in delta:
                value = desired.get(name)
                if value.__class__ is Sealed:
                    del delta[name]
                else:
                    delta[name] = value
        return delta

    def clear(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        """``desired`` without passwords known only by their digest: what may be sent."""
        if not any(desired.get(name).__class__ is Sealed for name in self.names):
            return dict(desired)
        return {k: v for k, v in desired.items() if v.__class__ is not Sealed}

    def texts(self, desired: Mapping[str, Any]) -> list[str]:
        """The passwords in ``desired`` as text: what an error message must not show (a
        target may quote a value it refused)."""
        found: list[str] = []
        for name in self.names:
            value = desired.get(name)
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, str):
                    found.append(item)
        return found


def passwords_for(mapping: CompiledMapping, key: Callable[[], bytes]) -> Passwords | None:
    """The mapping's password attributes with the store's key (asked only when there are
    some), or None: a mapping without passwords costs the cycle nothing."""
    names = tuple(dict.fromkeys(a.target for a in mapping.attributes if password_name(a.target)))
    return Passwords(key(), names) if names else None


def sealed_exported(key: bytes, exported: Mapping[str, Any]) -> dict[str, Any] | None:
    """``exported`` (a link's values, decoded) with every password-named value digested, or
    None when it holds no clear password: what the store's one-time sealing rewrites."""
    clear = [n for n, v in exported.items() if password_name(n) and v is not None
             and v.__class__ is not Sealed]  # fmt: skip
    if not clear:
        return None
    return {n: seal(key, v) if n in clear else v for n, v in exported.items()}
