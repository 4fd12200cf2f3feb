"""How long an expression's value can get in the worst case, known before it runs.

Evaluation stops any value at MAX_EXPRESSION_TEXT (``_bounds``); this refuses, when a schema is
saved or an expression parsed, what could only ever be stopped there: nested functions that
multiply their input (Replace with a longer replacement, a template, or a regex; Join with an
attribute as separator; the conversions). Each node's bound is computed from its arguments'
bounds with every attribute at the longest value a source may hand over; an expression whose
bound is more than MAX_EXPRESSION_GROWTH times that is refused, naming the innermost call
that passes it. Additions (Append, Join of attributes) only ever add up what the text names,
and selections (IIF, Left, Coalesce) keep the longest, so real templates stay far below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.expressions._text import replace_mode
from engine.expressions.syntax import (
    Attribute,
    Call,
    Compare,
    Empty,
    ExpressionSyntaxError,
    Literal,
    Node,
    to_text,
)
from engine.limits import MAX_EXPRESSION_GROWTH, MAX_EXPRESSION_TEXT, shown

#: Every attribute is taken to be this long.
LONGEST_INPUT = float(MAX_EXPRESSION_TEXT)
#: The worst case an expression may have (floats: a product past 1e308 is inf, still refused).
LONGEST_ALLOWED = LONGEST_INPUT * MAX_EXPRESSION_GROWTH
#: Numbers, booleans, dates, GUIDs.
SHORT = 64.0

Rule = Callable[[Call, Sequence[float]], float]


def check_growth(node: Node) -> None:
    """Raise ExpressionSyntaxError when ``node`` could grow its input more than allowed."""
    worst_length(node)


def worst_length(node: Node) -> float:
    """The longest value ``node`` can compute (a list: all its values together)."""
    if isinstance(node, Attribute):
        return LONGEST_INPUT
    if isinstance(node, Literal):
        return float(len(node.value))
    if isinstance(node, Empty):
        return 0.0
    if isinstance(node, Compare):
        worst_length(node.left)
        worst_length(node.right)
        return float(len("False"))
    lengths = [worst_length(arg) for arg in node.args]
    rule = _RULES.get(node.name, _sum)
    worst = rule(node, lengths)
    if worst > LONGEST_ALLOWED:
        raise ExpressionSyntaxError(
            f"{shown(to_text(node), 80)} can make a value {worst / LONGEST_INPUT:.3g} times "
            f"longer than its longest input, more than {MAX_EXPRESSION_GROWTH:,} "
            "(nested functions that multiply a value's length, such as Replace with a "
            "longer replacement)"
        )
    return worst


def _sum(node: Call, lengths: Sequence[float]) -> float:
    return sum(lengths)


def _longest(node: Call, lengths: Sequence[float]) -> float:
    return max(lengths, default=0.0)


def _short(node: Call, lengths: Sequence[float]) -> float:
    return SHORT


def _times(factor: float, extra: float = 0.0) -> Rule:
    """A function whose value is at most ``factor`` times its first argument (plus ``extra``)."""
    return lambda node, lengths: factor * lengths[0] + extra


def _join(node: Call, lengths: Sequence[float]) -> float:
    values = sum(lengths[1:])  # empty values are left out: at most one separator per character
    return values * (1 + lengths[0])


def _format(node: Call, lengths: Sequence[float]) -> float:
    return 6 * lengths[-1] + SHORT  # "K" writes "+00:00": six characters for one


def _matches(find: Node, within: float) -> float:
    """How often ``find`` can occur in a text ``within`` long (empty: at every position)."""
    if isinstance(find, Literal) and find.value:
        return within / len(find.value)
    return within + 1


def _replace(node: Call, lengths: Sequence[float]) -> float:
    args = [*node.args, *[Empty()] * 7][:7]
    source, _, _, _, replacement, attribute, template = [*lengths, *[0.0] * 7][:7]
    mode = replace_mode([not isinstance(a, Empty) for a in args])
    if mode == "plain":
        return source + _matches(args[1], source) * replacement
    if mode == "template":
        return template + _matches(args[1], template) * source
    if mode == "extract":
        return max(source, attribute)
    # regex and group: each match (empty ones too) is replaced by the replacement, whose
    # $1 and ${name} references each bring back at most the whole text once in all
    references = (
        float(args[4].value.count("$")) if isinstance(args[4], Literal) else replacement / 2
    )
    return source + (source + 1) * replacement + references * source


_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        (
            "BitAnd",
            "CBool",
            "CDate",
            "Count",
            "DateAdd",
            "DateDiff",
            "DateFromNum",
            "Guid",
            "InStr",
            "IsAccountEnabled",
            "IsNothing",
            "IsNull",
            "IsNullOrEmpty",
            "IsPresent",
            "IsString",
            "Not",
            "Now",
            "NumFromDate",
        ),
        _short,
    ),
    **dict.fromkeys(
        (
            "Coalesce",
            "CStr",
            "IgnoreFlowIfNullOrEmpty",
            "IIF",
            "Item",
            "Left",
            "Mid",
            "Redact",
            "RemoveDuplicates",
            "SelectUniqueValue",
            "SingleAppRoleAssignment",
            "Split",
            "StripSpaces",
            "Switch",
            "Word",
        ),
        _longest,
    ),
    # case and diacritics write at most 3 characters for one ("ﬃ" -> "FFI"), but what they
    # write never expands again: nested in each other they at most triple a value, which
    # evaluation bounds; counted as keeping the length, so ToLower(ToUpper(...)) stays free
    **dict.fromkeys(("NormalizeDiacritics", "PCase", "ToLower", "ToUpper"), _longest),
    "Append": _sum,
    "Prepend": _sum,
    "Join": _join,
    "Replace": _replace,
    "ConvertToBase64": _times(16 / 3, 4),  # UTF-16: at most 4 bytes a character
    "ConvertToUTF8Hex": _times(8),  # UTF-8: at most 4 bytes a character, 2 digits each
    "AppRoleAssignmentsComplex": _times(128, 128),  # JSON escapes, written twice, per value
    "FormatDateTime": _format,
    "RandomString": lambda node, lengths: 256.0,
}
