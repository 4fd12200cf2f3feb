"""Properties of the grammar that hold for every input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.expressions import ExpressionSyntaxError, parse, to_text
from engine.expressions.syntax import Attribute, Call, Compare, Empty, Literal, Node

ALPHABET = st.characters(blacklist_categories=("Cs",))

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
attribute_names = st.text(
    alphabet=st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s and s != "")
leaves = st.one_of(
    attribute_names.map(Attribute),
    st.text(alphabet=ALPHABET, max_size=10).map(Literal),
    st.integers(-(10**6), 10**6).map(lambda n: Literal(str(n), "number")),
    names.map(lambda n: Literal(n, "identifier")),
)


def calls(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    argument = st.one_of(children, st.just(Empty()))
    call = st.builds(
        lambda name, args: Call(name, tuple(args)),
        names,
        st.lists(argument, max_size=4).filter(lambda a: a != [Empty()]),
    )
    comparison = st.builds(
        Compare, st.sampled_from(["=", "<>", ">", ">=", "<", "<="]), children, children
    )
    return st.one_of(call, comparison)


trees = st.recursive(leaves, calls, max_leaves=12)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_any_text_parses_or_raises_the_syntax_error(text: str) -> None:
    """Arbitrary text never raises anything but ExpressionSyntaxError."""
    try:
        parse(text)
    except ExpressionSyntaxError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet='()[],"\\ =<>&HAaz019', max_size=40))
def test_grammar_punctuation_soup_is_handled(text: str) -> None:
    """Text made of the grammar's own punctuation parses or raises the syntax error."""
    try:
        parse(text)
    except ExpressionSyntaxError:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_printing_then_parsing_gives_the_same_tree(tree: Node) -> None:
    """to_text is the inverse of parse: printing a tree and parsing it gives the tree back."""
    assert tree == parse(to_text(tree))
    assert to_text(tree) == to_text(parse(to_text(tree)))
