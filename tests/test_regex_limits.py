"""Regular expressions from schemas run under a time limit (README "Limits")."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.memory import MemoryDirectory
from engine import ConfigurationError, ManualClock, SyncEngine, parse_expression
from engine.errors import MappingError, RegexTimeoutError
from engine.expressions import Env, compile_expression
from engine.model import (
    Filter,
    FilterClause,
    FilterGroup,
    FilterOperand,
    KeyValuePair,
    to_graph,
)
from engine.scoping import compile_scope
from engine.service.cli import main
from engine.settings import JobSettings

#: Exponential for the regex engine too (it defuses the classic (a+)+$, see below).
EVIL = "(a|a)+$"
BAD_INPUT = "a" * 30 + "!"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def replace_with(pattern: str) -> str:
    return f'Replace([x], , "{pattern}", , "", , )'


def regex_scope(pattern: str) -> Filter:
    return Filter(
        groups=(
            FilterGroup(
                clauses=(
                    FilterClause(
                        operator_name="REGEX MATCH",
                        source_operand_name="x",
                        target_operand=FilterOperand(values=(pattern,)),
                    ),
                )
            ),
        )
    )


def test_replace_times_out_with_a_project_error() -> None:
    """A backtracking Replace stops at the Env's limit with RegexTimeoutError (a MappingError)."""
    expression = compile_expression(replace_with(EVIL))
    started = time.monotonic()
    with pytest.raises(RegexTimeoutError, match=r"longer than the 0.05s limit \(RegexTimeout"):
        expression.evaluate({"x": BAD_INPUT}, Env(now=lambda: NOW, regex_timeout=0.05))
    assert time.monotonic() - started < 1
    assert issubclass(RegexTimeoutError, MappingError)


def test_the_reported_pattern_does_not_hang() -> None:
    """The issue's (a+)+$ against thirty a's and a ! finishes at once."""
    started = time.monotonic()
    result = parse_expression(replace_with("(a+)+$"), {"x": BAD_INPUT})
    assert result.evaluation_succeeded and [BAD_INPUT] == result.evaluation_result
    assert time.monotonic() - started < 1


def test_env_has_a_default_limit() -> None:
    """An Env built without a limit carries the module default (one second)."""
    assert 1.0 == Env(now=lambda: NOW).regex_timeout


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="a!b", max_size=40))
def test_replace_always_ends(value: str) -> None:
    """For every input a backtracking Replace either answers or times out; it never hangs."""
    expression = compile_expression(replace_with(EVIL))
    started = time.monotonic()
    try:
        expression.evaluate({"x": value}, Env(now=lambda: NOW, regex_timeout=0.02))
    except RegexTimeoutError:
        pass
    assert time.monotonic() - started < 1


def test_parse_expression_reports_a_timeout() -> None:
    """parse_expression answers a timeout as an evaluation error, not a hang."""
    result = parse_expression(replace_with(EVIL), {"x": BAD_INPUT})
    assert result.parsing_succeeded and not result.evaluation_succeeded
    assert "ExpressionEvaluationFailed" == result.error_code
    assert "RegexTimeout" in (result.error or "")


def test_cli_expr_reports_a_timeout() -> None:
    """`syncjob expr` prints one evaluation error line and exits 1."""
    result = CliRunner().invoke(main, ["expr", replace_with(EVIL), "--attr", f"x={BAD_INPUT}"])
    assert 1 == result.exit_code
    assert result.output.startswith("evaluation error: Replace: the regular expression")


def test_scoping_regex_times_out() -> None:
    """A REGEX MATCH clause is bounded by the limit bound when the filter is compiled."""
    predicate = compile_scope(regex_scope(EVIL), regex_timeout=0.05)
    assert predicate is not None
    with pytest.raises(RegexTimeoutError):
        predicate({"x": BAD_INPUT})
    assert predicate({"x": "aaa"})


def test_dotnet_named_groups_still_work() -> None:
    """Graph's (?<name>...) syntax is read as written."""
    result = parse_expression(
        'Replace([x], , "(?<user>[^@]+)@(?<domain>.+)", "domain", "example.org", , )',
        {"x": "ada@contoso.com"},
    )
    assert ["ada@example.org"] == result.evaluation_result


def test_regex_timeout_setting_is_bounded() -> None:
    """RegexTimeout takes a positive ISO-8601 duration of at most a minute."""
    assert (
        0.25 == JobSettings.parse([_pair("RegexTimeout", "PT0.25S")]).regex_timeout.total_seconds()
    )
    for bad in ("PT0S", "-PT1S", "PT2M", "soon"):
        with pytest.raises(ConfigurationError, match="RegexTimeout"):
            JobSettings.parse([_pair("RegexTimeout", bad)])


def _pair(name: str, value: str) -> KeyValuePair:
    return KeyValuePair(name=name, value=value)


def test_cycle_escrows_an_object_whose_scope_regex_times_out(clock: ManualClock) -> None:
    """In a cycle, a scoping regex past RegexTimeout escrows that object; the others flow."""
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(clock=clock)
    job_id = (
        engine.create_job("memoryToMemory", source, target, settings={"RegexTimeout": "PT0.05S"}).id
        or ""
    )
    schema = to_graph(engine.get_schema(job_id))
    schema["synchronizationRules"][0]["objectMappings"][0]["scope"] = {
        "groups": [
            {
                "clauses": [
                    {
                        "operatorName": "REGEX MATCH",
                        "sourceOperandName": "city",
                        "targetOperand": {"values": [EVIL]},
                    }
                ]
            }
        ]
    }
    engine.update_schema(job_id, schema)
    engine.start(job_id)
    source.put("User", "u1", {"userName": "slow", "city": BAD_INPUT})
    source.put("User", "u2", {"userName": "fine", "city": "aaa"})
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed
    assert ["fine"] == [u["userName"] for u in target.list("User").values()]
    (escrow,) = engine.escrows(job_id)
    assert "u1" == escrow.anchor and "RegexTimeout" in escrow.error
    assert "0.05s limit" in escrow.error  # the job's setting reached the evaluation


def test_cycle_escrows_an_object_whose_replace_times_out(clock: ManualClock) -> None:
    """In a cycle, a Replace past the limit escrows that object; the others flow."""
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(clock=clock)
    job_id = (
        engine.create_job("memoryToMemory", source, target, settings={"RegexTimeout": "PT0.05S"}).id
        or ""
    )
    schema = to_graph(engine.get_schema(job_id))
    mappings = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    city = next(m for m in mappings if m["targetAttributeName"] == "city")
    city["source"] = {"type": "Function", "expression": replace_with(EVIL).replace("[x]", "[city]")}
    engine.update_schema(job_id, schema)
    engine.start(job_id)
    source.put("User", "u1", {"userName": "slow", "city": BAD_INPUT})
    source.put("User", "u2", {"userName": "fine", "city": "aaa"})
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed
    (escrow,) = engine.escrows(job_id)
    assert "u1" == escrow.anchor and "RegexTimeout" in escrow.error
    assert "0.05s limit" in escrow.error  # the job's setting reached the evaluation
