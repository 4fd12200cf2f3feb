"""A durable, file-backed directory (source and target) for tests that kill processes.

Same semantics as :class:`connectors.memory.MemoryDirectory`, kept in one SQLite file so that
several processes can share it and a SIGKILL never loses or half-applies a write: every write
is its own committed transaction (WAL; ``synchronous=NORMAL`` keeps every committed transaction
across a process crash, which is the failure these tests inject). Attributes are stored as
JSON; bytes are tagged as ``{"$b64": ...}``.

The watermark is the sequence number of the change log. An initial read walks the anchors in
sorted order; its watermark ``f:<log seq at start>:<last anchor>`` resumes it mid-way and it
ends on the log seq seen when it began, so changes made during the read follow as a delta.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.base import (
    AmbiguousMatch,
    Attributes,
    Capability,
    Change,
    ObjectError,
    ObjectGone,
    Page,
    Scalar,
    Value,
    as_list,
)
from engine.clock import SystemClock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    type TEXT NOT NULL, anchor TEXT NOT NULL, attrs TEXT NOT NULL, PRIMARY KEY (type, anchor));
CREATE TABLE IF NOT EXISTS changelog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, anchor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changelog_by_type ON changelog (type, seq);
CREATE TABLE IF NOT EXISTS refs (n INTEGER PRIMARY KEY AUTOINCREMENT);
"""


