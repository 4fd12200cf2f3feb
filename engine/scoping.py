"""Scoping filters: whether a source object is in scope of an object mapping. Pure.

A filter holds when ANY of its groups holds; a group holds when ALL its clauses hold. Every
clause but the IS NULL family is false on a missing or empty value. String comparisons are
case-sensitive, as Entra documents; on a multi-valued attribute a positive operator holds when
any value satisfies it and a negative one when no value violates it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connectors.base import Attributes, Scalar, as_list
from engine import regexes
from engine.errors import MappingError
from engine.model import Filter, FilterClause

Predicate = Callable[[Attributes], bool]


def lookup(attributes: Attributes, name: str) -> list[Scalar]:
    """Values of an attribute, found by exact name first, then ignoring case."""
    value = attributes.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in attributes.items():
            if key.lower() == lowered:
                value = candidate
                break
    return [v for v in as_list(value) if v != ""]


def _text(value: Scalar) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _number(value: Scalar | str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _truth(value: Scalar) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text)


def _compare(op: Callable[[int, int], bool], operands: Sequence[str]) -> Callable[[Scalar], bool]:
    limits = [_number(o) for o in operands]
    if not limits or any(n is None for n in limits):
        raise MappingError(f"comparison needs integer operands, got {list(operands)}")
    limit = limits[0]
    assert limit is not None

    def holds(value: Scalar) -> bool:
        number = _number(value) if not isinstance(value, bool) else None
        return number is not None and op(number, limit)

    return holds


_UNARY = {"IS NULL", "IS NOT NULL", "IS TRUE", "IS FALSE"}

#: Every operator, as Graph's filterOperators lists them: (name, arity, multi-valued rule,
#: attribute types). Names compare case-insensitively when a filter is compiled.
OPERATORS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("EQUALS", "Binary", "Any", ("Integer", "String")),
    ("NOT EQUALS", "Binary", "All", ("Integer", "String")),
    ("IS TRUE", "Unary", "Any", ("Boolean",)),
    ("IS FALSE", "Unary", "Any", ("Boolean",)),
    ("IS NULL", "Unary", "All", ("Integer", "String", "Binary", "Boolean")),
    ("IS NOT NULL", "Unary", "Any", ("Integer", "String", "Binary", "Boolean")),
    ("REGEX MATCH", "Binary", "Any", ("Integer", "String")),
    ("NOT REGEX MATCH", "Binary", "All", ("Integer", "String")),
    ("Greater_Than", "Binary", "Any", ("Integer",)),
    ("Greater_Than_OR_EQUALS", "Binary", "Any", ("Integer",)),
    ("Less_Than", "Binary", "Any", ("Integer",)),
    ("Less_Than_OR_EQUALS", "Binary", "Any", ("Integer",)),
    ("Includes", "Binary", "Any", ("String",)),
    ("Excludes", "Binary", "All", ("String",)),
    ("STARTS_WITH", "Binary", "Any", ("String",)),
    ("ENDS_WITH", "Binary", "Any", ("String",)),
    ("&", "Binary", "Any", ("Integer",)),
    ("!&", "Binary", "All", ("Integer",)),
)


def _value_test(
    operator: str, operands: Sequence[str], regex_timeout: float
) -> tuple[Callable[[Scalar], bool], bool]:
    """(test of one value, negated?) for a binary operator; negated means 'no value may match'."""
    if operator in ("EQUALS", "NOT EQUALS"):
        return (lambda v: _text(v) in operands), operator == "NOT EQUALS"
    if operator in ("REGEX MATCH", "NOT REGEX MATCH"):
        try:
            patterns = [regexes.compile_pattern(o) for o in operands]
        except regexes.error as exc:
            raise MappingError(f"invalid regular expression in scoping filter: {exc}") from None
        return (
            lambda v: any(regexes.search(p, _text(v), regex_timeout) for p in patterns),
            operator == "NOT REGEX MATCH",
        )
    if operator in ("INCLUDES", "EXCLUDES"):
        return (lambda v: any(o in _text(v) for o in operands)), operator == "EXCLUDES"
    if operator == "STARTS_WITH":
        return (lambda v: any(_text(v).startswith(o) for o in operands)), False
    if operator == "ENDS_WITH":
        return (lambda v: any(_text(v).endswith(o) for o in operands)), False
    if operator in ("&", "!&"):
        masks = [_number(o) for o in operands]
        if not masks or any(m is None for m in masks):
            raise MappingError(f"{operator} needs an integer mask, got {list(operands)}")
        mask = masks[0] or 0
        return (lambda v: (_number(v) or 0) & mask == mask), operator == "!&"
    comparisons: dict[str, Callable[[int, int], bool]] = {
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_OR_EQUALS": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_OR_EQUALS": lambda a, b: a <= b,
    }
    if operator in comparisons:
        return _compare(comparisons[operator], operands), False
    raise MappingError(f"unknown scoping operator {operator!r}")


def compile_clause(
    clause: FilterClause, regex_timeout: float = regexes.DEFAULT_TIMEOUT_SECONDS
) -> Predicate:
    operator = clause.operator_name.strip().upper()
    name = clause.source_operand_name
    if operator in _UNARY:
        if operator == "IS NULL":
            return lambda a: not lookup(a, name)
        if operator == "IS NOT NULL":
            return lambda a: bool(lookup(a, name))
        wanted = operator == "IS TRUE"
        return lambda a: any(_truth(v) is wanted for v in lookup(a, name))
    operands = list(clause.target_operand.values) if clause.target_operand else []
    if not operands:
        raise MappingError(f"scoping operator {operator} on {name} needs a value")
    test, negated = _value_test(operator, operands, regex_timeout)
    if negated:
        return lambda a: bool(values := lookup(a, name)) and not any(test(v) for v in values)
    return lambda a: any(test(v) for v in lookup(a, name))


def compile_scope(
    scope: Filter | None, regex_timeout: float = regexes.DEFAULT_TIMEOUT_SECONDS
) -> Predicate | None:
    """A predicate for the filter's groups, or None when every object is in scope.

    ``regex_timeout`` (seconds, the job's RegexTimeout) bounds each REGEX MATCH per value:
    the predicate has no Env, so the limit is bound when the filter is compiled.
    """
    if scope is None or not scope.groups:
        return None
    groups = [[compile_clause(c, regex_timeout) for c in g.clauses] for g in scope.groups]
    return lambda a: any(all(clause(a) for clause in group) for group in groups)
