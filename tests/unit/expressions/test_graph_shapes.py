"""parseExpression, the functions list and the filter operators list in Graph's shapes."""

from __future__ import annotations

import json
from pathlib import Path

from engine import filter_operators, functions, parse_expression, to_graph
from engine.expressions import (
    Env,
    compile_expression,
    from_mapping_source,
    parse,
    to_mapping_source,
    to_text,
)
from engine.model import AttributeMappingSource, from_graph

FIXTURES = Path(__file__).parents[2] / "fixtures" / "graph"


def test_parse_expression_matches_graphs_documented_response() -> None:
    """Graph's documented parseExpression example: same result, same parameter names."""
    result = parse_expression(
        'Replace([preferredLanguage], "-", , , "_", ,  )', {"preferredLanguage": "EN-US"}
    )
    body = result.to_graph()
    assert ["EN_US"] == body["evaluationResult"]
    assert body["parsingSucceeded"] and body["evaluationSucceeded"] and body["error"] is None
    parsed = body["parsedExpression"]
    assert ["source", "Find", "Replacement"] == [p["key"] for p in parsed["parameters"]]
    assert 'Replace([preferredLanguage], "-", , , "_", , )' == parsed["expression"]


def test_parsed_tree_matches_graphs_mid_example() -> None:
    """The Mid example of the docs: numbers become Constants with quoted expressions."""
    documented = json.loads((FIXTURES / "attribute-mapping-source.json").read_text())
    ours = to_graph(to_mapping_source(parse("Mid([userPrincipalName], 1, 8)")))
    assert documented == ours


def test_mapping_source_round_trip_without_expression_text() -> None:
    """A tree given only by name and parameters rebuilds an equivalent expression (Graph
    writes numbers as quoted Constants, so 1 comes back as "1", which evaluates the same)."""
    documented = json.loads((FIXTURES / "attribute-mapping-source.json").read_text())
    documented.pop("expression")
    rebuilt = from_mapping_source(from_graph(documented, AttributeMappingSource))
    assert 'Mid([userPrincipalName], "1", "8")' == to_text(rebuilt)
    env = Env(now=lambda: None)  # type: ignore[arg-type,return-value]
    source = {"userPrincipalName": "john.doe@contoso.com"}
    assert "john.doe" == compile_expression(rebuilt).evaluate(source, env)


def test_parse_errors_are_reported_not_raised() -> None:
    """parse_expression reports parse and evaluation failures in its result."""
    bad = parse_expression("Mid([x], 1")
    assert not bad.parsing_succeeded and "syntax error" in (bad.error or "")
    assert "ExpressionParsingFailed" == bad.to_graph()["error"]["code"]
    failing = parse_expression('CDate("soon")')
    assert failing.parsing_succeeded and not failing.evaluation_succeeded


def test_functions_list_has_every_function_with_parameters() -> None:
    """functions() lists the whole library with Graph's parameter schema."""
    listed = {f.name: f for f in functions()}
    for name in (
        "Append",
        "AppRoleAssignmentsComplex",
        "BitAnd",
        "CBool",
        "CDate",
        "Coalesce",
        "ConvertToBase64",
        "ConvertToUTF8Hex",
        "Count",
        "CStr",
        "DateAdd",
        "DateDiff",
        "DateFromNum",
        "FormatDateTime",
        "Guid",
        "IgnoreFlowIfNullOrEmpty",
        "IIF",
        "InStr",
        "IsAccountEnabled",
        "IsNull",
        "IsNullOrEmpty",
        "IsPresent",
        "IsString",
        "Item",
        "Join",
        "Left",
        "Mid",
        "NormalizeDiacritics",
        "Not",
        "Now",
        "NumFromDate",
        "PCase",
        "RandomString",
        "Redact",
        "RemoveDuplicates",
        "Replace",
        "SelectUniqueValue",
        "SingleAppRoleAssignment",
        "Split",
        "StripSpaces",
        "Switch",
        "ToLower",
        "ToUpper",
        "Word",
    ):
        assert name in listed, name
    join = to_graph(listed["Join"])
    assert {
        "name": "source",
        "required": True,
        "allowMultipleOccurrences": True,
        "type": "String",
    } == join["parameters"][1]


def test_filter_operators_list() -> None:
    """filter_operators() lists Graph's documented operators with arity and types."""
    listed = {o.name: to_graph(o) for o in filter_operators()}
    assert {
        "name": "IS NULL",
        "arity": "Unary",
        "multivaluedComparisonType": "All",
        "supportedAttributeTypes": ["Integer", "String", "Binary", "Boolean"],
    } == listed["IS NULL"]
    for name in (
        "EQUALS",
        "NOT EQUALS",
        "IS TRUE",
        "IS FALSE",
        "IS NOT NULL",
        "REGEX MATCH",
        "NOT REGEX MATCH",
        "Greater_Than",
        "Greater_Than_OR_EQUALS",
        "Less_Than",
        "Less_Than_OR_EQUALS",
        "Includes",
        "Excludes",
        "ENDS_WITH",
    ):
        assert name in listed
