"""Compile a syntax tree into a Python closure, validating every call once, up front.

Validation happens here, not at evaluation: unknown functions, wrong argument counts,
SelectUniqueValue below the top level, Switch without key/value pairs, Replace argument
combinations that select no documented form, nesting that could grow a value without bound
(``growth``). Evaluation is then a chain of closures.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from engine.errors import MappingError, RegexTimeoutError
from engine.expressions import _other, _text
from engine.expressions._bounds import COUNTED, built, evaluation
from engine.expressions.growth import check_growth
from engine.expressions.library import FUNCTIONS, FunctionSpec
from engine.expressions.syntax import (
    Attribute,
    Call,
    Compare,
    Empty,
    ExpressionSyntaxError,
    Literal,
    Node,
    depth,
    parse,
    to_text,
)
from engine.expressions.values import (
    IGNORE,
    MISSING,
    Arg,
    Env,
    EvaluationError,
    Sentinel,
    is_true,
    normal,
    single,
)
from engine.limits import MAX_EXPRESSION_DEPTH

Source = Mapping[str, Any]
Compiled = Callable[[Source, Env], Arg]


@attrs.frozen
class Expression:
    """A parsed, validated, compiled expression."""

    node: Node
    text: str
    run: Compiled = attrs.field(repr=False, eq=False)

    def evaluate(self, source: Source, env: Env) -> Arg:
        """The value for ``source``; IGNORE when IgnoreFlowIfNullOrEmpty drops the attribute."""
        return self.run(source, env)


def compile_expression(
    expression: str | Node, *, target_attribute: str | None = None
) -> Expression:
    """Parse (if needed), validate and compile; raises ExpressionSyntaxError."""
    node = parse(expression) if isinstance(expression, str) else expression
    if not isinstance(node, Attribute | Literal | Empty | Call | Compare):
        raise ExpressionSyntaxError(f"an expression must be a string, not {type(node).__name__}")
    if depth(node) > MAX_EXPRESSION_DEPTH:  # a tree built from Graph's parameters
        raise ExpressionSyntaxError(
            f"the expression nests functions deeper than {MAX_EXPRESSION_DEPTH}"
        )
    run = _compile(node, top=True, target_attribute=target_attribute)
    check_growth(node)  # after _compile: unknown functions and wrong arities are named first
    if _calls(node) > 1:
        run = evaluation(run)
    return Expression(node=node, text=to_text(node), run=run)


def _compile(node: Node, *, top: bool, target_attribute: str | None) -> Compiled:
    if isinstance(node, Attribute):
        return _attribute(node.name)
    if isinstance(node, Literal):
        constant = node.value
        return lambda source, env: constant
    if isinstance(node, Empty):
        return lambda source, env: MISSING
    if isinstance(node, Compare):
        left = _compile(node.left, top=False, target_attribute=target_attribute)
        right = _compile(node.right, top=False, target_attribute=target_attribute)
        op = node.op
        return lambda source, env: _other.compare(op, left(source, env), right(source, env))
    return _call(node, top=top, target_attribute=target_attribute)


def _attribute(name: str) -> Compiled:
    lowered = name.lower()

    def read(source: Source, env: Env) -> Arg:
        value = source.get(name)
        if value.__class__ is str:
            return value
        if value is None:
            for key, candidate in source.items():
                if key.lower() == lowered:
                    value = candidate
                    break
        return normal(value)

    return read


def _spec(node: Call) -> FunctionSpec:
    spec = FUNCTIONS.get(node.name)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(node.name, FUNCTIONS, n=1, cutoff=0.6)
    same_case = [n for n in FUNCTIONS if n.lower() == node.name.lower()]
    hint = same_case or close
    suffix = f" (did you mean {hint[0]}? names are case-sensitive)" if hint else ""
    raise ExpressionSyntaxError(f"unknown function {node.name}{suffix}")


def _check_arity(spec: FunctionSpec, node: Call) -> None:
    count = len(node.args)
    if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
        wanted = (
            f"{spec.min_args}"
            if spec.min_args == spec.max_args
            else f"{spec.min_args} or more"
            if spec.max_args is None
            else f"{spec.min_args} to {spec.max_args}"
        )
        raise ExpressionSyntaxError(
            f"{spec.name} takes {wanted} arguments, got {count}: {to_text(node)}"
        )
    for position, parameter in enumerate(spec.parameters[: len(node.args)]):
        optional_here = spec.name == "Switch" and position == 1  # Switch([x], , "k", "v")
        if parameter.required and isinstance(node.args[position], Empty) and not optional_here:
            raise ExpressionSyntaxError(
                f"{spec.name}: the required argument {parameter.name} is empty"
            )
    if spec.name == "Switch" and count % 2:
        raise ExpressionSyntaxError(
            "Switch takes source, defaultValue and key/value pairs: an even number of arguments"
        )
    if spec.name == "Replace":
        provided = [not isinstance(a, Empty) for a in node.args]
        if _text.replace_mode(provided) == "invalid":
            raise ExpressionSyntaxError(
                "Replace needs oldValue with replacementValue or template, or regexPattern "
                "with replacementValue, regexGroupName or replacementAttributeName"
            )


def _call(node: Call, *, top: bool, target_attribute: str | None) -> Compiled:
    spec = _spec(node)
    _check_arity(spec, node)
    if spec.name == "SelectUniqueValue":
        if not top:
            raise ExpressionSyntaxError(
                "SelectUniqueValue must be the whole expression, not nested in another function"
            )
        return _select_unique(node, target_attribute)
    if spec.name == "Switch" and all(isinstance(a, Literal) for a in node.args[2::2]):
        return _switch(node, target_attribute)
    if spec.name == "IIF":
        return _iif(node, target_attribute)
    implementation = spec.implementation
    if spec.name == "Replace":
        implementation = _text.replace_for([not isinstance(a, Empty) for a in node.args])
    # Constant arguments are computed once; only the others run per object. IGNORE can only
    # come out of IgnoreFlowIfNullOrEmpty, so only those arguments are converted to null.
    template: list[Arg] = []
    dynamic: list[tuple[int, Compiled]] = []
    for position, arg in enumerate(node.args):
        if isinstance(arg, Literal):
            template.append(arg.value)
        elif isinstance(arg, Empty):
            template.append(MISSING)
        else:
            template.append(None)
            compiled = _compile(arg, top=False, target_attribute=target_attribute)
            if isinstance(arg, Call) and arg.name == "IgnoreFlowIfNullOrEmpty":
                compiled = _no_ignore(compiled)
            dynamic.append((position, compiled))
    name = spec.name
    fixed = tuple(template)

    if len(dynamic) == 1 and len(fixed) == 1:
        only = dynamic[0][1]

        def run_one(source: Source, env: Env) -> Arg:
            value = only(source, env)
            try:
                result: Arg = implementation(env, value)
            except _UNEXPECTED as exc:
                raise _failure(name, exc) from None
            if result is not value and (
                result.__class__ is list or (result.__class__ is str and len(result) >= COUNTED)
            ):
                built(name, result)
            return result

        return run_one

    def run(source: Source, env: Env) -> Arg:
        values = list(fixed)
        for position, compiled in dynamic:
            values[position] = compiled(source, env)
        try:
            result: Arg = implementation(env, *values)
        except _UNEXPECTED as exc:
            raise _failure(name, exc) from None
        if (
            result.__class__ is list or (result.__class__ is str and len(result) >= COUNTED)
        ) and not _passed_through(result, values):
            built(name, result)
        return result

    return run


def _passed_through(result: Arg, values: list[Arg]) -> bool:
    """Whether ``result`` is one of the call's arguments (counted where it was built). A loop,
    not ``any()`` over a generator: this runs after every call that returns a list."""
    for value in values:  # noqa: SIM110
        if value is result:
            return True
    return False


def _calls(node: Node) -> int:
    """How many function calls ``node`` holds (itself included)."""
    if isinstance(node, Call):
        return 1 + sum(_calls(arg) for arg in node.args)
    if isinstance(node, Compare):
        return _calls(node.left) + _calls(node.right)
    return 0


_UNEXPECTED = (ValueError, TypeError, IndexError, OverflowError)


def _failure(name: str, exc: Exception) -> MappingError:
    """A library function's own error passes as is; any other names the function (a
    RegexTimeoutError stays one, so callers can tell a timeout from a bad value)."""
    if isinstance(exc, EvaluationError):
        return exc
    if isinstance(exc, RegexTimeoutError):
        return RegexTimeoutError(f"{name}: {exc}")
    return EvaluationError(f"{name}: {exc}")


def _argument(node: Node, target_attribute: str | None) -> Compiled:
    compiled = _compile(node, top=False, target_attribute=target_attribute)
    if isinstance(node, Call) and node.name == "IgnoreFlowIfNullOrEmpty":
        return _no_ignore(compiled)
    return compiled


def _switch(node: Call, target_attribute: str | None) -> Compiled:
    """Switch with constant keys: one dict lookup, and only the chosen value is computed."""
    source = _argument(node.args[0], target_attribute)
    default = _argument(node.args[1], target_attribute)
    choices: dict[str, Compiled] = {}
    for key, value in zip(node.args[2::2], node.args[3::2], strict=True):
        assert isinstance(key, Literal)
        choices.setdefault(key.value, _argument(value, target_attribute))

    def run(source_object: Source, env: Env) -> Arg:
        key = single(source(source_object, env))
        chosen = choices.get("" if key is None else key, default)
        value = chosen(source_object, env)
        return None if value is MISSING else value

    return run


def _iif(node: Call, target_attribute: str | None) -> Compiled:
    """IIF computes only the branch its condition selects."""
    condition, if_true, if_false = (_argument(a, target_attribute) for a in node.args)

    def run(source: Source, env: Env) -> Arg:
        chosen = if_true if is_true(condition(source, env)) else if_false
        value = chosen(source, env)
        return None if isinstance(value, Sentinel) else value

    return run


def _no_ignore(compiled: Compiled) -> Compiled:
    def run(source: Source, env: Env) -> Arg:
        value = compiled(source, env)
        return None if value is IGNORE else value

    return run


def _select_unique(node: Call, target_attribute: str | None) -> Compiled:
    rules = [_compile(a, top=False, target_attribute=target_attribute) for a in node.args]
    attribute = target_attribute or ""

    def run(source: Source, env: Env) -> Arg:
        tried = []
        for rule in rules:
            value = single(rule(source, env))
            if value is None or isinstance(value, Sentinel) or value == "":
                continue
            if env.is_unique(attribute, value):
                return value
            tried.append(value)
        raise EvaluationError(
            f"SelectUniqueValue: every generated value is already taken ({len(tried)} tried)"
        )

    return run
