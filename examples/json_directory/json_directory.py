"""A directory kept in one JSON file, as a connector: a Source and a Target (connectors.base).

The file holds, per object type, every object under its anchor with the change number
(``seq``) of its last change; a deleted object stays as a tombstone (``"attributes": null``)
so that a delta read can report it. The watermark of a delta is the highest change number
seen: ``read(type, "41")`` returns, in change order, each object changed after change 41. An
initial read walks the anchors in sorted order; its pages' watermarks (``f:<seq>:<anchor>``)
resume it after that anchor, and its last page's watermark is the change number at which it
began, so whatever changed during the read follows as a delta.

Each write loads the file, changes it and replaces it whole (atomically, so a reader never
sees half a file): fine for an example and a few thousand objects, with one JsonDirectory
writing to a file at a time. Binary values are stored as ``{"$b64": ...}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors.base import (
    Attributes,
    Capability,
    Change,
    Delta,
    ObjectError,
    ObjectGone,
    Page,
    Scalar,
    UnreachableError,
    Value,
    ValueDelta,
    WatermarkExpired,
    as_list,
)


class JsonDirectory:
    """Users and groups in a JSON file; ``put``/``remove`` are its administration tool."""

    capabilities = frozenset(
        {
            Capability.DELTA,
            Capability.DELETE,
            Capability.SOFT_DELETE,
            Capability.RENAME,
            Capability.REFERENCES,
            Capability.VALUE_DELTAS,
        }
    )

    def __init__(
        self,
        path: str | Path,
        object_types: Sequence[str] = ("User", "Group"),
        *,
        create: bool = False,
    ) -> None:
        """``create=True`` starts an empty directory if the file does not exist; otherwise a
        missing file is unreachable (never an empty directory whose objects would be deleted
        from the target)."""
        self.path = Path(path)
        self._types = list(object_types)
        self._lock = threading.Lock()
        if create and not self.path.exists():
            self._save({"seq": 0, "objects": {}})

    # ------------------------------------------------------------------ administration
    def put(self, object_type: str, anchor: str, attributes: Attributes) -> None:
        """Create or replace an object, as an administrator editing the file would."""
        with self._change() as data:
            self._set(data, object_type, anchor, _clean(attributes))

    def remove(self, object_type: str, anchor: str) -> None:
        """Delete an object, as an administrator editing the file would."""
        with self._change() as data:
            if self._attributes(data, object_type, anchor) is not None:
                self._set(data, object_type, anchor, None)

    # ----------------------------------------------------------------------- source side
    def object_types(self) -> Sequence[str]:
        return list(self._types)

    def validate(self) -> None:
        self._load()

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        data = self._load()  # before the generator starts: a bad call fails at once
        objects = self._objects(data, object_type)
        if watermark is None or watermark.startswith("f:"):
            return _read_all(objects, data["seq"], watermark, page_size)
        if not watermark.isdigit():
            raise ObjectError(f"not a JSON directory watermark: {watermark!r}")
        if int(watermark) > data["seq"]:  # the file was replaced by an older copy
            raise WatermarkExpired(f"watermark {watermark} is past change {data['seq']}")
        return _read_delta(objects, int(watermark), page_size)

    def get(self, object_type: str, anchor: str) -> dict[str, Value] | None:
        return self._attributes(self._load(), object_type, anchor)

    # ----------------------------------------------------------------------- target side
    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        name, wanted = attribute.lower(), _fold(value)
        refs = [
            anchor
            for anchor, entry in self._objects(self._load(), object_type).items()
            if entry["attributes"] is not None
            and any(
                n.lower() == name and wanted in map(_fold, as_list(v))
                for n, v in _decode(entry["attributes"]).items()
            )
        ]
        if len(refs) > 1:
            raise ObjectError(f"{len(refs)} {object_type} objects have {attribute}={value!r}")
        return refs[0] if refs else None

    def create(self, object_type: str, attributes: Attributes) -> str:
        ref = str(uuid.uuid4())
        with self._change() as data:
            self._set(data, object_type, ref, _clean(attributes))
        return ref

    def update(self, object_type: str, ref: str, delta: Delta) -> None:
        with self._change() as data:
            current = self._attributes(data, object_type, ref)
            if current is None:
                raise ObjectGone(f"{object_type} {ref} does not exist")
            merged: dict[str, Value | None] = dict(current)
            for name, value in delta.items():
                # attribute names without case, as find matches them
                old = merged.pop(next((n for n in merged if n.lower() == name.lower()), name), None)
                if isinstance(value, ValueDelta):
                    gone = set(map(_fold, value.remove))
                    kept = [v for v in as_list(old) if _fold(v) not in gone]
                    present = set(map(_fold, kept))
                    merged[name] = kept + [v for v in value.add if _fold(v) not in present]
                else:
                    merged[name] = value
            self._set(data, object_type, ref, _clean(merged))

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        with self._change() as data:
            current = self._attributes(data, object_type, ref)
            if current is not None:
                self._set(data, object_type, ref, {**current, "active": False} if soft else None)

    # ------------------------------------------------------------------------- the file
    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # missing, unreadable, not JSON
            raise UnreachableError(f"cannot read {self.path}: {error}") from error
        return data

    @contextlib.contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """The file's content to change, under the lock; saved if no error was raised."""
        with self._lock:
            data = self._load()
            yield data
            self._save(data)

    def _save(self, data: dict[str, Any]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            partial.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as error:
            raise UnreachableError(f"cannot write {self.path}: {error}") from error

    def _objects(self, data: dict[str, Any], object_type: str) -> dict[str, Any]:
        if object_type not in self._types:
            raise ObjectError(f"unknown object type {object_type!r}")
        objects: dict[str, Any] = data["objects"].setdefault(object_type, {})
        return objects

    def _attributes(
        self, data: dict[str, Any], object_type: str, anchor: str
    ) -> dict[str, Value] | None:
        entry = self._objects(data, object_type).get(anchor)
        if entry is None or entry["attributes"] is None:
            return None
        return _decode(entry["attributes"])

    def _set(
        self, data: dict[str, Any], object_type: str, anchor: str, attributes: Attributes | None
    ) -> None:
        data["seq"] += 1
        encoded = None if attributes is None else _encode(attributes)
        self._objects(data, object_type)[anchor] = {"seq": data["seq"], "attributes": encoded}


def _read_all(
    objects: dict[str, Any], seq: int, watermark: str | None, page_size: int
) -> Iterator[Page]:
    start, after = seq, ""
    if watermark is not None:
        _, begun, after = watermark.split(":", 2)
        start = int(begun)
    anchors = sorted(a for a, e in objects.items() if e["attributes"] is not None and a > after)
    if not anchors:
        yield Page((), str(start))
    for position in range(0, len(anchors), page_size):
        chunk = anchors[position : position + page_size]
        changes = [Change("upsert", a, _decode(objects[a]["attributes"])) for a in chunk]
        last = position + page_size >= len(anchors)
        next_watermark = str(start) if last else f"f:{start}:{chunk[-1]}"
        yield Page(changes, next_watermark, remaining=len(anchors) - position)


def _read_delta(objects: dict[str, Any], after: int, page_size: int) -> Iterator[Page]:
    changed = sorted((e["seq"], a) for a, e in objects.items() if e["seq"] > after)
    if not changed:
        yield Page((), str(after))
    for position in range(0, len(changed), page_size):
        chunk = changed[position : position + page_size]
        changes = [
            Change("delete", a)
            if objects[a]["attributes"] is None
            else Change("upsert", a, _decode(objects[a]["attributes"]))
            for _, a in chunk
        ]
        yield Page(changes, str(chunk[-1][0]))


def _fold(value: Scalar) -> Scalar:
    """Text compared without case, as directories match names."""
    return value.lower() if isinstance(value, str) else value


def _clean(attributes: Attributes) -> dict[str, Value]:
    """Without the attributes that have no value (None clears, and so does an empty list)."""
    return {k: v for k, v in attributes.items() if v is not None and v != []}


def _encode(attributes: Attributes) -> dict[str, Any]:
    def scalar(value: Scalar) -> Any:
        return {"$b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value

    return {
        name: [scalar(v) for v in value] if isinstance(value, list) else scalar(value)
        for name, value in attributes.items()
        if value is not None
    }


def _decode(stored: dict[str, Any]) -> dict[str, Value]:
    def scalar(value: Any) -> Any:
        return base64.b64decode(value["$b64"]) if isinstance(value, dict) else value

    return {
        name: [scalar(v) for v in value] if isinstance(value, list) else scalar(value)
        for name, value in stored.items()
    }
