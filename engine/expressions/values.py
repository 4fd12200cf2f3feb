"""What expressions compute with: None (null), text, or a list of texts (multi-valued).

Booleans travel as the texts "True"/"False" and numbers as their decimal text, as in Entra.
Two sentinels: MISSING marks an argument left empty (``Replace([x], , "a")``) and IGNORE is
IgnoreFlowIfNullOrEmpty's verdict that the attribute leaves the flow.
"""

from __future__ import annotations

import enum
import random as random_module
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeAlias

import attrs

from engine.errors import MappingError
from engine.limits import DEFAULT_REGEX_TIMEOUT

#: Seconds a regular expression may run per value when the Env does not say otherwise.
DEFAULT_REGEX_SECONDS = DEFAULT_REGEX_TIMEOUT.total_seconds()


class Sentinel(enum.Enum):
    MISSING = "missing"
    IGNORE = "ignore"


MISSING = Sentinel.MISSING
IGNORE = Sentinel.IGNORE

Value: TypeAlias = str | list[str] | None
Arg: TypeAlias = str | list[str] | Sentinel | None


class EvaluationError(MappingError):
    """An expression that parsed but cannot be computed for this object (escrows it)."""


def _never_unique(attribute: str, value: str) -> bool:
    return True


@attrs.frozen
class Env:
    """What evaluation may consult beyond the object: time, randomness, the target."""

    now: Callable[[], datetime]
    random: random_module.Random = attrs.field(factory=random_module.Random)
    #: (target attribute, value) -> True when no target object holds it (SelectUniqueValue)
    is_unique: Callable[[str, str], bool] = _never_unique
    #: seconds one regular expression call may take (the job's RegexTimeout), so a
    #: backtracking pattern escrows one object instead of hanging the cycle
    regex_timeout: float = DEFAULT_REGEX_SECONDS

    def guid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))


def text(value: object) -> str:
    """One scalar as expression text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def normal(value: object) -> Value:
    """A directory value as an expression value."""
    if value is None:
        return None
    if isinstance(value, list):
        return [text(v) for v in value]
    return text(value)


def boolean(flag: bool) -> str:
    return "True" if flag else "False"


def is_true(value: Arg) -> bool:
    """Truth of a condition: "True" (any case) or a non-zero number."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, Sentinel):
        return False
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    try:
        return float(lowered) != 0
    except ValueError:
        return False


def integer(value: Arg, what: str) -> int:
    """A whole-number argument; a clear error otherwise."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, Sentinel):
        raise EvaluationError(f"{what} needs a number, got nothing")
    try:
        return int(value.strip())
    except ValueError:
        try:
            as_float = float(value)
        except ValueError:
            raise EvaluationError(f"{what} needs a number, got {value!r}") from None
        if as_float.is_integer():
            return int(as_float)
        raise EvaluationError(f"{what} needs a whole number, got {value!r}") from None


def single(value: Arg) -> str | None:
    """The one text of a value (the first of a list), or None."""
    if value.__class__ is str:
        return value
    if isinstance(value, list):
        return value[0] if value else None
    if isinstance(value, Sentinel):
        return None
    return value


def given(value: Arg) -> bool:
    return value is not MISSING
