"""The embedded default store: one SQLite file in WAL mode, schema versioned by user_version.

A checkpoint is one transaction, so a crash leaves either the whole page recorded (links,
escrows, staged deletes, log and watermark) or none of it. ``synchronous=NORMAL`` keeps every
committed transaction across a process crash; write-ahead intents are committed with
``synchronous=FULL`` (an fsync of the WAL), which makes them and every checkpoint before
them survive power loss too, before any target write they cover is sent. Pass
``synchronous="FULL"`` to fsync every checkpoint as well.

The store itself keeps what every checkpoint goes through (the connection, its lock and
pragmas, the migrations, the links and the checkpoint transaction) and hands the connection
and lock to one helper per other group of tables, so each stays short and on one subject:
``JobTables`` (applications, secrets, jobs), ``HeldChanges`` (escrows, staged deletes),
``ProvisioningLog``, and ``RecoveryTables`` (intents, leases, references, sweeps; a mixin).
"""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path

from engine.model import Application, StatusCode, SynchronizationStatus
from engine.store import _sqlite_keys as keys
from engine.store import _sqlite_values as link_values
from engine.store._migrations import MIGRATIONS, statements
from engine.store._sqlite_held import HeldChanges
from engine.store._sqlite_jobs import JobTables
from engine.store._sqlite_logs import ProvisioningLog
from engine.store._sqlite_recovery import RecoveryTables
from engine.store._sqlite_text import format_datetime
from engine.store.base import (
    Checkpoint,
    Escrow,
    JobRow,
    Link,
    LogRecord,
    PruneBudget,
    StagedDelete,
    chunked,
)

__all__ = ["MIGRATIONS", "SqliteStateStore", "format_datetime"]

_LINK_BATCH = 500
_ANCHOR, _EXPORTED = operator.itemgetter(1), operator.itemgetter(3)  # of a links row


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite gives its -wal and -shm
    files the database file's mode): a state file holds secrets and the directory's values,
    so it is private from its first byte, whichever entry point makes it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (FileExistsError, FileNotFoundError):
        return  # there already, or no such directory (SQLite says so when it opens it)
    os.close(fd)


