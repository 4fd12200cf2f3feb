"""State stores: the protocol, the in-memory store and the embedded SQLite default."""

from engine.store.base import (
    Checkpoint,
    Escrow,
    JobRow,
    Link,
    LogRecord,
    StagedDelete,
    StateStore,
    decode_values,
    encode_values,
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
