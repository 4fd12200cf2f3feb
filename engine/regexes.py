"""Regular expressions from schemas (Replace, REGEX MATCH), run under a time limit.

A pattern such as ``(a|a)+$`` backtracks exponentially; without a limit one object's value
would hang the cycle. The ``regex`` package stops a match at ``timeout=``; it also reads .NET's
``(?<name>...)`` groups natively, so Graph's syntax works as written.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import regex

from engine.errors import RegexTimeoutError
from engine.limits import DEFAULT_REGEX_TIMEOUT

Pattern = regex.Pattern[str]
Match = regex.Match[str]
error = regex.error

DEFAULT_TIMEOUT_SECONDS = DEFAULT_REGEX_TIMEOUT.total_seconds()


@lru_cache(maxsize=1024)  # patterns come from schemas: few, and reused for every object
def compile_pattern(pattern: str) -> Pattern:
    """Compile a pattern; raises ``regex.error`` (callers name where it came from)."""
    return regex.compile(pattern)


def _timed_out(pattern: Pattern, timeout: float) -> RegexTimeoutError:
    return RegexTimeoutError(
        f"the regular expression {pattern.pattern!r} ran longer than the "
        f"{timeout:g}s limit (RegexTimeout)"
    )


def search(pattern: Pattern, text: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Match | None:
    """``pattern.search`` that raises RegexTimeoutError after ``timeout`` seconds."""
    try:
        return pattern.search(text, timeout=timeout)
    except TimeoutError:
        raise _timed_out(pattern, timeout) from None


def sub(
    pattern: Pattern,
    replacement: Callable[[Match], str],
    text: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> str:
    """``pattern.sub`` that raises RegexTimeoutError after ``timeout`` seconds."""
    try:
        return pattern.sub(replacement, text, timeout=timeout)
    except TimeoutError:
        raise _timed_out(pattern, timeout) from None
