"""Read a state file without changing it: for tools that only look (``syncjob jobs``).

Opening a file with SqliteStateStore migrates it, sets WAL mode and creates tables, which is
right for the engine and wrong for a look at a file that may not even be ours. Here the file
is opened read-only through SQLite's URI (``mode=ro``), and ``immutable=1`` is added when no
``-wal`` or ``-journal`` file is beside it: then everything committed is in the main file and
SQLite creates no side files either. (With a ``-wal`` present, a running or crashed engine's
last commits are only there, so it is read through the WAL as usual.)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

from engine.errors import ConfigurationError
from engine.model import SynchronizationJob, from_graph
from engine.store.sqlite import MIGRATIONS


class StateFileError(ConfigurationError):
    """The file is not a syncjob state this version can read; the message is one line."""


def _uri(path: Path) -> str:
    resolved = path.resolve()
    busy = any(resolved.with_name(resolved.name + s).exists() for s in ("-wal", "-journal"))
    return f"file:{quote(str(resolved))}?mode=ro" + ("" if busy else "&immutable=1")


def read_jobs(path: str | Path) -> list[SynchronizationJob]:
    """The jobs of a state file, by id; raises StateFileError, never writes to the file."""
    path = Path(path)
    if not path.is_file():
        raise StateFileError(f"{path} is not a file")
    try:
        db = sqlite3.connect(_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise StateFileError(f"{path} cannot be opened: {exc}") from None
    try:
        return _jobs(db, path)
    except sqlite3.DatabaseError as exc:
        raise StateFileError(f"{path} is not a syncjob state file ({exc})") from None
    finally:
        db.close()


def _jobs(db: sqlite3.Connection, path: Path) -> list[SynchronizationJob]:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    has_jobs = bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='jobs'").fetchall()
    )
    if not has_jobs:
        raise StateFileError(f"{path} is not a syncjob state file (it has no jobs table)")
    if version > len(MIGRATIONS):
        raise StateFileError(
            f"{path} has state schema {version}, newer than this syncjob ({len(MIGRATIONS)}): "
            "upgrade syncjob"
        )
    if version < 1:
        raise StateFileError(
            f"{path} has state schema {version} but a jobs table: it was not written by syncjob"
        )
    jobs = []
    for job_id, body in db.execute("SELECT id, body FROM jobs ORDER BY id"):
        try:
            jobs.append(from_graph(json.loads(body), SynchronizationJob))
        except (ValueError, TypeError) as exc:  # ModelError is a ValueError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StateFileError(f"{path}: job {job_id!r} cannot be read: {first}") from None
    return jobs