class SqliteStateStore(RecoveryTables):
    """State in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._lock = threading.RLock()
        self._scopes: dict[tuple[str, str], int] = {}
        self._value_key: bytes | None = None
        if str(path) != ":memory:":
            create_private(self.path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._synchronous = synchronous.upper()
        self._db.execute(f"PRAGMA synchronous={self._synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._sets = link_values.SetCache(self._db)
        self._jobs = JobTables(self._db, self._lock)
        self._held = HeldChanges(self._db, self._lock)
        self._logs = ProvisioningLog(self._db, self._lock)

    # ------------------------------------------------------------------------- migrations
    @property
    def schema_version(self) -> int:
        row = self._db.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has state schema {version}, newer than this syncjob "
                    f"({len(MIGRATIONS)}): upgrade syncjob"
                )
            sealed = 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements(script):
                        self._db.execute(statement)
                    if number == keys.SCHEMA:
                        sealed = keys.seal_links(self._db)
                    self._db.execute(f"PRAGMA user_version={number}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            if sealed:  # the WAL still holds the pages with the clear passwords: empty it
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def value_key(self) -> bytes:
        """The file's key of password digests (made on first use; cached: it never changes)."""
        if self._value_key is None:
            with self._lock:
                self._value_key = keys.value_key(self._db)
        return self._value_key

    def _scope(self, job_id: str, mapping: str, *, create: bool) -> int | None:
        """The integer key of (job, mapping) in the links table; cached, it never changes."""
        key = (job_id, mapping)
        scope = self._scopes.get(key)
        if scope is None:
            if create:
                self._db.execute(
                    "INSERT OR IGNORE INTO scopes (job_id, mapping) VALUES (?, ?)", key
                )
            rows = self._db.execute(
                "SELECT id FROM scopes WHERE job_id=? AND mapping=?", key
            ).fetchall()
            if not rows:
                return None
            scope = int(rows[0][0])
            self._scopes[key] = scope
        return scope

    # ------------------------------------------------------------------ applications, jobs
    def save_application(self, application: Application) -> None:
        self._jobs.save_application(application)

    def get_application(self, application_id: str) -> Application | None:
        return self._jobs.get_application(application_id)

    def list_applications(self) -> list[Application]:
        return self._jobs.list_applications()

    def delete_application(self, application_id: str) -> None:
        self._jobs.delete_application(application_id)

    def save_secrets(self, application_id: str, secrets: Mapping[str, str]) -> None:
        self._jobs.save_secrets(application_id, secrets)

    def get_secrets(self, application_id: str) -> dict[str, str]:
        return self._jobs.get_secrets(application_id)

    def save_job(self, row: JobRow) -> None:
        self._jobs.save_job(row)

    def update_job(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow | None:
        return self._jobs.update_job(job_id, change)

    def get_job(self, job_id: str) -> JobRow | None:
        return self._jobs.get_job(job_id)

    def list_jobs(self, application_id: str | None = None) -> list[JobRow]:
        return self._jobs.list_jobs(application_id)

    def job_code(self, job_id: str) -> StatusCode | None:
        return self._jobs.job_code(job_id)

    def job_schedule(self) -> list[tuple[str, StatusCode, datetime | None]]:
        return self._jobs.job_schedule()

    def job_statuses(self) -> list[tuple[str, str, SynchronizationStatus | None]]:
        return self._jobs.job_statuses()

    def held_counts(self, now: datetime) -> dict[str, int]:
        return self._held.held_counts(now)

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._delete_links(job_id)
                self._db.execute("DELETE FROM scopes WHERE job_id=?", (job_id,))
                for table in (
                    "watermarks",
                    "escrows",
                    "staged_deletes",
                    "provisioning_log",
                    "log_totals",
                    "intents",
                    "leases",
                ):
                    self._db.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))
                self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _delete_links(self, job_id: str) -> None:
        self._sets.clear()
        for table in ("links", "link_values", "refs", "sweeps", "seen", "events"):
            self._db.execute(
                f"DELETE FROM {table} WHERE scope IN (SELECT id FROM scopes WHERE job_id=?)",
                (job_id,),
            )
        self._db.execute("UPDATE scopes SET links = 0 WHERE job_id=?", (job_id,))
        self._scopes = {k: v for k, v in self._scopes.items() if k[0] != job_id}

    # ------------------------------------------------------------------------- per object
    def get_watermark(self, job_id: str, mapping: str) -> str | None:
        rows = self._rows(
            "SELECT watermark FROM watermarks WHERE job_id=? AND mapping=?", (job_id, mapping)
        )
        return str(rows[0][0]) if rows else None

    def get_links(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, Link]:
        found: dict[str, Link] = {}
        with self._lock:
            scope = self._scope(job_id, mapping, create=False)
            if scope is None:
                return found
            for batch in chunked(list(anchors), _LINK_BATCH):
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    "SELECT anchor, target_ref, exported FROM links "
                    f"WHERE scope=? AND anchor IN ({marks})",
                    (scope, *batch),
                ).fetchall()
                for anchor, ref, stored in rows:
                    exported = (
                        link_values.load(self._db, scope, anchor, stored, self._sets)
                        if '"$rows"' in stored
                        else stored
                    )
                    found[anchor] = Link(mapping, anchor, ref, exported)
        return found

    def get_refs(self, job_id: str, mapping: str, anchors: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        wanted = list(anchors)
        with self._lock:
            scope = self._scope(job_id, mapping, create=False)
            if scope is None:
                return found
            if len(wanted) > _LINK_BATCH * 4:  # a big group's members
                every = self._every_ref(scope)
                if every is not None:
                    return {a: every[a] for a in wanted if a in every}
            for batch in chunked(wanted, _LINK_BATCH):
                marks = ",".join("?" * len(batch))
                found.update(
                    self._db.execute(
                        "SELECT anchor, target_ref FROM links "
                        f"WHERE scope=? AND anchor IN ({marks})",
                        (scope, *batch),
                    ).fetchall()
                )
        return found

    def _every_ref(self, scope: int) -> dict[str, str] | None:
        """anchor -> ref of every link of the scope, when a reference list names a good part
        of them (a big group's members): read once, then kept current by this store's own
        link writes while no other connection writes (see SetCache)."""
        key = ("refs-of", scope)
        every: dict[str, str] | None = self._sets.get(key)
        if every is None:
            (linked,) = self._db.execute("SELECT links FROM scopes WHERE id=?", (scope,)).fetchone()
            if linked > _LINK_BATCH * 400:  # a million links: not worth holding in memory
                return None
            every = dict(
                self._db.execute("SELECT anchor, target_ref FROM links WHERE scope=?", (scope,))
            )
            self._sets.put(key, every)
        return every

    def anchor_for_ref(self, job_id: str, mapping: str, target_ref: str) -> str | None:
        with self._lock:
            scope = self._scope(job_id, mapping, create=False)
            if scope is None:
                return None
            rows = self._db.execute(
                "SELECT anchor FROM links WHERE scope=? AND target_ref=?", (scope, target_ref)
            ).fetchall()
        return str(rows[0][0]) if rows else None

    def count_links(self, job_id: str) -> dict[str, int]:
        # kept by triggers on the links table: a cycle over a million links reads one row
        rows = self._rows(
            "SELECT mapping, links FROM scopes WHERE job_id=? AND links > 0", (job_id,)
        )
        return {str(m): int(c) for m, c in rows}

    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]:
        return self._held.due_escrows(job_id, mapping, now, limit)

    def get_escrows(self, job_id: str) -> list[Escrow]:
        return self._held.get_escrows(job_id)

    def staged_deletes(self, job_id: str) -> list[StagedDelete]:
        return self._held.staged_deletes(job_id)

    def commit(self, job_id: str, checkpoint: Checkpoint) -> None:
        c = checkpoint
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._fence(job_id, c.lease)
                self._write_links(job_id, c)
                if c.references or c.unlinks:
                    self._write_references(job_id, c)
                if c.mapping is not None and (c.sweep_start or c.seen or c.sweep_end):
                    self._write_sweep(job_id, c)
                if c.events or c.clear_events:
                    self._write_events(job_id, c)
                self._held.write(job_id, c)
                if c.logs:
                    self._logs.insert(c.logs)
                if c.clear_intents:
                    db.execute("DELETE FROM intents WHERE job_id=?", (job_id,))
                if c.mapping is not None and c.watermark is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?)",
                        (job_id, c.mapping, c.watermark),
                    )
                db.execute("COMMIT")
            except BaseException:
                self._scopes.clear()  # a scope made in this transaction is gone too
                self._sets.clear()  # and what it cached of rows it wrote
                db.execute("ROLLBACK")
                raise

    def _write_links(self, job_id: str, c: Checkpoint) -> None:
        """Links and unlinks, keeping scopes.links exact without a per-row trigger.

        New links go in with INSERT OR IGNORE and are counted through total_changes; only when
        some already existed (re-exports) does a second pass update those rows.
        """
        db = self._db
        removed: dict[int, list[tuple[int, str]]] = {}
        for m, a in c.unlinks:
            scope = self._scope(job_id, m, create=True)
            assert scope is not None
            removed.setdefault(scope, []).append((scope, a))
        added: dict[int, list[tuple[int, str, str, str]]] = {}
        for m, a, r, e in c.links:
            scope = self._scope(job_id, m, create=True)
            assert scope is not None
            added.setdefault(scope, []).append((scope, a, r, e))
        for scope, links in added.items():  # one anchor twice in a checkpoint: the last wins
            if len(set(map(_ANCHOR, links))) < len(links):
                added[scope] = list({link[1]: link for link in links}.values())
        with_rows = {
            scope for scope in removed.keys() | added.keys() if link_values.has_rows(db, scope)
        }
        for scope, rows in removed.items():
            if scope in with_rows:
                link_values.drop(db, rows)
                self._sets.clear()
            every = self._sets.get(("refs-of", scope))
            for _, anchor in rows if every is not None else ():
                every.pop(anchor, None)
            before = db.total_changes
            db.executemany("DELETE FROM links WHERE scope=? AND anchor=?", rows)
            gone = db.total_changes - before
            if gone:
                db.execute("UPDATE scopes SET links = links - ? WHERE id=?", (gone, scope))
        for scope, links in added.items():
            every = self._sets.get(("refs-of", scope))
            if every is not None:
                every.update((a, r) for _, a, r, _ in links)
            had = scope in with_rows
            short = link_values.LARGE * 4
            new = links
            if had or max(map(len, map(_EXPORTED, links)), default=0) >= short:
                new = [
                    (sc, a, r, e if len(e) < short and not had
                     else link_values.store(db, sc, a, e, had, self._sets))
                    for sc, a, r, e in links
                ]  # fmt: skip
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?)", new)
            inserted = db.total_changes - before
            if inserted:
                db.execute("UPDATE scopes SET links = links + ? WHERE id=?", (inserted, scope))
            if inserted < len(new):
                db.executemany(
                    "UPDATE links SET target_ref=?, exported=? WHERE scope=? AND anchor=?",
                    [(r, e, sc, a) for sc, a, r, e in new],
                )

    #: how much one prune_logs call may drop (base.PruneBudget); a test makes it smaller
    prune_budget = PruneBudget()

    def prune_logs(self, job_id: str, before: datetime, keep: int | None = None) -> int:
        return self._logs.prune(job_id, before, keep, self.prune_budget)

    def count_logs(self, job_id: str) -> int:
        return self._logs.total(job_id)

    def reset(self, job_id: str, *, watermarks: bool, escrows: bool, links: bool) -> None:
        tables = [
            name
            for name, wanted in (
                ("watermarks", watermarks),
                ("escrows", escrows),
                ("staged_deletes", links),
                ("intents", links),
            )
            if wanted
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in tables:
                    self._db.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))
                if links:
                    self._delete_links(job_id)
                self._revoke(job_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def provisioning_logs(
        self, job_id: str, cycle_id: str | None = None, limit: int = 1000
    ) -> list[LogRecord]:
        return self._logs.records(job_id, cycle_id, limit)

    LOG_CHUNK = 32  # batch rows read per query by log_batches

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        return self._logs.batches(job_id, self.LOG_CHUNK)

    def close(self) -> None:
        with self._lock:
            self._db.close()
