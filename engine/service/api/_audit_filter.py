"""The ``$filter`` of ``GET /auditLogs/provisioning``: the subset of OData that finds records.

Comparisons (``eq``, ``ne``; dates also ``ge gt le lt``) and ``contains(property, 'text')`` on
the properties in _STRINGS and _DATES, joined by ``and`` and ``or`` (``and`` binds first) and
grouped with parentheses, which is what a person looks a user up with: ``(contains(
sourceIdentity/displayName, 'ada') or targetIdentity/id eq 'uid=ada,ou=people,dc=x')``. Text
compares without case, as Graph's does. Anything else is a 400 that says what is known.

The text is read once, left to right, by anchored matches (no slice of the rest per clause,
which made a long filter quadratic), and it is bounded: :data:`MAX_FILTER` characters and
:data:`MAX_DEPTH` nested parentheses, past which it is a 400 before anything is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from engine.service.api._errors import GraphError
from engine.store.base import LogRecord

Predicate = Callable[[LogRecord], bool]


def graph_action(action: str) -> str:
    """Graph's provisioningAction: ``create``, ``update``, ``stagedDelete``, ``other``…"""
    return action[:1].lower() + action[1:]


def object_types(record: LogRecord) -> tuple[str | None, str | None]:
    """The mapping key ``rule:sourceObject:targetObject`` as (source type, target type)."""
    parts = record.mapping.split(":")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else (None, None)


#: the $filter's property names (lower case) -> how a record gives that property
_STRINGS: dict[str, Callable[[LogRecord], str]] = {
    "jobid": lambda r: r.job_id,
    "cycleid": lambda r: r.cycle_id,
    "changeid": lambda r: r.change_id,
    "action": lambda r: graph_action(r.action),
    "provisioningaction": lambda r: graph_action(r.action),
    "status": lambda r: r.status,
    "provisioningstatusinfo/status": lambda r: r.status,
    "sourceidentity/id": lambda r: r.anchor,
    "sourceidentity/displayname": lambda r: r.source_name or "",
    "sourceidentity/identitytype": lambda r: object_types(r)[0] or "",
    "sourceidentity/details/identifier": lambda r: r.source_key or "",
    "targetidentity/id": lambda r: r.target_ref or "",
    "targetidentity/displayname": lambda r: r.target_name or "",
    "targetidentity/identitytype": lambda r: object_types(r)[1] or "",
}
_KNOWN = (
    "jobId, cycleId, changeId, action, provisioningAction, status, "
    "provisioningStatusInfo/status, activityDateTime, sourceIdentity/id, "
    "sourceIdentity/displayName, sourceIdentity/identityType, "
    "sourceIdentity/details/identifier, targetIdentity/id, targetIdentity/displayName, "
    "targetIdentity/identityType"
)
_DATES = frozenset({"activitydatetime"})
_STRING_OPS = frozenset({"eq", "ne"})
_DATE_OPS = frozenset({"eq", "ne", "ge", "gt", "le", "lt"})
_QUOTED = r"'(?:[^']|'')*'"
_COMPARISON = re.compile(
    rf"\s*(?P<prop>[A-Za-z][A-Za-z/]*)\s+(?P<op>[A-Za-z]+)\s+(?P<value>{_QUOTED}|[^\s'()]+)"
)
_CONTAINS = re.compile(
    rf"\s*contains\s*\(\s*(?P<prop>[A-Za-z][A-Za-z/]*)\s*,\s*(?P<value>{_QUOTED})\s*\)",
    re.IGNORECASE,
)
_KEYWORD = re.compile(
    r"\s*(?P<word>and|or)(?:\s+|(?=\()|\s*$)|\s*(?P<paren>[()])\s*", re.IGNORECASE
)
_END = re.compile(r"\s*\Z")
MAX_FILTER = 4096
MAX_DEPTH = 32
#: how much of the unread text an error message quotes
_QUOTE = 60
_DATE_TESTS: dict[str, Callable[[datetime, datetime], bool]] = {
    "eq": lambda t, w: t == w,
    "ne": lambda t, w: t != w,
    "ge": lambda t, w: t >= w,
    "gt": lambda t, w: t > w,
    "le": lambda t, w: t <= w,
    "lt": lambda t, w: t < w,
}


def bad(message: str) -> GraphError:
    return GraphError(400, "invalidRequest", f"$filter: {message}")


def _unquote(raw: str) -> str:
    return raw[1:-1].replace("''", "'")


def _string(prop: str) -> Callable[[LogRecord], str]:
    get = _STRINGS.get(prop.lower())
    if get is None:
        if prop.lower() in _DATES:
            raise bad(f"{prop} compares with eq, ne, ge, gt, le or lt, not contains")
        raise bad(f"cannot filter on {prop!r}; known: {_KNOWN}")
    return get


