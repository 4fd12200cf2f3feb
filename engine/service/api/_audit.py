"""``GET /auditLogs/provisioning``: the engine's LogRecords as Graph's provisioningObjectSummary,
an OData ``$filter`` subset over them, and keyset paging with an opaque skip token.

Records are listed newest first, ordered by ``(activityDateTime, id)``; the skip token holds
the key of the last record of a page, so a page never repeats or skips a record even while
cycles add new ones (new records are newer, so they sort before every token).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.model.converter import format_datetime
from engine.service.api._errors import GraphError
from engine.store.base import LogRecord

DEFAULT_TOP = 100
MAX_TOP = 1000

#: the $filter's property names (lower case) -> how a record gives that property
_STRINGS: dict[str, Callable[[LogRecord], str]] = {
    "jobid": lambda r: r.job_id,
    "cycleid": lambda r: r.cycle_id,
    "changeid": lambda r: r.change_id,
    "action": lambda r: _action(r.action),
    "provisioningaction": lambda r: _action(r.action),
    "status": lambda r: r.status,
    "provisioningstatusinfo/status": lambda r: r.status,
}
_DATES = frozenset({"activitydatetime"})
_STRING_OPS = frozenset({"eq", "ne"})
_DATE_OPS = frozenset({"eq", "ne", "ge", "gt", "le", "lt"})
_CLAUSE = re.compile(
    r"\s*(?P<prop>[A-Za-z][A-Za-z/]*)\s+(?P<op>[A-Za-z]+)\s+"
    r"(?P<value>'(?:[^']|'')*'|[^\s']+)\s*",
    re.DOTALL,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)

Predicate = Callable[[LogRecord], bool]


def _action(action: str) -> str:
    """Graph's provisioningAction: ``create``, ``update``, ``stagedDelete``, ``other``…"""
    return action[:1].lower() + action[1:]


def record_id(record: LogRecord) -> str:
    return f"{record.job_id}:{record.change_id}"


def _bad(message: str) -> GraphError:
    return GraphError(400, "invalidRequest", f"$filter: {message}")


def _split_and(text: str) -> list[str]:
    """Split on ``and`` outside quoted strings."""
    parts: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(text):
        if text[i] == "'":
            quoted = not quoted
        elif not quoted:
            match = _AND.match(text, i)
            if match:
                parts.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    if quoted:
        raise _bad("a quoted string is not closed")
    parts.append(text[start:])
    return parts


def _clause(text: str) -> Predicate:
    match = _CLAUSE.fullmatch(text)
    if match is None:
        raise _bad(f"cannot read {text.strip()!r}; expected <property> <operator> <value>")
    prop, op, raw = match["prop"], match["op"].lower(), match["value"]
    name = prop.lower()
    quoted = raw.startswith("'")
    value = raw[1:-1].replace("''", "'") if quoted else raw
    if name in _STRINGS:
        if op not in _STRING_OPS:
            raise _bad(f"{prop} supports eq and ne, not {match['op']!r}")
        if not quoted:
            raise _bad(f"{prop} compares with a quoted string, not {raw!r}")
        get = _STRINGS[name]
        wanted = value.lower()
        if op == "eq":
            return lambda r: get(r).lower() == wanted
        return lambda r: get(r).lower() != wanted
    if name in _DATES:
        if op not in _DATE_OPS:
            raise _bad(f"{prop} supports eq, ne, ge, gt, le and lt, not {match['op']!r}")
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{raw!r} is not a date-time such as 2024-01-31T00:00:00Z") from None
        if when.tzinfo is None:
            raise _bad(f"{raw!r} needs a time zone (e.g. a trailing Z)")
        compare: dict[str, Callable[[datetime], bool]] = {
            "eq": lambda t: t == when,
            "ne": lambda t: t != when,
            "ge": lambda t: t >= when,
            "gt": lambda t: t > when,
            "le": lambda t: t <= when,
            "lt": lambda t: t < when,
        }
        test = compare[op]
        return lambda r: test(r.time)
    known = ", ".join(["jobId", "cycleId", "changeId", "action", "provisioningAction"])
    raise _bad(
        f"cannot filter on {prop!r}; known: {known}, status, "
        "provisioningStatusInfo/status, activityDateTime"
    )


