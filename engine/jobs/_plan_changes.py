"""A plan's changes: the writes its cycle recorded, one planned change per object.

A create and the updates the same cycle sent to the object it made (a reference resolved in
a second pass) are one create; an update's old values are what the target held when the plan
read it, and its new ones those values with every recorded delta applied. Which source
object a write is for is what the plan's cycle logged for the ref. Digests of the values
read are keyed, so whoever reads a plan cannot test guesses of a secret value against them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import ValueDelta
from engine.jobs._plan_show import lookup, masked_changes, name_of
from engine.jobs._plan_targets import (
    PLACEHOLDER,
    RecordingSource,
    RecordingTarget,
    apply_delta,
    digest,
)
from engine.model.plan import PlannedChange
from engine.store import LogRecord

_WRITES = {"Create", "Update", "Delete", "Disable"}


#: the digest key of applications without secrets (jobs given their connectors): this
#: process's own, so their plans apply within the process that made them
_PROCESS_KEY = os.urandom(32)


def digest_key(secrets: Mapping[str, str]) -> bytes:
    """The key of the plan's value digests: the application's secrets, so a digest cannot be
    used to guess a short secret value (a password) by whoever reads the plan, and a plan
    made before a restart of the daemon still applies after it."""
    if not secrets:
        return _PROCESS_KEY
    return hashlib.sha256(repr(sorted(secrets.items())).encode()).digest()


def _keyed(key: bytes, values: Any) -> str | None:
    if values is None:
        return None
    return hmac.new(key, digest(dict(values)).encode(), hashlib.sha256).hexdigest()[:16]


class Changes:
    """The recorded writes as one planned change per object, in the order the cycle wrote."""

    def __init__(
        self,
        target: RecordingTarget,
        source: RecordingSource,
        logs: Sequence[LogRecord],
        sources: Mapping[str, str],
        key: bytes,
        secrets: Sequence[str],
    ) -> None:
        self._target = target
        self._source = source
        self._key = key
        self._secrets = secrets
        self._sources = sources
        self._by_ref: dict[str, LogRecord] = {}
        for record in logs:
            if record.action in _WRITES and record.target_ref and record.status != "failure":
                self._by_ref.setdefault(record.target_ref, record)

    def build(self) -> list[PlannedChange]:
        objects: dict[tuple[str, str], dict[str, Any]] = {}
        for write in self._target.writes:
            key = (write.object_type, write.ref)
            entry = objects.get(key)
            if write.kind == "create":
                objects[key] = {"action": "create", "new": dict(write.values), "old": {}}
            elif write.kind == "delete":
                action = "disable" if write.soft else "delete"
                old = self._target.before.get(key)
                objects[key] = {"action": action, "new": {}, "old": dict(old or {})}
            else:
                if entry is None:
                    old = self._target.before.get(key)
                    entry = objects[key] = {"action": "update", "new": {}, "old": dict(old or {})}
                new = entry["new"]
                for name, change in write.values.items():
                    current = new.get(name, lookup(entry["old"], name))
                    new[name] = apply_delta(current, change)
                    if isinstance(change, ValueDelta):
                        entry.setdefault("deltas", {}).setdefault(name, []).append(change)
        return [self._change(t, ref, e) for (t, ref), e in objects.items()]

    def _change(self, object_type: str, ref: str, entry: dict[str, Any]) -> PlannedChange:
        record = self._by_ref.get(ref)
        anchor = record.anchor if record else None
        source_type = self._sources.get(record.mapping) if record else None
        seen = self._source.seen.get((source_type or "", anchor or "")) if anchor else None
        old = entry["old"]
        changes = masked_changes(
            entry["action"], old, entry["new"], entry.get("deltas", {}), self._secrets
        )
        before = (
            None if ref.startswith(PLACEHOLDER) else self._target.before.get((object_type, ref))
        )
        return PlannedChange(
            action=entry["action"],
            object_type=object_type,
            source_object_type=source_type,
            anchor=anchor,
            display_name=name_of(seen) or name_of(old) or anchor,
            target_id=ref,
            changes=changes,
            source_digest=_keyed(self._key, seen),
            target_digest=_keyed(self._key, before),
        )
