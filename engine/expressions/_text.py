"""The string functions of the library. Pure; each takes evaluated arguments."""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import wraps

from engine import regexes
from engine.expressions._bounds import bounded_list, bounded_text, check_text, metered
from engine.expressions.values import (
    MISSING,
    Arg,
    Env,
    EvaluationError,
    Value,
    given,
    integer,
    single,
)
from engine.limits import MAX_EXPRESSION_TEXT

StringFunction = Callable[..., Value]


def elementwise(name: str) -> Callable[[StringFunction], StringFunction]:
    """Apply a function of one text to each value of a multi-valued first argument (``name``
    is the function's, for the message when the values together grow too long)."""

    def decorate(function: StringFunction) -> StringFunction:
        @wraps(function)
        def apply(env: Env, source: Arg, *rest: Arg) -> Value:
            if source.__class__ is list:
                return bounded_list(name, (function(env, value, *rest) for value in source))
            return function(env, source, *rest)

        return apply

    return decorate


@elementwise("Append")
def append(env: Env, source: Arg, suffix: Arg) -> Value:
    if source is None:
        return None
    end = single(suffix) or ""
    check_text("Append", len(str(source)) + len(end))
    return f"{source}{end}"


@elementwise("Prepend")
def prepend(env: Env, prefix: Arg, source: Arg) -> Value:
    if source is None:
        return None
    start, text = single(prefix) or "", str(single(source))
    check_text("Prepend", len(start) + len(text))
    return f"{start}{text}"


@elementwise("ConvertToBase64")
def convert_to_base64(env: Env, source: Arg) -> Value:
    if source is None:
        return None
    data = str(source).encode("utf-16-le")
    check_text("ConvertToBase64", (len(data) + 2) // 3 * 4)
    return base64.b64encode(data).decode("ascii")


@elementwise("ConvertToUTF8Hex")
def convert_to_utf8_hex(env: Env, source: Arg) -> Value:
    if source is None:
        return None
    data = str(source).encode("utf-8")
    check_text("ConvertToUTF8Hex", 2 * len(data))
    return data.hex().upper()


@elementwise("Left")
def left(env: Env, source: Arg, count: Arg) -> Value:
    if source is None:
        return ""
    n = integer(count, "Left's NumChars")
    text = str(source)
    if n < 0:
        return text
    return text[:n]


@elementwise("Mid")
def mid(env: Env, source: Arg, start: Arg, length: Arg) -> Value:
    if source is None:
        return None
    first = integer(start, "Mid's start")
    size = integer(length, "Mid's length")
    if first < 1 or size < 0:
        raise EvaluationError(f"Mid needs start >= 1 and length >= 0, got {first} and {size}")
    return str(source)[first - 1 : first - 1 + size]


# ----------------------------------------------------------------------- diacritics
_SPECIAL = {
    "æ": "ae",
    "Æ": "AE",
    "ǣ": "ae",
    "Ǣ": "AE",
    "ø": "oe",
    "Ø": "OE",
    "œ": "oe",
    "Œ": "OE",
    "ß": "ss",
    "ł": "l",
    "Ł": "L",
    "\u0131": "i",
    "đ": "d",
    "Đ": "D",
    "ħ": "h",
    "Ħ": "H",
    "þ": "th",
    "Þ": "TH",
    "ð": "d",
    "Ð": "D",
}
_SPECIAL_TABLE = str.maketrans(_SPECIAL)


@elementwise("NormalizeDiacritics")
def normalize_diacritics(env: Env, source: Arg) -> Value:
    if source is None:
        return None
    text = str(source)
    if text.isascii():
        return text
    if len(text) > _CACHED:  # a cache of 8,192 long texts would hold gigabytes
        return bounded_text("NormalizeDiacritics", _normalized(text))
    return _without_diacritics(text)  # at most 3 x 256 characters


#: The longest text whose normalization is cached (names, not documents).
_CACHED = 256


@functools.lru_cache(maxsize=8192)  # names repeat across a directory; the work is pure
def _without_diacritics(text: str) -> str:
    return _normalized(text)


def _normalized(text: str) -> str:
    text = text.translate(_SPECIAL_TABLE)
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped)


