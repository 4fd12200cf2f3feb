"""The size of what expression functions build, checked before they build it.

Nested Replace calls multiply a value's length at each level: four of them, 507 characters of
expression, made a 100 MB value. Every function whose value can be longer than its inputs
asks here first, with the size it will produce (or, for regular expressions, as it goes), so
no text passes MAX_EXPRESSION_TEXT and no list MAX_EXPRESSION_LIST characters; and what one
evaluation builds in all (many calls side by side, each within those) is counted, in bytes of
memory, against MAX_EXPRESSION_BUILT. A value that would be longer is an EvaluationError: in
a cycle that object is escrowed with this message.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from engine import regexes
from engine.expressions.values import Arg, Env, EvaluationError
from engine.limits import (
    MAX_EXPRESSION_BUILT,
    MAX_EXPRESSION_LIST,
    MAX_EXPRESSION_SECONDS,
    MAX_EXPRESSION_TEXT,
)

#: Bytes built so far by the evaluation under way, and when it built its first large value
#: (None outside one: a function called on its own, or the only call of its expression, is
#: bounded by its own limits).
_SPENT: ContextVar[tuple[int, float] | None] = ContextVar("expression_built", default=None)
#: Texts shorter than this are not counted: 10,000 characters of expression hold at most a few
#: thousand calls, so together they stay small.
COUNTED = 4096


class ValueTooLong(EvaluationError):
    """A function would build a value longer than an expression may (README "Limits")."""


def check_text(function: str, size: int) -> None:
    """Refuse before building a text of ``size`` characters when that is too long."""
    if size > MAX_EXPRESSION_TEXT:
        raise ValueTooLong(
            f"{function}: the value would be {size:,} characters, more than the "
            f"{MAX_EXPRESSION_TEXT:,} an expression may build"
        )


def bounded_text(function: str, text: str) -> str:
    """``text`` when short enough: for functions whose output is at most a small fixed
    multiple of their input (case, diacritics, date formats), so building it cost little."""
    check_text(function, len(text))
    return text


def bounded_list(function: str, values: Iterable[object]) -> list[str]:
    """The texts among ``values``, stopped as soon as together they grow too long (each is
    computed only when the ones before it fit)."""
    out: list[str] = []
    total = 0
    for value in values:
        if isinstance(value, str):
            total += len(value)
            if total > MAX_EXPRESSION_LIST:
                raise ValueTooLong(
                    f"{function}: the values would be more than {MAX_EXPRESSION_LIST:,} "
                    "characters together, more than an expression may build"
                )
            out.append(value)
    return out


def metered(
    function: str, text: str, piece: Callable[[regexes.Match], str]
) -> Callable[[regexes.Match], str]:
    """A regex substitution callback that counts the length of the result as the matches are
    replaced, and stops the substitution once it would be too long."""
    size = len(text)

    def replace(match: regexes.Match) -> str:
        nonlocal size
        new = piece(match)
        size += len(new) - (match.end() - match.start())
        check_text(function, size)
        return new

    return replace


def evaluation(
    run: Callable[[Mapping[str, Any], Env], Arg],
) -> Callable[[Mapping[str, Any], Env], Arg]:
    """``run`` counting what it builds from zero each time it is called (for expressions of
    two calls or more: one call alone builds one value, which its own limits bound)."""
    spent = _SPENT

    def counted(source: Mapping[str, Any], env: Env) -> Arg:
        outer = spent.get()  # an expression evaluated inside another's call
        spent.set((0, 0.0))
        try:
            return run(source, env)
        finally:
            spent.set(outer)

    return counted


def built(function: str, value: Arg) -> None:
    """Count a text or list a function returned toward what this evaluation built (callers
    pass lists and texts of at least COUNTED characters, not values passed through), by the
    memory it takes: a list's item costs ~57 bytes whatever its length (40 Splits of a 1 MiB
    text of 2-character items, side by side in a Coalesce, took 1 GiB while counted as 42 Mi
    characters), and a character outside Latin-1 two or four bytes."""
    state = _SPENT.get()
    if state is None:
        return
    spent, started = state
    now = time.monotonic()
    if not spent:  # the first large value: the clock starts (small values cost little)
        started = now
    elif now - started > MAX_EXPRESSION_SECONDS:
        raise ValueTooLong(
            f"{function}: this expression has run for more than {MAX_EXPRESSION_SECONDS:g} s "
            "building large values, longer than an expression may"
        )
    if isinstance(value, list):
        spent += sys.getsizeof(value) + sum(map(sys.getsizeof, value))
    elif isinstance(value, str):
        spent += sys.getsizeof(value)
    _SPENT.set((spent, started))
    if spent > MAX_EXPRESSION_BUILT:
        raise ValueTooLong(
            f"{function}: this expression would build more than {MAX_EXPRESSION_BUILT:,} "
            "bytes of values in all, more than an expression may build"
        )
