"""Secrets out of every text that leaves the engine: error messages in the job's status, log
lines, API answers. A directory's error may quote what it was sent (a token in a 401's
detail, a base address with ``user:password@``), so messages are masked where they are
recorded, not trusted to be clean."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TypeVar
from urllib.parse import quote, quote_plus

E = TypeVar("E", bound=BaseException)
MASK = "*****"
#: switch values kept with the secrets that are no secret (masking them would garble text)
_NOT_SECRET = frozenset({"true", "false"})
_MIN_LENGTH = 3  # shorter values would mask ordinary characters of the message
_USERINFO = re.compile(r"(?<=://)[^\s/@]+@")
_DIGIT = re.compile(r"[0-9]")
#: a run that may be base64 (Basic auth's ``user:password``, a token encoded by a library)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
#: an Authorization header's credential quoted in an error, whatever it holds (an access
#: token fetched from a TokenUrl is in no secret); a plain word after "Bearer" stays
_BEARER = re.compile(r"\b(Bearer\s+)([A-Za-z0-9._~+/=-]{8,})")


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
    """``text`` with each secret value in it, and any URL's ``user:password@``, masked: in
    every form a library quotes it (raw, escaped as ``repr`` or JSON writes it, URL-encoded,
    base64, Basic auth's ``user:password`` in base64), and any bearer credential."""
    values = {s for s in secrets if len(s) >= _MIN_LENGTH and s.strip().lower() not in _NOT_SECRET}
    forms = {form for value in values for form in _forms(value)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    if values:
        wanted = [value.encode("utf-8") for value in values]
        text = _BASE64_RUN.sub(lambda run: _masked_run(run.group(), wanted), text)
    text = _BEARER.sub(
        lambda m: m.group(1) + MASK if _credential_like(m.group(2)) else m.group(), text
    )
    return _USERINFO.sub(f"{MASK}@", text)


#: Secrets up to this long have their forms cached (a token, a password); a longer one (a
#: PEM text) is written out each time, so the cache holds no more than ~50 MB whatever values
#: an application's secrets are given over time
_CACHED = 1024


def _forms(secret: str) -> frozenset[str]:
    return _quoted_forms(secret) if len(secret) <= _CACHED else _written_forms(secret)


@lru_cache(maxsize=2048)  # above an application's secrets, saved and sent (MAX_SECRETS)
def _quoted_forms(secret: str) -> frozenset[str]:
    return _written_forms(secret)


def _written_forms(secret: str) -> frozenset[str]:
    """The ways a secret appears in text a library wrote: ``repr`` and JSON escape what is
    not printable, URL encoding what is not safe, base64 everything."""
    raw = secret.encode("utf-8")
    forms = {
        secret,
        repr(secret)[1:-1],
        repr(secret + '"')[1:-2],  # in a longer text with both quotes, repr escapes ' too
        repr(raw)[2:-1],  # the UTF-8 bytes as a bytes repr shows them (b'p\xc3\xa4ss')
        html.escape(secret),
        html.escape(secret, quote=False),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return frozenset(form for form in forms if len(form) >= _MIN_LENGTH)


def _masked_run(run: str, secrets: list[bytes]) -> str:
    """The run masked when it is base64 whose decoded bytes hold a secret (``user:password``
    in a Basic header, a secret after a prefix), else as it was."""
    whole = run.rstrip("=")
    alphabet = b"-_" if ("-" in whole or "_" in whole) else b"+/"
    for skip in range(4):  # the run may start with a character or three of something else
        body = whole[skip:]
        body = body[:-1] if len(body) % 4 == 1 else body  # a stray last character
        padded = body + "=" * (-len(body) % 4)
        try:
            decoded = base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(secret in decoded for secret in secrets):
            return MASK
    return run


def _credential_like(word: str) -> bool:
    """A bearer credential rather than a word ("Bearer authentication failed" stays)."""
    return not word.isalpha() or (word.lower() != word and word.upper() != word)


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
