"""The SQLite store's configuration rows: applications, their secrets and jobs.

Apart from the per-object state a cycle writes at every checkpoint: these rows change on
a command, a schema save, a discover or a cycle's end, never in a checkpoint. A job's row is
changed only by ``update_job``'s read-change-write in one ``BEGIN IMMEDIATE`` transaction, so
two writers (threads or processes) never overwrite one another. Secrets are stored as given
(see ARCHITECTURE, "State store"). The store owns the connection and its lock and hands both
in; deleting a job, which reaches every table, stays with the store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from engine.model import (
    Application,
    StatusCode,
    SynchronizationJob,
    SynchronizationStatus,
    from_graph,
    to_graph,
)
from engine.model.converter import parse_datetime
from engine.store._sqlite_tables import StoreTables
from engine.store._sqlite_text import format_datetime
from engine.store.base import JobRow

_JOB_COLUMNS = "SELECT application_id, body, next_run, force_deletes FROM jobs"


class JobTables(StoreTables):
    """The ``applications``, ``secrets`` and ``jobs`` tables, on the store's connection."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        super().__init__(db, lock)
        self._parsed_jobs: dict[str, SynchronizationJob] = {}  # stored body -> frozen model

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
                rows = self._db.execute(_JOB_COLUMNS + " WHERE id=?", (job_id,)).fetchall()
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
        rows = self._rows(_JOB_COLUMNS + " WHERE id=?", (job_id,))
        return self._job_row(rows[0]) if rows else None

    def list_jobs(self, application_id: str | None = None) -> list[JobRow]:
        if application_id is None:
            return [self._job_row(r) for r in self._rows(_JOB_COLUMNS + " ORDER BY id")]
        rows = self._rows(_JOB_COLUMNS + " WHERE application_id=? ORDER BY id", (application_id,))
        return [self._job_row(r) for r in rows]

    def job_code(self, job_id: str) -> StatusCode | None:
        rows = self._rows("SELECT code FROM jobs WHERE id=?", (job_id,))
        return StatusCode(rows[0][0]) if rows else None

    def job_schedule(self) -> list[tuple[str, StatusCode, datetime | None]]:
        rows = self._rows("SELECT id, code, next_run FROM jobs ORDER BY id")
        return [(job_id, StatusCode(code), parse_datetime(due)) for job_id, code, due in rows]

    def job_statuses(self) -> list[tuple[str, str, SynchronizationStatus | None]]:
        """SQLite's JSON functions pick the two fields out of each body: no schema is parsed
        in Python, so a scrape of many jobs costs what their statuses cost."""
        rows = self._rows(
            "SELECT id, json_extract(body, '$.templateId'), json_extract(body, '$.status')"
            " FROM jobs ORDER BY id"
        )
        return [
            (
                job_id,
                template_id or "",
                None
                if status is None
                else from_graph(json.loads(status), SynchronizationStatus, stored=True),
            )
            for job_id, template_id, status in rows
        ]