def parse_filter(text: str | None) -> tuple[list[Predicate], str | None]:
    """The clauses of ``$filter`` (all must hold) and the job id it names with ``eq``, if any."""
    if text is None:
        return [], None
    if not text.strip():
        raise _bad("the filter is empty")
    predicates: list[Predicate] = []
    job_id: str | None = None
    for part in _split_and(text):
        predicates.append(_clause(part))
        match = _CLAUSE.fullmatch(part)
        assert match is not None
        if match["prop"].lower() == "jobid" and match["op"].lower() == "eq":
            job_id = match["value"][1:-1].replace("''", "'")
    return predicates, job_id


def parse_top(text: str | None) -> int:
    if text is None:
        return DEFAULT_TOP
    if not re.fullmatch(r"[0-9]{1,7}", text.strip()) or not 1 <= int(text) <= MAX_TOP:
        raise GraphError(
            400, "invalidRequest", f"$top must be a whole number from 1 to {MAX_TOP}, not {text!r}"
        )
    return int(text)


def encode_token(record: LogRecord) -> str:
    key = json.dumps([format_datetime(record.time), record_id(record)])
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    """A $skiptoken from encode_token; anything else (which the client controls) is a 400.
    json.loads raises RecursionError on deeply nested text and ValueError on huge numbers,
    besides its JSONDecodeError: every failure here is the token's, never a 500."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, rid = json.loads(raw)
        moment = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        if not isinstance(rid, str) or moment.tzinfo is None:
            raise ValueError(rid)
    except (ValueError, TypeError, binascii.Error, RecursionError, OverflowError):
        raise GraphError(400, "invalidRequest", "$skiptoken is not valid") from None
    return moment, rid


Batches = Iterable[tuple[datetime | None, list[LogRecord]]]
_NEWEST = datetime.max.replace(tzinfo=UTC)


def page(
    logs: Sequence[Batches],
    predicates: Sequence[Predicate],
    top: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[LogRecord], LogRecord | None]:
    """One page, newest first; the second item is the page's last record when more follow.

    ``logs`` are the jobs' StateStore.log_batches, merged by their bounds: once the page's
    ``top + 1`` best records are all newer than the next batch's bound, no later batch can
    change the page, and the rest of the log is never read.
    """
    best: list[tuple[tuple[datetime, str], int, LogRecord]] = []  # a min-heap, top + 1 long
    merged = heapq.merge(
        *(iter(one) for one in logs), key=lambda batch: batch[0] or _NEWEST, reverse=True
    )
    n = 0
    for bound, batch in merged:
        if len(best) > top and bound is not None and best[0][0][0] > bound:
            break
        for record in batch:
            key = (record.time, record_id(record))
            if (after is not None and key >= after) or not all(p(record) for p in predicates):
                continue
            n += 1
            heapq.heappush(best, (key, n, record))
            if len(best) > top + 1:
                heapq.heappop(best)
    chosen = [record for _, _, record in sorted(best, reverse=True)]
    if len(chosen) > top:
        return chosen[:top], chosen[top - 1]
    return chosen, None


_REASONS = {"RedundantExport": "the target already matches the source"}


def _error_information(error: str | None) -> dict[str, Any] | None:
    if error is None:
        return None
    code, sep, reason = error.partition(": ")
    if error.isidentifier():  # a skip reason such as RedundantExport
        code, reason = error, _REASONS.get(error, error)
    elif not sep or not code.isidentifier():
        code, reason = "", error
    return {
        "errorCode": code or None,
        "reason": reason,
        "additionalDetails": None,
        "errorCategory": None,
        "recommendedAction": None,
    }


def object_types(record: LogRecord) -> tuple[str | None, str | None]:
    """The mapping key ``rule:sourceObject:targetObject`` as (source type, target type)."""
    parts = record.mapping.split(":")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else (None, None)


def summary(record: LogRecord) -> dict[str, Any]:
    """provisioningObjectSummary as far as a LogRecord carries (attribute names, no values)."""
    source_type, target_type = object_types(record)
    return {
        "id": record_id(record),
        "activityDateTime": format_datetime(record.time),
        "jobId": record.job_id,
        "cycleId": record.cycle_id,
        "changeId": record.change_id,
        "provisioningAction": _action(record.action),
        "provisioningStatusInfo": {
            "status": record.status,
            "errorInformation": _error_information(record.error),
        },
        "sourceIdentity": {"id": record.anchor, "identityType": source_type},
        "targetIdentity": {"id": record.target_ref, "identityType": target_type},
        "modifiedProperties": [
            {"displayName": name, "oldValue": None, "newValue": None} for name in record.attributes
        ],
    }
