"""The expression language as Graph shows it: attributeMappingSource trees, parseExpression,
the functions list and the filter operators list."""

from __future__ import annotations

import random as random_module
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from engine.clock import Clock, SystemClock
from engine.errors import MappingError
from engine.expressions.evaluate import compile_expression
from engine.expressions.library import FUNCTIONS
from engine.expressions.syntax import (
    Attribute,
    Call,
    Compare,
    Empty,
    Literal,
    Node,
    escape,
    parse,
    to_text,
)
from engine.expressions.values import Env, Sentinel
from engine.model import (
    AttributeMappingFunctionSchema,
    AttributeMappingParameter,
    AttributeMappingParameterSchema,
    AttributeMappingSource,
    AttributeType,
    FilterOperatorSchema,
    SourceType,
    to_graph,
)
from engine.scoping import OPERATORS


def to_mapping_source(node: Node) -> AttributeMappingSource:
    """A syntax tree as Graph's attributeMappingSource (parameters keyed by Graph's names)."""
    if isinstance(node, Attribute):
        return AttributeMappingSource(
            type=SourceType.ATTRIBUTE, name=node.name, expression=f"[{node.name}]"
        )
    if isinstance(node, Literal | Empty):
        value = "" if isinstance(node, Empty) else node.value
        return AttributeMappingSource(
            type=SourceType.CONSTANT, name=value, expression=escape(value)
        )
    if isinstance(node, Compare):
        return AttributeMappingSource(
            type=SourceType.FUNCTION,
            name=node.op,
            expression=to_text(node),
            parameters=(
                AttributeMappingParameter(key="left", value=to_mapping_source(node.left)),
                AttributeMappingParameter(key="right", value=to_mapping_source(node.right)),
            ),
        )
    spec = FUNCTIONS.get(node.name)
    parameters = tuple(
        AttributeMappingParameter(
            key=spec.parameter_name(i, len(node.args)) if spec else f"arg{i + 1}",
            value=to_mapping_source(arg),
        )
        for i, arg in enumerate(node.args)
        if not isinstance(arg, Empty)
    )
    return AttributeMappingSource(
        type=SourceType.FUNCTION, name=node.name, expression=to_text(node), parameters=parameters
    )


def from_mapping_source(source: AttributeMappingSource) -> Node:
    """The syntax tree of an attributeMappingSource: its expression text when it has one."""
    if source.expression:
        return parse(source.expression)
    if source.type is SourceType.ATTRIBUTE:
        return Attribute(source.name or "")
    if source.type is SourceType.CONSTANT:
        return Literal(source.name or "")
    spec = FUNCTIONS.get(source.name or "")
    if spec is None:
        raise MappingError(f"unknown function {source.name!r}")
    by_name: dict[str, list[Node]] = {}
    for parameter in source.parameters:
        if parameter.value is not None:
            by_name.setdefault(parameter.key, []).append(from_mapping_source(parameter.value))
    args: list[Node] = []
    for declared in spec.parameters:
        values = by_name.pop(declared.name, [])
        args.extend(values or [Empty()])
    while args and isinstance(args[-1], Empty):
        args.pop()
    if by_name:
        raise MappingError(f"{spec.name} has no parameter named {sorted(by_name)[0]!r}")
    return Call(spec.name, tuple(args))


@attrs.frozen(kw_only=True)
class ParseExpressionResult:
    """What Graph's parseExpression answers, engine-side."""

    parsing_succeeded: bool
    parsed_expression: AttributeMappingSource | None = None
    evaluation_succeeded: bool = False
    evaluation_result: list[str] | None = None
    error: str | None = None
    error_code: str | None = None

    def to_graph(self) -> dict[str, Any]:
        """parseExpressionResponse JSON."""
        return {
            "error": None
            if self.error is None
            else {"code": self.error_code or "InvalidExpression", "message": self.error},
            "evaluationResult": self.evaluation_result,
            "evaluationSucceeded": self.evaluation_succeeded,
            "parsedExpression": None
            if self.parsed_expression is None
            else to_graph(self.parsed_expression),
            "parsingSucceeded": self.parsing_succeeded,
        }


def parse_expression(
    expression: str,
    inputs: Mapping[str, str | Sequence[str] | None] | None = None,
    *,
    clock: Clock | None = None,
    seed: int | None = None,
) -> ParseExpressionResult:
    """Parse ``expression`` and evaluate it against ``inputs`` (attribute -> value(s)).

    An expression that does not parse or evaluate is answered in the result, as Graph does;
    arguments of the wrong type raise MappingError.
    """
    if not isinstance(expression, str):
        raise MappingError(f"the expression must be a string, not {type(expression).__name__}")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise MappingError(f"inputs must map names to values, not {type(inputs).__name__}")
    try:
        compiled = compile_expression(expression)
    except MappingError as exc:
        return ParseExpressionResult(
            parsing_succeeded=False, error=str(exc), error_code="ExpressionParsingFailed"
        )
    parsed = to_mapping_source(compiled.node)
    source = {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in (inputs or {}).items()}
    env = Env(now=(clock or SystemClock()).now, random=random_module.Random(seed))
    try:
        value = compiled.evaluate(source, env)
    except MappingError as exc:
        return ParseExpressionResult(
            parsing_succeeded=True,
            parsed_expression=parsed,
            error=str(exc),
            error_code="ExpressionEvaluationFailed",
        )
    if value is None or isinstance(value, Sentinel):
        result: list[str] = []
    elif isinstance(value, list):
        result = list(value)
    else:
        result = [str(value)]
    return ParseExpressionResult(
        parsing_succeeded=True,
        parsed_expression=parsed,
        evaluation_succeeded=True,
        evaluation_result=result,
    )


def functions() -> list[AttributeMappingFunctionSchema]:
    """Every function with its parameter definitions (Graph's schema/functions)."""
    return [
        AttributeMappingFunctionSchema(
            name=spec.name,
            parameters=tuple(
                AttributeMappingParameterSchema(
                    name=p.name,
                    required=p.required,
                    allow_multiple_occurrences=p.allow_multiple_occurrences,
                    type=AttributeType(p.type),
                )
                for p in spec.parameters
            ),
        )
        for spec in sorted(FUNCTIONS.values(), key=lambda s: s.name.lower())
    ]


def filter_operators() -> list[FilterOperatorSchema]:
    """Every scoping operator (Graph's schema/filterOperators)."""
    return [
        FilterOperatorSchema(
            name=name,
            arity=arity,
            multivalued_comparison_type=rule,
            supported_attribute_types=tuple(AttributeType(t) for t in types),
        )
        for name, arity, rule, types in OPERATORS
    ]
