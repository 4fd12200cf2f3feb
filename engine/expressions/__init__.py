"""The attribute-mapping expression language: parse, validate, compile, evaluate.

``compile_expression`` is used once per schema; ``parse_expression`` is the engine-level
twin of Graph's ``parseExpression``; ``functions()`` and ``filter_operators()`` list what the
language and scoping filters offer.

Part of the pure core: it may import the model, ``engine.regexes``, ``engine.scoping`` and
the foundations (errors, limits, clock); never the store, a cycle or a connector.
"""

from engine.expressions.evaluate import Expression, compile_expression
from engine.expressions.graph import (
    ParseExpressionResult,
    filter_operators,
    from_mapping_source,
    functions,
    parse_expression,
    to_mapping_source,
)
from engine.expressions.syntax import ExpressionSyntaxError, parse, to_text
from engine.expressions.values import IGNORE, Env, EvaluationError

__all__ = [
    "IGNORE",
    "Env",
    "EvaluationError",
    "Expression",
    "ExpressionSyntaxError",
    "ParseExpressionResult",
    "compile_expression",
    "filter_operators",
    "from_mapping_source",
    "functions",
    "parse",
    "parse_expression",
    "to_mapping_source",
    "to_text",
]
