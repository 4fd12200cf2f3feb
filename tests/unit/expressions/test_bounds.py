"""Expression values are bounded: every function that can grow a value checks the size it
will build, and expressions that could only be stopped there are refused when compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.expressions import (
    Env,
    ExpressionSyntaxError,
    _bounds,
    _other,
    _text,
    compile_expression,
    parse_expression,
    to_text,
)
from engine.expressions._bounds import ValueTooLong
from engine.expressions.growth import worst_length
from engine.expressions.syntax import Attribute, Call, Empty, Literal, Node
from engine.limits import MAX_EXPRESSION_GROWTH, MAX_EXPRESSION_TEXT

ROOT = Path(__file__).resolve().parents[3]
ENV = Env(now=lambda: datetime(2024, 1, 1, tzinfo=UTC))
BIG = MAX_EXPRESSION_TEXT


def run(expression: str, **inputs: Any) -> Any:
    return compile_expression(expression).evaluate(inputs, ENV)


def nested_replace(levels: int, growth: str = "a" * 100) -> str:
    """``levels`` Replace calls, each turning every "a" into ``growth``."""
    text = "[x]"
    for _ in range(levels):
        text = f'Replace({text}, "a", , , "{growth}", , )'
    return text


# ------------------------------------------------------------------- each function's bound
@pytest.mark.parametrize(
    ("expression", "inputs"),
    [
        ("Append([a], [b])", {"a": "x" * (BIG // 2 + 1), "b": "y" * (BIG // 2)}),
        ("Prepend([a], [b])", {"a": "x" * (BIG // 2 + 1), "b": "y" * (BIG // 2)}),
        ('Join("", [a], [b])', {"a": "x" * (BIG // 2 + 1), "b": "y" * (BIG // 2)}),
        ("Join([s], [m])", {"s": "," * 1025, "m": ["v"] * 1024}),
        ('Replace([a], "b", , , [r], , )', {"a": "b" * 1024, "r": "c" * 1025}),
        ('Replace([a], [e], , , "cd", , )', {"a": "x" * (BIG // 2), "e": ""}),
        ('Replace([a], "%", , , , , [t])', {"a": "x" * 1024, "t": "%" * 1025}),
        ('Replace([a], , "x+", , "$0$0", , )', {"a": "x" * (BIG // 2 + 1)}),
        ('Replace([a], , "^(?<g>)", "g", "y", , )', {"a": "x" * BIG}),
        ('Replace([a], , ".+", , [r], , )', {"a": "x" * (BIG // 4), "r": "$0" * 5}),
        ("ConvertToBase64([a])", {"a": "x" * (BIG // 2)}),
        ("ConvertToUTF8Hex([a])", {"a": "é" * (BIG // 4 + 1)}),
        ("ToUpper([a])", {"a": "ß" * (BIG // 2 + 1)}),
        ("PCase([a])", {"a": "ﬃ " * (BIG // 4 + 1)}),
    ],
)
def test_a_growing_function_refuses_a_value_too_long(
    expression: str, inputs: dict[str, Any]
) -> None:
    with pytest.raises(ValueTooLong, match=f"more than the {BIG:,}"):
        run(expression, **inputs)


def test_values_at_the_limit_still_flow() -> None:
    half = "x" * (BIG // 2)
    assert len(run("Append([a], [b])", a=half, b=half)) == BIG
    assert len(run('Replace([a], "b", , , "cc", , )', a="b" * (BIG // 2))) == BIG
    assert run('Replace([a], "", , , "-", , )', a="ab") == "-a-b-"


@pytest.fixture
def small_limits() -> Iterator[None]:
    """Limits small enough that hypothesis reaches both sides of them quickly."""
    with pytest.MonkeyPatch.context() as patch:
        for module in (_bounds, _text, _other):  # the last two check inline, in hot paths
            patch.setattr(module, "MAX_EXPRESSION_TEXT", 64)
        patch.setattr(_bounds, "MAX_EXPRESSION_LIST", 256)
        yield


def test_a_date_format_is_bounded(small_limits: None) -> None:
    """A format writes up to six characters for one ("K" is "+00:00" in most zones)."""
    assert run('FormatDateTime([d], , "yyyyMMdd", [f])', d="20240101", f="zzz " * 9)
    with pytest.raises(ValueTooLong, match="FormatDateTime: the value would be 70"):
        run('FormatDateTime([d], , "yyyyMMdd", [f])', d="20240101", f="zzz " * 10)


def test_a_list_is_bounded_in_all_its_values_together(small_limits: None) -> None:
    assert run('Append([m], "x")', m=["a" * 10] * 23) == ["a" * 10 + "x"] * 23
    with pytest.raises(ValueTooLong, match="Append: the values would be more than 256"):
        run('Append([m], "x")', m=["a" * 10] * 24)
    with pytest.raises(ValueTooLong, match="Replace: the values"):
        run('Replace([m], "a", , , "bb", , )', m=["a" * 30] * 5)
    with pytest.raises(ValueTooLong, match="AppRoleAssignmentsComplex"):
        run("AppRoleAssignmentsComplex([m])", m=["r"] * 10)


def test_what_one_evaluation_builds_is_counted_in_all() -> None:
    """Calls side by side, each within its limit, are counted together, from zero for each
    evaluation; values passed through (attributes, Coalesce) are not built, so not counted."""
    x = "a" * 5000
    two = compile_expression('Join("", ToLower([x]), ToLower([x]))')
    three = compile_expression('Join("", ToLower([x]), ToLower([x]), ToLower([x]))')
    passed = compile_expression('Join("", [x], Coalesce([x]), [x], [x], [x])')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_bounds, "MAX_EXPRESSION_BUILT", 26_000)  # bytes: 49 a text
        for _ in range(3):
            assert two.evaluate({"x": x}, ENV) == x * 2  # 5,000 + 5,000 + 10,000
        with pytest.raises(
            ValueTooLong, match="Join: this expression would build more than 26,000"
        ):
            three.evaluate({"x": x}, ENV)
        assert passed.evaluate({"x": x}, ENV) == x * 5


# Text over a few characters, so Replace finds what it looks for and grows.
texts = st.text(alphabet="ab%é ß", max_size=12)
scalars = st.one_of(texts, st.just(None))
inputs = st.fixed_dictionaries(
    {"a": scalars, "b": scalars, "m": st.lists(texts, max_size=6)},
)
leaves: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from([Attribute("a"), Attribute("b"), Attribute("m")]),
    texts.map(Literal),
)


def growing(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    """Calls of the functions whose value can be longer than their arguments."""
    nested = children  # named here: hypothesis looks for the argument in this body

    def call(name: str, *shape: Node | None) -> st.SearchStrategy[Node]:
        return st.tuples(*(nested if s is None else st.just(s) for s in shape)).map(
            lambda args: Call(name, tuple(args))
        )

    empty = Empty()
    return st.one_of(
        call("Replace", None, None, empty, empty, None),
        call("Replace", None, None, empty, empty, empty, empty, None),
        call("Replace", None, empty, Literal("a|"), empty, None),
        call("Append", None, None),
        call("Prepend", None, None),
        call("Join", None, None, None),
        call("ConvertToBase64", None),
        call("ConvertToUTF8Hex", None),
        call("ToUpper", None),
        call("PCase", None),
        call("NormalizeDiacritics", None),
    )


trees = st.recursive(leaves, growing, max_leaves=8)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tree=trees, values=inputs)
def test_any_expression_value_is_bounded_or_refused(
    small_limits: None, tree: Node, values: dict[str, Any]
) -> None:
    """Whatever the nesting of growing functions and their inputs: the value fits the
    limits, or the expression is refused when compiled, or evaluating it is refused; and a
    value that is computed is the one the functions compute without limits."""
    try:
        expression = compile_expression(tree)
    except ExpressionSyntaxError as exc:
        assert "times longer than its longest input" in str(exc)
        return
    try:
        value = expression.evaluate(values, ENV)
    except ValueTooLong:
        return
    if isinstance(value, list):
        assert sum(map(len, value)) <= 256
    elif isinstance(value, str):
        assert len(value) <= 64
    with pytest.MonkeyPatch.context() as patch:
        for module in (_bounds, _text, _other):
            patch.setattr(module, "MAX_EXPRESSION_TEXT", 10**9)
        patch.setattr(_bounds, "MAX_EXPRESSION_LIST", 10**9)
        assert expression.evaluate(values, ENV) == value


# --------------------------------------------------------------------- the static bound
def test_nested_growth_is_refused_when_compiled_naming_the_call() -> None:
    compile_expression(nested_replace(4))  # 100**4 times: stopped when evaluated
    with pytest.raises(ExpressionSyntaxError, match="times longer") as refused:
        compile_expression(nested_replace(5))
    assert str(refused.value).startswith("'Replace(Replace(")
    twice = 'Replace(Replace([a], "x", , , [b], , ), "y", , , [c], , )'
    compile_expression('Replace([a], "x", , , [b], , )')
    with pytest.raises(ExpressionSyntaxError, match="more than 1,073,741,824"):
        compile_expression(twice)
    with pytest.raises(ExpressionSyntaxError, match="times longer"):
        compile_expression(f'IIF([x] = "1", {twice}, "")')


@pytest.mark.parametrize(
    "expression",
    [
        # Entra's examples and what users write: they stay far below the bound
        'Join("@", NormalizeDiacritics(StripSpaces([givenName])), "contoso.com")',
        'SelectUniqueValue(Join("@", NormalizeDiacritics(StripSpaces([givenName])), '
        '"contoso.com"), Join("@", Mid([givenName], 1, 1), [surname]))',
        'Replace([mail], "@contoso.com", , , [upnSuffix], , )',
        "Join([separator], [a], [b], [c])",
        "ConvertToBase64(ConvertToUTF8Hex(ToUpper([x])))",
        # umlauts spelled out: at most 2**7 times longer
        "Replace(" * 12
        + "[givenName]"
        + "".join(
            f', "{u}", , , "{w}", , )'
            for u, w in zip("äöüßÄÖÜæøåéè", ["ae", "oe", "ue", "ss", "Ae", "Oe", "Ue"] + ["x"] * 5)
        ),
    ],
)
def test_real_expressions_are_not_refused(expression: str) -> None:
    compile_expression(expression)


def test_builtin_templates_stay_far_below_the_bound() -> None:
    """Every expression of the built-in templates grows its input at most a few times."""
    found = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expression" and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    for path in (ROOT / "engine" / "templates").glob("*.json"):
        walk(json.loads(path.read_text()))
    assert found
    worst = max(worst_length(compile_expression(text).node) for text in found)
    assert worst <= 16 * BIG < MAX_EXPRESSION_GROWTH * BIG


# ---------------------------------------------------------------- under a memory cap
CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
from datetime import UTC, datetime
from engine.expressions import Env, parse, parse_expression
from engine.expressions.evaluate import _compile

def nested(levels, growth):
    text = "[x]"
    for _ in range(levels):
        text = f'Replace({text}, "a", , , "{growth}", , )'
    return text

env = Env(now=lambda: datetime(2024, 1, 1, tzinfo=UTC))
for levels in (5, 10):
    # refused when parsed ...
    result = parse_expression(nested(levels, "a" * 100), {"x": "a"})
    assert not result.parsing_succeeded and "times longer" in result.error, result
    # ... and, were it not, refused while evaluated, before the value is built
    run = _compile(parse(nested(levels, "a" * 100)), top=True, target_attribute=None)
    try:
        run({"x": "a" * 100}, env)
    except Exception as exc:
        assert "more than the 1,048,576" in str(exc), exc
    else:
        sys.exit(f"{levels} nested Replace calls were computed")
# within the static bound (2**10 times), stopped in evaluation
result = parse_expression(nested(10, "aa"), {"x": "a" * (1 << 19)})
assert result.parsing_succeeded and "more than the 1,048,576" in result.error, result
# two hundred calls side by side, each 1 MiB: stopped at 128 MiB in all
result = parse_expression("Join(" + '""' + ", ToLower([x])" * 200 + ")", {"x": "a" * (1 << 20)})
assert result.parsing_succeeded and "134,217,728 bytes of values in all" in result.error, result
# one match repeated a thousand times by its replacement: 1 GB in one piece
inputs = {"x": "a" * (1 << 20), "r": "$0" * 1000}
result = parse_expression('Replace([x], , ".+", , [r], , )', inputs)
assert result.parsing_succeeded and "more than the 1,048,576" in result.error, result
print("bounded")
"""


def test_nested_replace_calls_stay_under_a_memory_cap() -> None:
    """5 and 10 nested Replace calls (10 GB and far more unbounded) in a process that may use
    512 MB: a regression fails this test with a MemoryError instead of eating the machine."""
    done = subprocess.run(
        [sys.executable, "-c", CAPPED],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "bounded", done.stderr[-2000:]


def test_parse_expression_answers_the_refusals() -> None:
    refused = parse_expression(nested_replace(5), {"x": "a"})
    assert refused.error_code == "ExpressionParsingFailed"
    stopped = parse_expression(nested_replace(4), {"x": "a" * 100})
    assert stopped.parsing_succeeded and not stopped.evaluation_succeeded
    assert stopped.error_code == "ExpressionEvaluationFailed"
    assert stopped.error is not None and stopped.error.startswith("Replace: the value would")
    assert to_text(compile_expression(nested_replace(1)).node) == nested_replace(1)