def _comparison(prop: str, op: str, raw: str) -> Predicate:
    name, op = prop.lower(), op.lower()
    if name in _DATES:
        if op not in _DATE_OPS:
            raise bad(f"{prop} supports eq, ne, ge, gt, le and lt, not {op!r}")
        try:
            when = datetime.fromisoformat(raw.strip("'").replace("Z", "+00:00"))
        except ValueError:
            raise bad(f"{raw!r} is not a date-time such as 2024-01-31T00:00:00Z") from None
        if when.tzinfo is None:
            raise bad(f"{raw!r} needs a time zone (e.g. a trailing Z)")
        test = _DATE_TESTS[op]
        return lambda r: test(r.time, when)
    get = _string(prop)
    if op not in _STRING_OPS:
        raise bad(f"{prop} supports eq, ne and contains(), not {op!r}")
    if not raw.startswith("'"):
        raise bad(f"{prop} compares with a quoted string, not {raw!r}")
    wanted = _unquote(raw).lower()
    if op == "eq":
        return lambda r: get(r).lower() == wanted
    return lambda r: get(r).lower() != wanted


class _Parser:
    """Recursive descent over the text: or-terms of and-factors of comparisons or groups."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0
        self.job_ids: list[str] = []  # jobId eq values that every match must have

    def parse(self) -> Predicate:
        predicate = self.disjunction(top=True)
        if not self.at_end():
            raise bad(f"cannot read {self.rest()!r}")
        return predicate

    def at_end(self) -> bool:
        return _END.match(self.text, self.pos) is not None

    def rest(self) -> str:
        """The start of the unread text, for an error message."""
        rest = self.text[self.pos : self.pos + _QUOTE + 1].strip()
        return rest if len(rest) <= _QUOTE else rest[:_QUOTE] + "…"

    def keyword(self, word: str) -> bool:
        match = _KEYWORD.match(self.text, self.pos)
        if match is None or (match["word"] or match["paren"]).lower() != word:
            return False
        self.pos = match.end()
        return True

    def disjunction(self, top: bool = False) -> Predicate:
        terms = [self.conjunction(top)]
        while self.keyword("or"):
            terms.append(self.conjunction(False))
        if len(terms) > 1:
            if top:
                self.job_ids.clear()  # an or: no one job holds every match
            return lambda r: any(t(r) for t in terms)
        return terms[0]

    def conjunction(self, top: bool) -> Predicate:
        factors = [self.factor(top)]
        while self.keyword("and"):
            factors.append(self.factor(top))
        if len(factors) > 1:
            return lambda r: all(f(r) for f in factors)
        return factors[0]

    def factor(self, top: bool) -> Predicate:
        if self.keyword("("):
            inner = self.disjunction()
            if not self.keyword(")"):
                raise bad(f"a parenthesis is not closed at {self.rest()!r}")
            return inner
        if self.at_end():
            raise bad("the filter ends where a comparison was expected")
        match = _CONTAINS.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
            get, wanted = _string(match["prop"]), _unquote(match["value"]).lower()
            return lambda r: wanted in get(r).lower()
        match = _COMPARISON.match(self.text, self.pos)
        if match is None:
            raise bad(f"cannot read {self.rest()!r}; expected <property> <operator> <value>")
        self.pos = match.end()
        prop, op, raw = match["prop"], match["op"], match["value"]
        predicate = _comparison(prop, op, raw)
        if top and prop.lower() == "jobid" and op.lower() == "eq":
            self.job_ids.append(_unquote(raw))
        return predicate


def parse_filter(text: str | None) -> tuple[list[Predicate], str | None]:
    """The ``$filter`` as predicates (all must hold) and the job id that a top-level ``jobId
    eq`` names, if any (so only that job's log is read)."""
    if text is None:
        return [], None
    if not text.strip():
        raise bad("the filter is empty")
    if len(text) > MAX_FILTER:
        raise bad(f"longer than {MAX_FILTER} characters")
    if text.count("'") % 2:
        raise bad("a quoted string is not closed")
    if _depth(text) > MAX_DEPTH:
        raise bad(f"parentheses nest deeper than {MAX_DEPTH}")
    parser = _Parser(text)
    predicate = parser.parse()
    return [predicate], parser.job_ids[0] if parser.job_ids else None


def _depth(text: str) -> int:
    """How deep parentheses outside quoted strings nest (the parser recurses that deep)."""
    depth = deepest = 0
    for token in re.finditer(rf"{_QUOTED}|[()]", text):
        if token[0] == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif token[0] == ")":
            depth -= 1
    return deepest
