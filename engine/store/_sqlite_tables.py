"""What every group of the SQLite store's tables shares: the one connection, and the store's
lock around every statement (one connection serves all threads of the process)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from typing import Any


class LockedTables:
    """Statements on the store's connection, each under the store's lock."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, tuple(params))


class StoreTables(LockedTables):
    """A group of tables the store hands its connection and lock to."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock
