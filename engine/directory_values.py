"""The value contract, checked on the engine's side of the connector boundary.

A source may hand over anything (a SCIM source can pass a lone surrogate from JSON; a buggy
connector a set or a dict). What is outside the contract of ``connectors.base`` must become
that one object's escrow with a readable reason, never an exception that stops the page, and
never a Python repr written to a target. The checks are shaped for the hot path: one class
comparison for the common ``str`` value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from connectors.base import ObjectError, Value

#: Longest ``str`` (characters) or ``bytes`` value; longer ones are refused, not truncated.
MAX_VALUE_LENGTH = 1 << 20
#: Directory integers are 64-bit (LDAP INTEGER, SCIM JSON numbers as stored by servers).
INT_RANGE = range(-(2**63), 2**63)


class ValueRefused(ObjectError):
    """An object whose values fall outside the connector contract; it is escrowed."""


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


#: Marks ``Link.exported`` when the values in the target object are not known (a write
#: whose outcome a crash left in doubt): the next diff then sends every mapped value and
#: clears every mapped attribute that has no desired value. What follows the mark is the last
#: values known, kept because the object can still be found by its matching values in them.
UNKNOWN = "?"


def unknown(exported: str) -> str:
    """``exported`` marked as no longer known (idempotent)."""
    return exported if exported.startswith(UNKNOWN) else UNKNOWN + exported


def last_values(exported: str) -> dict[str, Any]:
    """The values last known to be in the target object, known for sure or not."""
    return decode_values(exported.removeprefix(UNKNOWN)) or {}


@attrs.frozen
class Sealed:
    """A password's keyed digest where the exported values would hold the password (see
    engine.password_values). Stored as ``{"$hmac": digest}``: an object, which no source value
    can be (the connector contract has no mappings), so a digest is never taken for a value."""

    digest: str


def json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sealed):
        return {"$hmac": value.digest}
    raise TypeError(f"cannot store a {type(value).__name__}")


def json_object_hook(value: dict[str, Any]) -> Any:
    if len(value) == 1:
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$hmac" in value:
            return Sealed(value["$hmac"])
    return value


def encode_values(values: Mapping[str, Value]) -> str:
    """JSON of attribute values in their mapping order (binary as base64).

    Equal values in the same order give equal strings, which is all the cycle's "unchanged?"
    test needs: map_object always emits attributes in the schema's order. A reordered schema
    only costs one decode-and-diff per object.
    """
    return orjson.dumps(values, default=json_default).decode()


def decode_values(text: str) -> dict[str, Value] | None:
    """The exported values, or None when they are not known (see UNKNOWN)."""
    if not text or text.startswith(UNKNOWN):
        return None
    decoded: dict[str, Value] = orjson.loads(text)
    for name, value in decoded.items():
        if isinstance(value, dict):
            decoded[name] = json_object_hook(value)
        elif isinstance(value, list):
            decoded[name] = [json_object_hook(v) if isinstance(v, dict) else v for v in value]
    return decoded