# ---------------------------------------------------------------------------- case
_SEPARATOR_CATEGORIES = {
    "Zs",
    "Zl",
    "Zp",
    "Cc",
    "Cf",
    "Pc",
    "Pd",
    "Ps",
    "Pe",
    "Pi",
    "Pf",
    "Po",
    "Sm",
    "Sc",
    "Sk",
    "So",
}


@elementwise("PCase")
def pcase(env: Env, source: Arg, separators: Arg = None) -> Value:
    """Title case: first letter of each word upper, the rest lower (also for ALL-CAPS input)."""
    if source is None:
        return None
    custom = single(separators) if given(separators) and separators is not None else None

    def separates(ch: str) -> bool:
        if custom is not None:
            return ch in custom
        return unicodedata.category(ch) in _SEPARATOR_CATEGORIES

    out: list[str] = []
    start = True
    for ch in str(source):
        if separates(ch):
            out.append(ch)
            start = True
        else:
            out.append(ch.upper() if start else ch.lower())
            start = False
    return bounded_text("PCase", "".join(out))


_CULTURE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_culture(culture: str) -> None:
    if not _CULTURE.match(culture):
        raise EvaluationError(f"{culture!r} is not an RFC 4646 culture name such as en-US")


def _turkic(culture: str | None) -> bool:
    return bool(culture) and str(culture).lower().split("-")[0] in ("tr", "az")


def _case(source: Arg, culture: Arg, upper: bool) -> Value:
    """ToLower/ToUpper: invariant culture by default; Turkic cultures keep the dotted I."""
    if source is None:
        return None
    text = str(source)
    if culture is not None:
        name = single(culture) if given(culture) else None
        if name:
            check_culture(name)
        if _turkic(name):
            text = (
                text.replace("i", "\u0130")
                if upper  # dotted capital I
                else text.replace("I", "\u0131").replace("\u0130", "i")
            )  # dotless i
    changed = text.upper() if upper else text.lower()
    if len(changed) > MAX_EXPRESSION_TEXT:  # inline: this runs for most values of a cycle
        bounded_text("ToUpper" if upper else "ToLower", changed)
    return changed


@elementwise("ToLower")
def to_lower(env: Env, source: Arg, culture: Arg = None) -> Value:
    return _case(source, culture, upper=False)


@elementwise("ToUpper")
def to_upper(env: Env, source: Arg, culture: Arg = None) -> Value:
    return _case(source, culture, upper=True)


@elementwise("StripSpaces")
def strip_spaces(env: Env, source: Arg) -> Value:
    if source is None:
        return None
    return str(source).replace(" ", "")


def split(env: Env, source: Arg, delimiter: Arg) -> Value:
    """Split into values; surrounding white space of each value is trimmed (Entra's example)."""
    text = single(source)
    if text is None:
        return None
    sep = single(delimiter)
    if not sep:
        raise EvaluationError("Split needs a non-empty delimiter")
    return [part.strip() for part in text.split(sep)]


def word(env: Env, source: Arg, number: Arg, delimiters: Arg) -> Value:
    text = single(source)
    n = integer(number, "Word's WordNumber")
    if text is None or n < 1:
        return ""
    chars = single(delimiters) or ""
    words = re.split("[" + re.escape(chars) + "]", text) if chars else [text]
    words = [w for w in words if w]
    return words[n - 1] if n <= len(words) else ""


def instr(env: Env, haystack: Arg, needle: Arg, start: Arg = None, compare: Arg = None) -> Value:
    text, wanted = single(haystack), single(needle)
    if text is None or wanted is None:
        return None
    first = integer(start, "InStr's start") if given(start) and start is not None else 1
    if first < 1:
        raise EvaluationError(f"InStr's start must be 1 or more, got {first}")
    mode = (single(compare) or "vbBinaryCompare") if given(compare) else "vbBinaryCompare"
    if mode.lower() not in ("vbbinarycompare", "vbtextcompare", "0", "1"):
        raise EvaluationError(
            f"InStr's compareType must be vbBinaryCompare or vbTextCompare, got {mode!r}"
        )
    if mode.lower() in ("vbtextcompare", "1"):
        text, wanted = text.lower(), wanted.lower()
    return str(text.find(wanted, first - 1) + 1)


