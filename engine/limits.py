"""The bounds the engine puts on what callers give it, in one place (README "Limits").

Each bound turns input that would hang a cycle, overflow later or exhaust the stack into a
clear error at the door. The helpers here are iterative on purpose: they run before anything
recursive (cattrs, lark's transformer, the expression compiler) sees the input.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

#: Time one regular expression call (a Replace, a REGEX MATCH clause) may take per value.
DEFAULT_REGEX_TIMEOUT = timedelta(seconds=1)
#: The longest RegexTimeout a job may set: a cycle of many objects must still end.
MAX_REGEX_TIMEOUT = timedelta(minutes=1)
#: The longest duration anywhere (schedules, backoff, retention): ten years; datetimes plus
#: this never overflow, and nothing in a directory synchronization waits longer.
MAX_DURATION = timedelta(days=3650)
#: An ISO-8601 duration is short; a longer text is a mistake (or a 5000-digit attack).
MAX_DURATION_TEXT = 64
#: Function calls and parentheses nested in one expression.
MAX_EXPRESSION_DEPTH = 64
#: The longest text an expression function may build: the longest value a source may hand
#: over (``engine.directory_values.MAX_VALUE_LENGTH``), which a mapped value must fit anyway.
MAX_EXPRESSION_TEXT = 1 << 20
#: The characters of all values of a list an expression function builds (a 1,000,000-member
#: group of 64-character names), so a function applied to each value stays bounded too.
MAX_EXPRESSION_LIST = 1 << 26
#: What one evaluation of an expression may build in all (bytes of memory of every text and
#: list its functions return): many calls side by side, each within the limits above, stay
#: bounded.
MAX_EXPRESSION_BUILT = 1 << 27
#: Seconds one evaluation of an expression may run once it builds large values: PCase of a
#: 1 MiB text takes ~0.4 s, so thirty side by side in a Coalesce (339 characters) held one
#: object for 13 s while building a tenth of MAX_EXPRESSION_BUILT.
MAX_EXPRESSION_SECONDS = 5.0
#: How many times longer than its longest input an expression may make its value in the worst
#: case (nested Replace calls multiply); a schema that could grow more is refused when saved,
#: before a cycle would stop its value at MAX_EXPRESSION_TEXT.
MAX_EXPRESSION_GROWTH = 1 << 30
#: Nesting of a JSON body (objects and lists). A schema's own structure takes 11 levels and
#: each function of an attributeMappingSource parameter tree 3 more, so this admits a
#: parameter tree as deep as the deepest expression text (11 + 3 x 64 = 203).
MAX_JSON_DEPTH = 204
#: The largest whole number a setting takes (32-bit signed, as Graph's Int32 settings).
MAX_WHOLE_NUMBER = 2**31 - 1
#: Integers in Graph JSON (priority, matchingPriority) fit Graph's Int64.
MAX_JSON_INTEGER = 2**63 - 1
#: A job setting's value (name/value strings): ample for a list of backoff durations.
MAX_SETTING_TEXT = 1024


def shown(value: object, limit: int = 40) -> str:
    """``repr`` of a caller's value for an error message, cut so a huge value stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of decoded JSON (a scalar is 0); stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def text_depth(text: str, opening: str = "([{", closing: str = ")]}") -> int:
    """Deepest bracket nesting of JSON or expression text, outside double-quoted strings."""
    depth = deepest = 0
    quoted = escaped = False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in opening:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in closing:
            depth -= 1
    return deepest


#: Secrets an application may keep: the built-in templates read about twenty. Every message
#: that may quote one is masked against all of them, on each error of a cycle: 60,000 made
#: each masking take seconds (and held ``/healthz`` 1.6 s while validateCredentials masked).
MAX_SECRETS = 1000
#: Characters of an application's secrets in all (keys and values): a PEM chain is a few kB;
#: masking writes each secret in a dozen forms, so this bounds its work on each message.
MAX_SECRETS_SIZE = 1 << 18
