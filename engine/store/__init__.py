"""State stores: the protocol, the in-memory store and the embedded SQLite default.

What lives here: ``base`` (the StateStore protocol and what it persists), ``memory``,
``sqlite`` with its private parts (``_migrations``, ``_sqlite_jobs``, ``_sqlite_held``,
``_sqlite_logs``, ``_sqlite_recovery``, ``_sqlite_values``, ``_sqlite_text``) and
``inspect`` (a read-only look at a state file, for the CLI) and ``snapshot`` (an in-memory
copy of a store, for a plan).

What it may import: the pure core (``engine.model``, ``engine.directory_values``, ...) and
``connectors.base``'s value types; never ``engine.cycle``, ``engine.jobs`` or
``engine.service``.
"""

from engine.directory_values import decode_values, encode_values
from engine.store.base import (
    Checkpoint,
    Escrow,
    JobRow,
    Link,
    LogRecord,
    StagedDelete,
    StateStore,
)
from engine.store.memory import MemoryStateStore
from engine.store.sqlite import SqliteStateStore

__all__ = [
    "Checkpoint",
    "Escrow",
    "JobRow",
    "Link",
    "LogRecord",
    "MemoryStateStore",
    "SqliteStateStore",
    "StagedDelete",
    "StateStore",
    "decode_values",
    "encode_values",
]
