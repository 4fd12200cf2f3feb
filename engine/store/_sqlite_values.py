"""Large multi-valued exported values kept one row per value, so a change costs its size.

A link keeps the JSON of the values last exported (ARCHITECTURE rule 7). For a group of
50,000 members that JSON is ~2 MB, and rewriting it because one member joined would make every
membership change cost the whole group in the state file (and its WAL). So the SQLite store
keeps a large list (``LARGE`` values or more, all text, sorted and unique: what reference
attributes resolve to) in ``link_values`` rows, leaves ``{"$rows": n}`` in its place in the
stored JSON, and writes only the rows that changed. Reading a link puts the list back, sorted
by value (SQLite's BINARY order is code point order, as Python's), so the JSON read back is
the one written: the cycle's "unchanged?" test stays a string comparison.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

import orjson

from engine.directory_values import UNKNOWN

#: lists at least this long go to rows; shorter ones stay inline (a row costs more than a value)
LARGE = 64
#: JSON shorter than this cannot hold a LARGE list worth moving: skip the parse
_MIN_TEXT = LARGE * 4
_MARK = '{"$rows":'


class SetCache:
    """Sets of values this connection last read or wrote (a large group's member rows, its
    reverse-index rows), so a group that changes cycle after cycle costs its change, not a
    SELECT of all its rows each time. Trusted only while no other connection has written the
    database (``PRAGMA data_version`` moves then); cleared on rollback; a few entries only.
    """

    def __init__(self, db: sqlite3.Connection, size: int = 8) -> None:
        self._db = db
        self._size = size
        self._sets: dict[tuple[Any, ...], Any] = {}
        self._version = self._data_version()

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def get(self, key: tuple[Any, ...]) -> Any:
        version = self._data_version()
        if version != self._version:
            self._sets.clear()
            self._version = version
        return self._sets.get(key)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        self._sets.pop(key, None)
        self._sets[key] = value
        while len(self._sets) > self._size:
            del self._sets[next(iter(self._sets))]

    def drop(self, key: tuple[Any, ...]) -> None:
        self._sets.pop(key, None)

    def clear(self) -> None:
        self._sets.clear()


def _movable(value: Any) -> bool:
    if not isinstance(value, list) or len(value) < LARGE:
        return False
    if not all(v.__class__ is str for v in value):
        return False
    return all(a < b for a, b in itertools.pairwise(value))  # sorted and unique


def store(
    db: sqlite3.Connection,
    scope: int,
    anchor: str,
    exported: str,
    had_rows: bool,
    cache: SetCache,
) -> str:
    """The JSON to keep in the links row; large lists written as rows (only the difference
    from the rows already there). ``had_rows``: whether the scope may hold rows at all."""
    key = ("values", scope, anchor)
    if len(exported) < _MIN_TEXT:
        if had_rows:
            db.execute("DELETE FROM link_values WHERE scope=? AND anchor=?", (scope, anchor))
            cache.drop(key)
        return exported
    prefix = UNKNOWN if exported.startswith(UNKNOWN) else ""
    values = orjson.loads(exported[len(prefix) :])
    large = {k: v for k, v in values.items() if _movable(v)} if isinstance(values, dict) else {}
    cached = cache.get(key) if had_rows else None
    existing: dict[str, set[str]] = dict(cached) if cached is not None else {}
    if had_rows and cached is None:
        for attribute, value in db.execute(
            "SELECT attribute, value FROM link_values WHERE scope=? AND anchor=?", (scope, anchor)
        ):
            existing.setdefault(attribute, set()).add(value)
    written: dict[str, set[str]] = {}
    for attribute, new in large.items():
        old = existing.pop(attribute, set())
        wanted = set(new)
        db.executemany(
            "DELETE FROM link_values WHERE scope=? AND anchor=? AND attribute=? AND value=?",
            [(scope, anchor, attribute, v) for v in old - wanted],
        )
        db.executemany(
            "INSERT OR IGNORE INTO link_values VALUES (?, ?, ?, ?)",
            [(scope, anchor, attribute, v) for v in new if v not in old],
        )
        values[attribute] = {"$rows": len(new)}
        written[attribute] = wanted
    for attribute in existing:  # no longer large, or gone: its rows go
        db.execute(
            "DELETE FROM link_values WHERE scope=? AND anchor=? AND attribute=?",
            (scope, anchor, attribute),
        )
    if not large:
        cache.drop(key)
        return exported
    cache.put(key, written)
    return prefix + orjson.dumps(values).decode()


def load(
    db: sqlite3.Connection, scope: int, anchor: str, stored: str, cache: SetCache | None = None
) -> str:
    """The exported JSON as written, large lists put back from their rows."""
    if _MARK not in stored:
        return stored
    prefix = UNKNOWN if stored.startswith(UNKNOWN) else ""
    values = orjson.loads(stored[len(prefix) :])
    read: dict[str, set[str]] = {}
    for attribute, value in values.items():
        if isinstance(value, dict) and "$rows" in value:
            rows = [
                v
                for (v,) in db.execute(
                    "SELECT value FROM link_values WHERE scope=? AND anchor=? AND attribute=? "
                    "ORDER BY value",
                    (scope, anchor, attribute),
                )
            ]
            values[attribute] = rows
            read[attribute] = set(rows)
    if cache is not None:
        cache.put(("values", scope, anchor), read)
    return prefix + orjson.dumps(values).decode()


def has_rows(db: sqlite3.Connection, scope: int) -> bool:
    return (
        db.execute("SELECT 1 FROM link_values WHERE scope=? LIMIT 1", (scope,)).fetchone()
        is not None
    )


def drop(db: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    """Forget the value rows of unlinked objects."""
    db.executemany("DELETE FROM link_values WHERE scope=? AND anchor=?", rows)
