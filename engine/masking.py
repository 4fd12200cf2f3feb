"""Secrets out of every text that leaves the engine: error messages in the job's status, log
lines, API answers. A directory's error may quote what it was sent (a token in a 401's
detail, a base address with ``user:password@``), so messages are masked where they are
recorded, not trusted to be clean."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

E = TypeVar("E", bound=BaseException)
MASK = "*****"
#: switch values kept with the secrets that are no secret (masking them would garble text)
_NOT_SECRET = frozenset({"true", "false"})
_MIN_LENGTH = 3  # shorter values would mask ordinary characters of the message
_USERINFO = re.compile(r"(?<=://)[^\s/@]+@")
_DIGIT = re.compile(r"[0-9]")


#: a secret whose key says it is a credential (Password, SecretToken, ClientSecret, ApiKey...);
#: the others (SourceUrl, BaseDn, UserName, SourceDeltaMode) are what an operator needs to read
#: in an error to find a mistake, so they are shown
_CREDENTIAL = re.compile(r"pass|pwd|secret|token|credential|key|cert|auth", re.IGNORECASE)


def credential_values(secrets: Mapping[str, str]) -> list[str]:
    """The values to mask in messages: those of secrets whose key names a credential, and
    any value of another key that looks like one (a bearer token saved under another key
    is still hidden when it is long and is no URL, DN or address)."""
    return [v for k, v in secrets.items() if _CREDENTIAL.search(k) or _opaque(v)]


def _opaque(value: str) -> bool:
    """Long, one word, and neither a URL, a DN nor an address: a token (JWTs and padded
    base64 included), whatever key it was saved under."""
    return len(value) >= 20 and "://" not in value and not any(c in value for c in " ,@")


def credential_name(name: str) -> bool:
    """An attribute or key named like a credential (userPassword, apiToken, clientSecret...):
    its values are never shown."""
    return _CREDENTIAL.search(name) is not None


def opaque_value(value: str) -> bool:
    """A directory value that reads like a token (a JWT, long padded or unpadded base64): long,
    one word, no URL, DN or address, and mixing upper case, lower case and digits. Stricter
    than for secrets: a GUID, an employee number or a hash in hex stays readable in a log."""
    if len(value) < 20 or " " in value or "," in value or "@" in value or "://" in value:
        return False  # (as _opaque, in operators only: this runs for a cycle's long values)
    return value.lower() != value and value.upper() != value and _DIGIT.search(value) is not None


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret value in it, and any URL's ``user:password@``, masked."""
    values = {s for s in secrets if len(s) >= _MIN_LENGTH and s.strip().lower() not in _NOT_SECRET}
    for secret in sorted(values, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _USERINFO.sub(f"{MASK}@", text)


def masked_error(exc: E, secrets: Iterable[str]) -> E:
    """``exc`` itself when its message holds no secret, else a copy of it whose message is
    masked (same class, so what the engine decides by class does not change)."""
    text = str(exc)
    clean = mask_secrets(text, secrets)
    if clean == text:
        return exc
    copy = type(exc).__new__(type(exc))
    copy.__dict__.update(exc.__dict__)
    copy.args = (clean,)
    return copy
