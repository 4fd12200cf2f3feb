"""The SQLite store's own random key (table ``store_keys``, schema 7), and the one-time
sealing of the passwords that links kept in clear before the file had one.

The key is made on first use by whichever process asks first (INSERT OR IGNORE: processes
sharing the file agree on it), so a file whose mappings write no password never gets one.
It lives in the file it keys: a copy of the file (a backup, a plan's snapshot) digests the
same value the same way, and a digest tells nothing without the file (engine.password_values).
"""

from __future__ import annotations

import os
import sqlite3

import orjson

from engine.directory_values import UNKNOWN, decode_values, encode_values
from engine.password_values import sealed_exported

#: the schema version whose migration adds ``store_keys``: links are sealed as it is applied
SCHEMA = 7
_VALUES = "values"


def value_key(db: sqlite3.Connection) -> bytes:
    """The key of the file's password digests, made now if it has none."""
    db.execute(
        "INSERT OR IGNORE INTO store_keys (name, value) VALUES (?, ?)", (_VALUES, os.urandom(32))
    )
    row = db.execute("SELECT value FROM store_keys WHERE name=?", (_VALUES,)).fetchone()
    return bytes(row[0])


def seal_links(db: sqlite3.Connection) -> int:
    """Digest every password a link holds in clear (state written before schema 7), in the
    migration's transaction; returns how many links changed. The LIKEs (case-blind) only
    narrow the read to links whose text may hold such a name. ``secure_delete`` zeroes the
    text replaced, so the clear passwords do not linger in the file's free space (the WAL
    holds them until a checkpoint: the store truncates it after the migration)."""
    previous = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete=ON")
    try:
        return _seal(db)
    finally:
        db.execute(f"PRAGMA secure_delete={int(previous)}")


def _seal(db: sqlite3.Connection) -> int:
    key: bytes | None = None
    changed = 0
    rows = db.execute(
        "SELECT scope, anchor, exported FROM links "
        "WHERE exported LIKE '%pass%' OR exported LIKE '%pwd%'"
    ).fetchall()
    for scope, anchor, stored in rows:
        text = stored.removeprefix(UNKNOWN)
        try:
            values = decode_values(text)
        except orjson.JSONDecodeError:
            continue
        if not values:
            continue
        if key is None:
            key = value_key(db)
        sealed = sealed_exported(key, values)
        if sealed is None:
            continue
        new = encode_values(sealed)
        db.execute(
            "UPDATE links SET exported=? WHERE scope=? AND anchor=?",
            (UNKNOWN + new if stored.startswith(UNKNOWN) else new, scope, anchor),
        )
        changed += 1
    return changed