# --------------------------------------------------------------------------- Replace
_DOTNET_REFERENCE = re.compile(r"\$\{(\w+)\}|\$(\d+)")


def dotnet_regex(pattern: str) -> regexes.Pattern:
    """A .NET pattern, compiled as written: ``regex`` reads ``(?<name>...)`` groups natively."""
    try:
        return regexes.compile_pattern(pattern)
    except regexes.error as exc:
        raise EvaluationError(f"invalid regular expression {pattern!r}: {exc}") from None


def _dotnet_replacement(template: str) -> Callable[[regexes.Match], str]:
    def expand(match: regexes.Match) -> str:
        size = len(template)  # "$0" a thousand times: counted before it is joined

        def group(ref: re.Match[str]) -> str:
            nonlocal size
            key = ref.group(1) or int(ref.group(2))
            try:
                value = match.group(key) or ""
            except (IndexError, error_type):
                return ref.group(0)
            size += len(value)
            check_text("Replace", size)
            return value

        return _DOTNET_REFERENCE.sub(group, template)

    return expand


error_type = regexes.error


def replace_mode(provided: Sequence[bool]) -> str:
    """Which of Replace's documented forms the given argument positions select."""
    _, old, regex, group, replacement, attribute, template = [*provided, *[False] * 7][:7]
    if old and not regex:
        if template:
            return "template"
        return "plain" if replacement else "invalid"
    if regex:
        if group and attribute:
            return "extract"
        if group and replacement:
            return "group"
        if replacement:
            return "regex"
    return "invalid"


def replace_for(provided: Sequence[bool]) -> Callable[..., Value]:
    """Replace with its form chosen once, when the expression is compiled."""
    mode = replace_mode(provided)
    if mode == "plain":

        def plain(env: Env, source: Arg, old: Arg, *rest: Arg) -> Value:
            if source.__class__ is str:
                return _replaced(source, single(old) or "", single(rest[2]) or "")
            return replace(env, source, old, *rest)

        return plain
    return replace


def replace(env: Env, *args: Arg) -> Value:
    padded: list[Arg] = [*args, *[MISSING] * 7][:7]
    source, old, regex, group, replacement, attribute, template = padded
    mode = replace_mode([given(a) for a in padded])
    if mode == "invalid":
        raise EvaluationError(
            "Replace needs oldValue with replacementValue or template, or "
            "regexPattern with replacementValue or regexGroupName"
        )
    if isinstance(source, list):
        return bounded_list("Replace", (replace(env, value, *args[1:]) for value in source))
    text = single(source)
    if mode == "template":
        return None if text is None else _replaced(single(template) or "", single(old) or "", text)
    if mode == "plain":
        if text is None:
            return None
        return _replaced(text, single(old) or "", single(replacement) or "")
    pattern = dotnet_regex(single(regex) or "")
    if mode == "extract":
        if text:
            return text
        other = single(attribute)
        if not other:
            return None
        match = regexes.search(pattern, other, env.regex_timeout)
        return match.group(single(group) or 0) if match else None
    if text is None:
        return None
    if mode == "group":
        name = single(group) or ""
        new = single(replacement) or ""

        def swap(match: regexes.Match) -> str:
            whole, start = match.group(0), match.start()
            try:
                a, b = match.span(name)
            except (IndexError, error_type):
                raise EvaluationError(f"the regex has no group named {name!r}") from None
            if a < 0:
                return whole
            return whole[: a - start] + new + whole[b - start :]

        return regexes.sub(pattern, metered("Replace", text, swap), text, env.regex_timeout)
    expand = _dotnet_replacement(single(replacement) or "")
    return regexes.sub(pattern, metered("Replace", text, expand), text, env.regex_timeout)


def _replaced(text: str, old: str, new: str) -> str:
    """``text.replace(old, new)``, refused before it is built when it would be too long (an
    empty ``old`` inserts ``new`` at every position: one more than the text's length)."""
    if len(new) > len(old):
        check_text("Replace", len(text) + text.count(old) * (len(new) - len(old)))
    return text.replace(old, new)
