"""A throwaway copy of a whole store, for a cycle that must change nothing (a plan).

A plan runs the real cycle code against this copy, so the job's links, escrows, staged
deletes, watermarks and log stay exactly as they were whatever the cycle commits. The copy
lives in memory and is dropped with the plan. Leases are not copied: a plan holds none, and
one held by a running cycle must not make the copy refuse the plan's commits.
"""

from __future__ import annotations

import copy

from engine.store.base import StateStore
from engine.store.memory import MemoryStateStore
from engine.store.sqlite import SqliteStateStore

__all__ = ["snapshot"]


def snapshot(store: StateStore) -> StateStore:
    """An in-memory copy of ``store`` (SQLite's online backup, a consistent read of the file;
    the memory store's dicts deep-copied under its lock); TypeError for another store."""
    if isinstance(store, SqliteStateStore):
        return _sqlite_copy(store)
    if isinstance(store, MemoryStateStore):
        return _memory_copy(store)
    raise TypeError(f"cannot copy a {type(store).__name__} for a plan")


def _sqlite_copy(store: SqliteStateStore) -> SqliteStateStore:
    copied = SqliteStateStore(":memory:")
    with store._lock:  # the store package: its own private parts
        store._db.backup(copied._db)
    copied._db.execute("DELETE FROM leases")
    return copied


def _memory_copy(store: MemoryStateStore) -> MemoryStateStore:
    copied = MemoryStateStore()
    with store._lock:  # the store package: its own private parts
        for name in ("_applications", "_secrets", "_jobs", "_state", "_tokens", "_value_key"):
            setattr(copied, name, copy.deepcopy(getattr(store, name)))
    return copied
