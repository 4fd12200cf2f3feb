"""The value contract, checked on the engine's side of the connector boundary.

A source may hand over anything (a SCIM source can pass a lone surrogate from JSON; a buggy
connector a set or a dict). What is outside the contract of ``connectors.base`` must become
that one object's escrow with a readable reason, never an exception that stops the page, and
never a Python repr written to a target. The checks are shaped for the hot path: one class
comparison for the common ``str`` value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from connectors.base import ConnectorError, ObjectError
from engine.store.base import encode_values

#: Longest ``str`` (characters) or ``bytes`` value; longer ones are refused, not truncated.
MAX_VALUE_LENGTH = 1 << 20
#: Directory integers are 64-bit (LDAP INTEGER, SCIM JSON numbers as stored by servers).
INT_RANGE = range(-(2**63), 2**63)


class ValueRefused(ObjectError):
    """An object whose values fall outside the connector contract; it is escrowed."""


class SourceContractError(ConnectorError):
    """The source broke the contract for a whole read (a watermark that cannot be stored)."""


class CycleFailed(ConnectorError):
    """An unexpected error ended a cycle: recorded on the job like an unreachable directory
    (``lastExecution.error``, quarantine after ``QuarantineUnreachableCycles``)."""


def printable(text: str) -> str:
    """Text that can be stored and logged whatever it holds (lone surrogates escaped)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def described(value: object) -> str:
    """A storable, printable description of anything, even of what fails to describe itself
    (an exception whose __str__ raises, an anchor whose __repr__ does)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"
    return printable(text)


def storable_text(text: Any) -> bool:
    """A str that SQLite and JSON can hold: no lone surrogates."""
    if text.__class__ is not str:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checked_encoding(desired: Mapping[str, Any]) -> str:
    """The JSON of mapped values (checked one by one by ``map_object``, see ``check_value``).

    orjson refuses lone surrogates and integers beyond 64 bits; a value too long is found
    here, with a full look only when the whole text is longer than one value may be.
    """
    try:
        text = encode_values(desired)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValueRefused(f"values cannot be stored: {exc}") from None
    if len(text) > MAX_VALUE_LENGTH:
        for name, value in desired.items():
            for item in value if value.__class__ is list else (value,):
                _check_scalar(name, item)
    return text


def check_value(name: str, value: Any) -> None:
    """Refuse a mapped value that is not a str (those are the common case, checked by class
    in the hot loop before calling this): what the connector contract allows, or nothing."""
    if value.__class__ is list:
        if all(item.__class__ is str for item in value) and (  # a big group: one pass
            max(map(len, value), default=0) <= MAX_VALUE_LENGTH
        ):
            return
        for item in value:
            _check_scalar(name, item)
    else:
        _check_scalar(name, value)


def _check_scalar(name: str, value: Any) -> None:
    cls = value.__class__
    if isinstance(value, str | bytes):  # str subclasses too (expression results)
        if len(value) > MAX_VALUE_LENGTH:
            raise ValueRefused(
                f"{name}: a value of {len(value)} characters or bytes is too "
                f"long (at most {MAX_VALUE_LENGTH})"
            )
    elif cls is bool:
        return
    elif isinstance(value, int):
        if value not in INT_RANGE:
            raise ValueRefused(f"{name}: an integer outside the 64-bit range")
    else:
        raise ValueRefused(
            f"{name}: a {cls.__name__} is not a directory value "
            "(str, bytes, int, bool, or a list of them)"
        )
