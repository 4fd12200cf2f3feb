"""The expression language's grammar (lark), its syntax tree, and a printer.

Grammar, as Entra documents it: a function call with nested arguments, ``[attribute]``
references (names may hold dots, dashes, colons and spaces), double-quoted strings where
``\\`` and ``\"`` are escapes, integers, VB hex numbers (``&HF``), bare identifiers
(``vbTextCompare``, ``True``), and the comparison operators of IIF conditions. Arguments may
be left empty (``Replace([x], , "a", , "b", , )``). Parsing never raises anything but
:class:`ExpressionSyntaxError`, which names the position and what was expected.
"""

from __future__ import annotations

import attrs
from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import LarkError, VisitError

from engine.errors import MappingError
from engine.limits import MAX_EXPRESSION_DEPTH, text_depth

MAX_LENGTH = 10_000

GRAMMAR = r"""
?start: expr

?expr: atom
     | atom CMPOP atom          -> compare

?atom: call
     | ATTRIBUTE                -> attribute
     | STRING                   -> string
     | NUMBER                   -> number
     | HEXNUM                   -> hexnum
     | NAME                     -> identifier
     | "(" expr ")"

call: NAME "(" [arg ("," arg)*] ")"
arg: expr?

CMPOP: "<>" | ">=" | "<=" | "=" | ">" | "<"
ATTRIBUTE: /\[[^\[\]]+\]/
STRING: /"(\\.|[^"\\])*"/
NUMBER: /-?[0-9]+(\.[0-9]+)?/
HEXNUM: /&[Hh][0-9A-Fa-f]+/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""


class ExpressionSyntaxError(MappingError):
    """An expression that does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


# ------------------------------------------------------------------------------ syntax tree
@attrs.frozen
class Attribute:
    name: str


@attrs.frozen
class Literal:
    """A string constant, a number (kept as its text) or a bare identifier."""

    value: str
    kind: str = "string"  # string | number | identifier


@attrs.frozen
class Empty:
    """An argument left out: ``Replace([x], , "a")``."""


@attrs.frozen
class Call:
    name: str
    args: tuple[Node, ...] = ()


@attrs.frozen
class Compare:
    op: str
    left: Node
    right: Node


Node = Attribute | Literal | Empty | Call | Compare


def unescape(text: str) -> str:
    """A string literal's body: backslash-backslash and backslash-quote are escapes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def escape(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@v_args(inline=True)
class _Build(Transformer[Token, Node]):
    def attribute(self, token: Token) -> Node:
        return Attribute(str(token)[1:-1])

    def string(self, token: Token) -> Node:
        return Literal(unescape(str(token)[1:-1]))

    def number(self, token: Token) -> Node:
        return Literal(str(token), "number")

    def hexnum(self, token: Token) -> Node:
        return Literal(str(int(str(token)[2:], 16)), "number")

    def identifier(self, token: Token) -> Node:
        return Literal(str(token), "identifier")

    def compare(self, left: Node, op: Token, right: Node) -> Node:
        return Compare(str(op), left, right)

    def arg(self, value: Node | None = None) -> Node:
        return Empty() if value is None else value

    def call(self, name: Token, *args: Node | None) -> Node:
        values = tuple(Empty() if a is None else a for a in args)
        if len(values) == 1 and isinstance(values[0], Empty):
            values = ()  # F() has no arguments, not one empty one
        return Call(str(name), values)


_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)


def parse(text: str) -> Node:
    """Parse an expression into its syntax tree, or raise ExpressionSyntaxError."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError("an expression must be a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionSyntaxError(f"expressions are limited to {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionSyntaxError("the expression is empty", 0)
    if text_depth(text, "(", ")") > MAX_EXPRESSION_DEPTH:  # lark's transformer recurses
        raise ExpressionSyntaxError(
            f"the expression nests functions or parentheses deeper than {MAX_EXPRESSION_DEPTH}"
        )
    try:
        tree = _PARSER.parse(text)
        node = _Build().transform(tree)
    except UnexpectedInput as exc:
        raise ExpressionSyntaxError(_describe(text, exc), exc.pos_in_stream) from None
    except (LarkError, VisitError) as exc:
        raise ExpressionSyntaxError(f"cannot parse the expression: {exc}") from None
    return node


_TERMINALS = {
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "ATTRIBUTE": "an [attribute]",
    "STRING": 'a "string"',
    "NUMBER": "a number",
    "HEXNUM": "a &H number",
    "NAME": "a function name",
    "CMPOP": "a comparison operator",
    "$END": "the end of the expression",
}


def _describe(text: str, exc: UnexpectedInput) -> str:
    position = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    names = sorted({_TERMINALS.get(str(e), str(e)) for e in expected})
    token = getattr(exc, "token", None)
    if (token is not None and getattr(token, "type", "") == "$END") or position >= len(text):
        where = "at the end of the expression"
    else:
        where = f"at position {position + 1} (near {text[position : position + 12]!r})"
    if names:
        return f"syntax error {where}: expected {', '.join(names)}"
    return f"syntax error {where}"


def depth(node: Node) -> int:
    """Nesting depth of a tree (a call or comparison is one level), counted without recursion."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Call):
            stack.extend((arg, level + 1) for arg in item.args)
        elif isinstance(item, Compare):
            stack.extend(((item.left, level + 1), (item.right, level + 1)))
        else:
            continue
        deepest = max(deepest, level + 1)
    return deepest


def to_text(node: Node) -> str:
    """The canonical text of a tree; parse(to_text(t)) == t for every tree parse returns."""
    if isinstance(node, Attribute):
        return f"[{node.name}]"
    if isinstance(node, Literal):
        return escape(node.value) if node.kind == "string" else node.value
    if isinstance(node, Empty):
        return ""
    if isinstance(node, Compare):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    return f"{node.name}({', '.join(to_text(a) for a in node.args)})"


def _operand(node: Node) -> str:
    return f"({to_text(node)})" if isinstance(node, Compare) else to_text(node)
