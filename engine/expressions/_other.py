"""Logic, conversion, multi-valued, date and generator functions of the library. Pure."""

from __future__ import annotations

import json
import string
from datetime import datetime
from typing import Any

from engine.expressions import dates
from engine.expressions._bounds import bounded_list, bounded_text, check_text
from engine.expressions.values import (
    IGNORE,
    MISSING,
    Arg,
    Env,
    EvaluationError,
    Sentinel,
    Value,
    boolean,
    given,
    integer,
    is_true,
    single,
)
from engine.limits import MAX_EXPRESSION_TEXT


def _empty(value: Arg) -> bool:
    return value is None or value in ("", []) or isinstance(value, Sentinel)


# ------------------------------------------------------------------------------- logic
def iif(env: Env, condition: Arg, if_true: Arg, if_false: Arg) -> Value:
    chosen = if_true if is_true(condition) else if_false
    return None if isinstance(chosen, Sentinel) else chosen


def switch(env: Env, source: Arg, default: Arg, *pairs: Arg) -> Value:
    """First key equal to the source (case-sensitive) gives its value; null matches ""."""
    key = single(source)
    key = "" if key is None else key
    for i in range(0, len(pairs) - 1, 2):
        candidate = single(pairs[i])
        if (candidate or "") == key:
            value = pairs[i + 1]
            return None if isinstance(value, Sentinel) else value
    return None if isinstance(default, Sentinel) else default


def coalesce(env: Env, *sources: Arg) -> Value:
    """The first value that is not null; the optional trailing default is just the last one."""
    for value in sources:
        if value is not None and not isinstance(value, Sentinel) and value != []:
            return value
    return None


def compare(op: str, left: Arg, right: Arg) -> str:
    """IIF conditions: numbers compare as numbers, everything else as case-sensitive text."""
    a, b = single(left) or "", single(right) or ""
    try:
        return boolean(_ordered(op, float(a), float(b)))
    except ValueError:
        return boolean(_ordered(op, a, b))


def _ordered(op: str, x: Any, y: Any) -> bool:
    if op == "=":
        return bool(x == y)
    if op == "<>":
        return bool(x != y)
    if op == ">":
        return bool(x > y)
    if op == ">=":
        return bool(x >= y)
    if op == "<":
        return bool(x < y)
    return bool(x <= y)


def cbool(env: Env, value: Arg) -> Value:
    return boolean(is_true(value))


def not_(env: Env, value: Arg) -> Value:
    """ "True" becomes "False"; anything else becomes "True" (Entra's wording)."""
    text = single(value)
    return boolean(not (text is not None and text.strip().lower() == "true"))


def is_null(env: Env, value: Arg) -> Value:
    return boolean(value is None or isinstance(value, Sentinel))


def is_null_or_empty(env: Env, value: Arg) -> Value:
    return boolean(_empty(value))


def is_present(env: Env, value: Arg) -> Value:
    return boolean(not _empty(value))


def is_string(env: Env, value: Arg) -> Value:
    return boolean(isinstance(value, str))


def ignore_flow_if_null_or_empty(env: Env, value: Arg) -> Value | Sentinel:
    return IGNORE if _empty(value) else value


def redact(env: Env, value: Arg) -> Value:
    """The value flows; syncjob never logs values, so nothing else is needed."""
    return None if isinstance(value, Sentinel) else value


# ------------------------------------------------------------------------- conversion
def cstr(env: Env, value: Arg) -> Value:
    return None if isinstance(value, Sentinel) else value


def bit_and(env: Env, first: Arg, second: Arg) -> Value:
    return str(integer(first, "BitAnd's value1") & integer(second, "BitAnd's value2"))


ACCOUNTDISABLE = 2  # the bit of Active Directory's userAccountControl that disables an account


def is_account_enabled(env: Env, flags: Arg) -> Value:
    """Whether an Active Directory account is enabled: its userAccountControl without the
    ACCOUNTDISABLE bit (544 -> "True", 546 -> "False"). What Entra computes accountEnabled
    from for AD users, so that an AD source's ``active`` needs no BitAnd arithmetic; null
    when the attribute was not read (nothing flows rather than a guess)."""
    if single(flags) in (None, ""):
        return None
    return boolean(not integer(flags, "IsAccountEnabled's userAccountControl") & ACCOUNTDISABLE)


# ------------------------------------------------------------------------ multi-valued
def _values(value: Arg) -> list[str]:
    if isinstance(value, list):
        return value
    if value is None or isinstance(value, Sentinel):
        return []
    return [value]


def join(env: Env, separator: Arg, *sources: Arg) -> Value:
    """Join every value of every source; null and empty values are left out."""
    parts: list[str] = []
    for source in sources:
        if source.__class__ is str:
            if source:
                parts.append(source)
        else:
            parts.extend(v for v in _values(source) if v != "")
    glue = single(separator) or ""
    # Only the separators can make the value longer than what already exists (the parts): so
    # they are checked before it is built, the value after (cheaper than summing the parts'
    # lengths first: Join runs for most objects of a cycle).
    if len(glue) * len(parts) > MAX_EXPRESSION_TEXT:
        check_text("Join", sum(map(len, parts)) + len(glue) * (len(parts) - 1))
    joined = glue.join(parts)
    if len(joined) > MAX_EXPRESSION_TEXT:
        check_text("Join", len(joined))
    return joined


