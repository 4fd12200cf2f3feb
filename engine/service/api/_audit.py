"""``GET /auditLogs/provisioning``: the engine's LogRecords as Graph's provisioningObjectSummary,
filtered by a subset of OData's ``$filter`` (_audit_filter), and keyset paging with an opaque
skip token.

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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.model.converter import format_datetime
from engine.service.api._audit_filter import Predicate, graph_action, object_types, parse_filter
from engine.service.api._errors import GraphError
from engine.store.base import LogRecord

__all__ = [
    "Predicate",
    "decode_token",
    "encode_token",
    "object_types",
    "page",
    "parse_filter",
    "parse_top",
    "record_id",
    "summary",
]

DEFAULT_TOP = 100
MAX_TOP = 1000


def record_id(record: LogRecord) -> str:
    return f"{record.job_id}:{record.change_id}"


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


def _identity(name: str | None, id_: str | None, kind: str | None) -> dict[str, Any]:
    return {"id": id_, "displayName": name, "identityType": kind}


def summary(record: LogRecord) -> dict[str, Any]:
    """provisioningObjectSummary as far as a LogRecord carries: both objects' names, and the
    changed attributes' old and new values as the cycle rendered them (masked, bounded);
    records stored before they had names show attribute names with null values."""
    source_type, target_type = object_types(record)
    source = _identity(record.source_name, record.anchor, source_type)
    if record.source_key is not None:
        source["details"] = {"identifier": record.source_key}
    shown = record.changes()  # past MAX_ATTRIBUTES (and in records from before): names only
    modified = [{"displayName": n, "oldValue": o, "newValue": v} for n, o, v in shown] + [
        {"displayName": name, "oldValue": None, "newValue": None}
        for name in record.attributes[len(shown) :]
    ]
    return {
        "id": record_id(record),
        "activityDateTime": format_datetime(record.time),
        "jobId": record.job_id,
        "cycleId": record.cycle_id,
        "changeId": record.change_id,
        "provisioningAction": graph_action(record.action),
        "provisioningStatusInfo": {
            "status": record.status,
            "errorInformation": _error_information(record.error),
        },
        "sourceIdentity": source,
        "targetIdentity": _identity(record.target_name, record.target_ref, target_type),
        "modifiedProperties": modified,
    }