def _encode(attributes: Attributes) -> str:
    def scalar(value: Scalar) -> Any:
        return {"$b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value

    clean: dict[str, Any] = {}
    for name, value in attributes.items():
        if value is None or value == []:
            continue
        clean[name] = [scalar(v) for v in value] if isinstance(value, list) else scalar(value)
    return json.dumps(clean, sort_keys=True)


def _decode(text: str) -> dict[str, Value]:
    def scalar(value: Any) -> Any:
        return base64.b64decode(value["$b64"]) if isinstance(value, dict) else value

    return {
        name: [scalar(v) for v in value] if isinstance(value, list) else scalar(value)
        for name, value in json.loads(text).items()
    }


def _key(value: Scalar) -> Scalar:
    return value.lower() if isinstance(value, str) else value


class SqliteDirectory:
    """``type -> anchor -> attributes`` in a SQLite file, plus a change log.

    Test writers shape it with ``put``/``remove`` (logged like any source change) and read it
    with ``get``/``list``. ``write_delay`` (seconds) is slept after each committed write, like
    the answer of a remote directory still on its way: a kill then often lands between a write
    and the engine's record of it.
    """

    capabilities = frozenset(
        {
            Capability.DELTA,
            Capability.DELETE,
            Capability.SOFT_DELETE,
            Capability.RENAME,
            Capability.REFERENCES,
        }
    )

    def __init__(
        self,
        path: str | Path,
        object_types: Iterable[str] = ("User", "Group"),
        id_prefix: str = "t",
        *,
        soft_delete_attribute: str = "active",
    ) -> None:
        self.path = Path(path)
        self._types = list(object_types)
        self._id_prefix = id_prefix
        self.soft_delete_attribute = soft_delete_attribute
        self.write_delay = 0.0
        # one call at a time, from any thread: the engine may write from a pool of threads
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteDirectory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------- test-writer interface
    def put(self, object_type: str, anchor: str, attributes: Attributes) -> None:
        """Create or replace an object as a source change."""
        self._table(object_type)
        with self._write():
            self._store(object_type, anchor, _encode(attributes))

    def remove(self, object_type: str, anchor: str) -> None:
        """Delete an object as a source change."""
        self._table(object_type)
        with self._write():
            self._drop(object_type, anchor)

    def list(self, object_type: str) -> dict[str, dict[str, Value]]:
        self._table(object_type)
        with self._lock:
            rows = self._db.execute(
                "SELECT anchor, attrs FROM objects WHERE type = ? ORDER BY anchor", (object_type,)
            ).fetchall()
        return {anchor: _decode(text) for anchor, text in rows}

    def last_seq(self) -> int:
        """The change log's sequence number now: how many writes this directory has seen."""
        row = self._db.execute("SELECT MAX(seq) FROM changelog").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------------ source side
    def object_types(self) -> Sequence[str]:
        return list(self._types)

    def validate(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        self._table(object_type)
        if watermark is None or watermark.startswith("f:"):
            return self._read_all(object_type, watermark, page_size)
        try:
            after = int(watermark)
        except ValueError:
            raise ObjectError(f"not a sqlite directory watermark: {watermark!r}") from None
        return self._read_delta(object_type, after, page_size)

    def get(self, object_type: str, anchor: str) -> dict[str, Value] | None:
        """The object's attributes now, or None."""
        self._table(object_type)
        with self._lock:
            row = self._db.execute(
                "SELECT attrs FROM objects WHERE type = ? AND anchor = ?", (object_type, anchor)
            ).fetchone()
        return None if row is None else _decode(row[0])

    def _read_all(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        if watermark is None:
            start, after = self.last_seq(), ""
        else:
            _, seq, after = watermark.split(":", 2)
            start = int(seq)
        while True:
            rows = self._db.execute(
                "SELECT anchor, attrs FROM objects WHERE type = ? AND anchor > ? "
                "ORDER BY anchor LIMIT ?",
                (object_type, after, page_size + 1),
            ).fetchall()
            chunk = rows[:page_size]
            changes = [Change("upsert", anchor, _decode(text)) for anchor, text in chunk]
            if len(rows) <= page_size:
                yield Page(changes, str(start))
                return
            after = chunk[-1][0]
            yield Page(changes, f"f:{start}:{after}")

    def _read_delta(self, object_type: str, after: int, page_size: int) -> Iterator[Page]:
        while True:
            self._db.execute("BEGIN")
            try:
                log = self._db.execute(
                    "SELECT seq, anchor FROM changelog WHERE type = ? AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (object_type, after, page_size),
                ).fetchall()
                latest = list(dict.fromkeys(anchor for _, anchor in reversed(log)))[::-1]
                current = {anchor: self.get(object_type, anchor) for anchor in latest}
            finally:
                self._db.execute("COMMIT")
            if not log:
                yield Page((), str(after))
                return
            after = log[-1][0]
            yield Page(
                [
                    Change("delete", a) if attrs is None else Change("upsert", a, attrs)
                    for a, attrs in current.items()
                ],
                str(after),
            )
            if len(log) < page_size:
                return

    # ------------------------------------------------------------------------ target side
    def find(self, object_type: str, attribute: str, value: Scalar) -> str | None:
        wanted, lowered = _key(value), attribute.lower()
        refs = []
        for ref, attributes in self.list(object_type).items():
            for name, candidate in attributes.items():
                if name.lower() == lowered and wanted in (_key(v) for v in as_list(candidate)):
                    refs.append(ref)
                    break
        if len(refs) > 1:
            raise AmbiguousMatch(
                f"{len(refs)} {object_type} objects have {attribute}={value!r}: ambiguous"
            )
        return refs[0] if refs else None

    def create(self, object_type: str, attributes: Attributes) -> str:
        self._table(object_type)
        with self._write():
            while True:
                n = self._db.execute("INSERT INTO refs DEFAULT VALUES").lastrowid
                ref = f"{self._id_prefix}{n:08d}"
                if self.get(object_type, ref) is None:
                    break
            self._store(object_type, ref, _encode(attributes))
        return ref

    def update(self, object_type: str, ref: str, delta: Attributes) -> None:
        self._table(object_type)
        with self._write():
            current = self.get(object_type, ref)
            if current is None:
                raise ObjectGone(f"{object_type} {ref} does not exist")
            names = {name.lower(): name for name in current}
            for name, value in delta.items():
                current.pop(names.get(name.lower(), name), None)
                if value is not None and value != []:
                    current[name] = value
            self._store(object_type, ref, _encode(current))

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        self._table(object_type)
        with self._write():
            current = self.get(object_type, ref)
            if current is None:
                return
            if soft:
                current[self.soft_delete_attribute] = False
                self._store(object_type, ref, _encode(current))
            else:
                self._drop(object_type, ref)

    # ---------------------------------------------------------------------------- internals
    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on an exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        if self.write_delay:
            SystemClock().sleep(self.write_delay)

    def _table(self, object_type: str) -> None:
        if object_type not in self._types:
            raise ObjectError(f"unknown object type {object_type!r}")

    def _store(self, object_type: str, anchor: str, text: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO objects (type, anchor, attrs) VALUES (?, ?, ?)",
            (object_type, anchor, text),
        )
        self._log(object_type, anchor)

    def _drop(self, object_type: str, anchor: str) -> None:
        gone = self._db.execute(
            "DELETE FROM objects WHERE type = ? AND anchor = ?", (object_type, anchor)
        ).rowcount
        if gone:
            self._log(object_type, anchor)

    def _log(self, object_type: str, anchor: str) -> None:
        self._db.execute(
            "INSERT INTO changelog (type, anchor) VALUES (?, ?)", (object_type, anchor)
        )