def count(env: Env, value: Arg) -> Value:
    return str(len(_values(value)))


def item(env: Env, value: Arg, index: Arg) -> Value:
    values = _values(value)
    n = integer(index, "Item's index")
    return values[n - 1] if 1 <= n <= len(values) else None


def remove_duplicates(env: Env, value: Arg) -> Value:
    if value is None or isinstance(value, Sentinel):
        return None
    return list(dict.fromkeys(_values(value)))


# ------------------------------------------------------------------------------ dates
def _moment(value: Arg, what: str) -> datetime:
    text = single(value)
    if text is None:
        raise EvaluationError(f"{what} needs a date, got nothing")
    return dates.parse_date(text)


def cdate(env: Env, value: Arg) -> Value:
    text = single(value)
    return None if text is None else dates.DateText(dates.parse_date(text))


def now(env: Env) -> Value:
    return dates.DateText(env.now())


def date_add(env: Env, interval: Arg, amount: Arg, moment: Arg) -> Value:
    start = _moment(moment, "DateAdd")
    unit = single(interval) or ""
    return dates.DateText(dates.add(start, unit, integer(amount, "DateAdd's value")))


def date_diff(env: Env, interval: Arg, first: Arg, second: Arg) -> Value:
    a, b = _moment(first, "DateDiff"), _moment(second, "DateDiff")
    return str(dates.difference(single(interval) or "", a, b))


def date_from_num(env: Env, value: Arg) -> Value:
    if single(value) is None:
        return None
    return dates.DateText(dates.from_filetime(integer(value, "DateFromNum")))


def num_from_date(env: Env, value: Arg) -> Value:
    text = single(value)
    return None if text is None else str(dates.to_filetime(dates.parse_date(text)))


def format_date_time(env: Env, source: Arg, *rest: Arg) -> Value:
    """FormatDateTime(source, [dateTimeStyles,] inputFormat, outputFormat)."""
    text = single(source)
    if text is None:
        return None
    input_format, output_format = (rest[1], rest[2]) if len(rest) == 3 else (rest[0], rest[1])
    moment = dates.parse_with_format(text, single(input_format) or "")
    return bounded_text("FormatDateTime", dates.format_with(moment, single(output_format) or ""))


# ------------------------------------------------------------------------- generators
def guid(env: Env) -> Value:
    return env.guid()


SPECIALS = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"


def random_string(
    env: Env,
    length: Arg,
    numbers: Arg,
    specials: Arg,
    capitals: Arg,
    lowers: Arg,
    avoid: Arg = MISSING,
) -> Value:
    size = integer(length, "RandomString's Length")
    counts = [
        integer(v, f"RandomString's {n}")
        for v, n in (
            (numbers, "MinimumNumbers"),
            (specials, "MinimumSpecialCharacters"),
            (capitals, "MinimumCapital"),
            (lowers, "MinimumLowerCase"),
        )
    ]
    if not 0 < size <= 256:
        raise EvaluationError(f"RandomString's Length must be 1 to 256, got {size}")
    if min(counts) < 0 or sum(counts) > size:
        raise EvaluationError("RandomString's minimums must be >= 0 and fit in its Length")
    excluded = set(single(avoid) or "") if given(avoid) else set()
    pools = [
        [c for c in pool if c not in excluded]
        for pool in (string.digits, SPECIALS, string.ascii_uppercase, string.ascii_lowercase)
    ]
    if any(n and not pool for n, pool in zip(counts, pools, strict=True)):
        raise EvaluationError("RandomString's CharactersToAvoid leaves a required class empty")
    chars = [
        env.random.choice(pool) for n, pool in zip(counts, pools, strict=True) for _ in range(n)
    ]
    everything = [c for pool in pools for c in pool]
    chars += [env.random.choice(everything) for _ in range(size - len(chars))]
    env.random.shuffle(chars)
    return "".join(chars)


# -------------------------------------------------------------------------- app roles
def _role(value: str) -> dict[str, object]:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        name = parsed.get("displayName") or parsed.get("display") or parsed.get("value")
        return {
            "primary": False,
            "type": "WindowsAzureActiveDirectoryRole",
            "display": name,
            "value": parsed.get("value", name),
        }
    return {
        "primary": False,
        "type": "WindowsAzureActiveDirectoryRole",
        "display": value,
        "value": value,
    }


def app_role_assignments_complex(env: Env, value: Arg) -> Value:
    """SCIM ``roles`` values, one JSON object each, from role names or role JSON objects."""
    values = _values(value)
    if value is None or isinstance(value, Sentinel):
        raise EvaluationError(
            "AppRoleAssignmentsComplex needs the source's app role assignments "
            "([appRoleAssignments]); this object has none"
        )
    return bounded_list(
        "AppRoleAssignmentsComplex",
        (json.dumps(_role(v), separators=(",", ":")) for v in values),
    )


def single_app_role_assignment(env: Env, value: Arg) -> Value:
    values = _values(value)
    if not values:
        return None
    role = _role(values[0])
    return str(role["display"]) if role["display"] is not None else None
