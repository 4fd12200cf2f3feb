"""The embedded default store: one SQLite file in WAL mode, schema versioned by user_version.

A checkpoint is one transaction, so a crash leaves either the whole page recorded (links,
escrows, staged deletes, log and watermark) or none of it. ``synchronous=NORMAL`` keeps every
committed transaction across a process crash; write-ahead intents are committed with
``synchronous=FULL`` (an fsync of the WAL), which makes them and every checkpoint before
them survive power loss too, before any target write they cover is sent. Pass
``synchronous="FULL"`` to fsync every checkpoint as well.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from engine.model import Application, StatusCode, SynchronizationJob, from_graph, to_graph
from engine.model.converter import parse_datetime
from engine.store import _sqlite_values as link_values
from engine.store._migrations import MIGRATIONS, statements
from engine.store._sqlite_recovery import RecoveryTables
from engine.store._sqlite_text import format_datetime, stored_time
from engine.store.base import (
    Checkpoint,
    Escrow,
    JobRow,
    Link,
    LogRecord,
    StagedDelete,
    chunked,
)

__all__ = ["MIGRATIONS", "SqliteStateStore", "format_datetime"]

_LINK_BATCH = 500
_ANCHOR, _EXPORTED = operator.itemgetter(1), operator.itemgetter(3)  # of a links row


def _record(job_id: str, cycle_id: str, row: list[Any]) -> LogRecord:
    change, at, action, status, mapping, anchor, ref, names, error = row
    return LogRecord(
        job_id,
        cycle_id,
        change,
        stored_time(at),
        action,
        status,
        mapping,
        anchor,
        ref,
        tuple(names),
        error,
    )


class SqliteStateStore(RecoveryTables):
    """State in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._lock = threading.RLock()
        self._scopes: dict[tuple[str, str], int] = {}
        self._parsed_jobs: dict[str, SynchronizationJob] = {}  # stored body -> frozen model
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._synchronous = synchronous.upper()
        self._db.execute(f"PRAGMA synchronous={self._synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._sets = link_values.SetCache(self._db)

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
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements(script):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

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

    def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, tuple(params))

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # ------------------------------------------------------------------ applications, jobs
    def save_application(self, application: Application) -> None:
        self._write(
            "INSERT OR REPLACE INTO applications VALUES (?, ?)",
            (application.id, application.display_name),
        )

    def get_application(self, application_id: str) -> Application | None:
        rows = self._rows("SELECT id, display_name FROM applications WHERE id=?", (application_id,))
        return Application(id=rows[0][0], display_name=rows[0][1]) if rows else None

    def list_applications(self) -> list[Application]:
        rows = self._rows("SELECT id, display_name FROM applications ORDER BY id")
        return [Application(id=r[0], display_name=r[1]) for r in rows]

    def delete_application(self, application_id: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM secrets WHERE application_id=?", (application_id,))
                self._db.execute("DELETE FROM applications WHERE id=?", (application_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save_secrets(self, application_id: str, secrets: Mapping[str, str]) -> None:
        self._write(
            "INSERT OR REPLACE INTO secrets VALUES (?, ?)",
            (application_id, json.dumps(dict(secrets))),
        )

    def get_secrets(self, application_id: str) -> dict[str, str]:
        rows = self._rows("SELECT body FROM secrets WHERE application_id=?", (application_id,))
        return dict(json.loads(rows[0][0])) if rows else {}

    def save_job(self, row: JobRow) -> None:
        job = row.job
        code = job.status.code.value if job.status else StatusCode.NOT_CONFIGURED.value
        self._write(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
            (
                job.id,
                row.application_id,
                code,
                json.dumps(to_graph(job)),
                format_datetime(row.next_run) if row.next_run else None,
                int(row.force_deletes),
            ),
        )

    def update_job(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # other processes' writers wait for us
            try:
                rows = self._db.execute(
                    "SELECT application_id, body, next_run, force_deletes FROM jobs WHERE id=?",
                    (job_id,),
                ).fetchall()
                new = change(self._job_row(rows[0])) if rows else None
                if new is not None:
                    self.save_job(new)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return new

    def _job_row(self, values: tuple[Any, ...]) -> JobRow:
        application_id, body, next_run, force_deletes = values
        job = self._parsed_jobs.get(body)
        if job is None:  # a job (its schema above all) is read a few times per cycle
            job = from_graph(json.loads(body), SynchronizationJob, stored=True)
            if len(self._parsed_jobs) >= 64:
                self._parsed_jobs.clear()
            self._parsed_jobs[body] = job
        return JobRow(
            application_id=application_id,
            job=job,
            next_run=parse_datetime(next_run),
            force_deletes=bool(force_deletes),
        )

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._rows(
            "SELECT application_id, body, next_run, force_deletes FROM jobs WHERE id=?", (job_id,)
        )
        return self._job_row(rows[0]) if rows else None

    def list_jobs(self, application_id: str | None = None) -> list[JobRow]:
        sql = "SELECT application_id, body, next_run, force_deletes FROM jobs"
        if application_id is None:
            return [self._job_row(r) for r in self._rows(sql + " ORDER BY id")]
        rows = self._rows(sql + " WHERE application_id=? ORDER BY id", (application_id,))
        return [self._job_row(r) for r in rows]

    def job_code(self, job_id: str) -> StatusCode | None:
        rows = self._rows("SELECT code FROM jobs WHERE id=?", (job_id,))
        return StatusCode(rows[0][0]) if rows else None

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

    @staticmethod
    def _escrow(mapping: str, values: tuple[Any, ...]) -> Escrow:
        anchor, attempts, first, retry, error, parked = values
        first_failed = parse_datetime(first)
        next_retry = parse_datetime(retry)
        assert first_failed is not None and next_retry is not None
        return Escrow(
            mapping=mapping,
            anchor=anchor,
            attempts=attempts,
            first_failed=first_failed,
            next_retry=next_retry,
            error=error,
            parked=bool(parked),
        )

    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]:
        rows = self._rows(
            "SELECT anchor, attempts, first_failed, next_retry, error, parked FROM escrows "
            "WHERE job_id=? AND mapping=? AND parked=0 AND next_retry<=? "
            "ORDER BY next_retry, anchor LIMIT ?",
            (job_id, mapping, format_datetime(now), limit),
        )
        return [self._escrow(mapping, r) for r in rows]

    def get_escrows(self, job_id: str) -> list[Escrow]:
        rows = self._rows(
            "SELECT mapping, anchor, attempts, first_failed, next_retry, error, parked "
            "FROM escrows WHERE job_id=? ORDER BY mapping, anchor",
            (job_id,),
        )
        return [self._escrow(r[0], r[1:]) for r in rows]

    def staged_deletes(self, job_id: str) -> list[StagedDelete]:
        rows = self._rows(
            "SELECT mapping, anchor, target_type, target_ref, soft, reason FROM staged_deletes "
            "WHERE job_id=? ORDER BY mapping, anchor",
            (job_id,),
        )
        return [
            StagedDelete(mapping=m, anchor=a, target_type=t, target_ref=r, soft=bool(s), reason=x)
            for m, a, t, r, s, x in rows
        ]

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
                db.executemany(
                    "DELETE FROM escrows WHERE job_id=? AND mapping=? AND anchor=?",
                    [(job_id, m, a) for m, a in c.unescrows],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO escrows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            job_id,
                            e.mapping,
                            e.anchor,
                            e.attempts,
                            format_datetime(e.first_failed),
                            format_datetime(e.next_retry),
                            e.error,
                            int(e.parked),
                        )
                        for e in c.escrows
                    ],
                )
                db.executemany(
                    "DELETE FROM staged_deletes WHERE job_id=? AND mapping=? AND anchor=?",
                    [(job_id, m, a) for m, a in c.unstaged],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO staged_deletes VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            job_id,
                            s.mapping,
                            s.anchor,
                            s.target_type,
                            s.target_ref,
                            int(s.soft),
                            s.reason,
                        )
                        for s in c.staged
                    ],
                )
                if c.logs:
                    self._insert_logs(c.logs)
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

    def _insert_logs(self, logs: list[LogRecord]) -> None:
        batches: dict[tuple[str, str], list[Any]] = {}
        for record in logs:
            batches.setdefault((record.job_id, record.cycle_id), []).append(record[2:])
        for (job_id, cycle_id), records in batches.items():
            newest = max(r[1] for r in records)
            self._db.execute(
                "INSERT INTO provisioning_log (job_id, cycle_id, count, records, time) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    job_id,
                    cycle_id,
                    len(records),
                    orjson.dumps(records).decode(),
                    format_datetime(newest),
                ),
            )

    def prune_logs(self, job_id: str, before: datetime) -> int:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM provisioning_log WHERE job_id=? AND time < ?",
                (job_id, format_datetime(before)),
            )
            return int(cursor.rowcount)

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
        sql = "SELECT cycle_id, records FROM provisioning_log WHERE job_id=?"
        params: list[Any] = [job_id]
        if cycle_id is not None:
            sql += " AND cycle_id=?"
            params.append(cycle_id)
        records: list[LogRecord] = []
        with self._lock:
            cursor = self._db.execute(sql + " ORDER BY seq DESC", params)
            for batch_cycle, body in cursor:
                batch = [_record(job_id, batch_cycle, row) for row in orjson.loads(body)]
                records[:0] = batch
                if len(records) >= limit:
                    break
            cursor.close()
        return records[-limit:] if limit else []

    LOG_CHUNK = 32  # batch rows read per query by log_batches

    def log_batches(self, job_id: str) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        """Rows by (time, seq) descending, a few per query (keyset: a long scan never holds
        the lock, and rows added meanwhile are newer, so they are not met); rows from before
        migration 2 have no time and come first, bound unknown."""
        with self._lock:
            untimed = self._db.execute(
                "SELECT cycle_id, records FROM provisioning_log WHERE job_id=? AND time IS NULL",
                (job_id,),
            ).fetchall()
        for cycle_id, body in untimed:
            yield None, [_record(job_id, cycle_id, row) for row in orjson.loads(body)]
        key: tuple[str, int] | None = None
        while True:
            sql = "SELECT seq, time, cycle_id, records FROM provisioning_log WHERE job_id=?"
            params: list[Any] = [job_id]
            if key is None:
                sql += " AND time IS NOT NULL"
            else:
                sql += " AND (time < ? OR (time = ? AND seq < ?))"
                params += [key[0], key[0], key[1]]
            sql += f" ORDER BY time DESC, seq DESC LIMIT {self.LOG_CHUNK}"
            with self._lock:
                rows = self._db.execute(sql, params).fetchall()
            for _seq, time, cycle_id, body in rows:
                yield stored_time(time), [_record(job_id, cycle_id, r) for r in orjson.loads(body)]
            if len(rows) < self.LOG_CHUNK:
                return
            key = (rows[-1][1], rows[-1][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
