"""The SQLite store's provisioning log: one row per checkpoint, not one per record.

A cycle logs every object it touches, so a row per record would cost a checkpoint one insert
per object of its page; one row per cycle in it (the records as JSON, with the newest
record's time) costs one, and still lets the audit API read newest first a few rows at a
time and retention drop whole checkpoints by time. Writes run inside the store's checkpoint
transaction; the store owns the connection and its lock and hands both in. A record's names
and values are further items of its JSON array, not columns: rows written before records
had them (nine items) read with none, and no migration rewrites a log that is pruned anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from engine.store._sqlite_tables import StoreTables
from engine.store._sqlite_text import format_datetime, stored_time
from engine.store.base import LogRecord, PruneBudget

_ALL = 2**62  # records an age prune wants: every row past the age, within its budget


def _record(job_id: str, cycle_id: str, row: list[Any]) -> LogRecord:
    """A stored record; one written before the records named their objects (nine fields)
    reads with no names and no values."""
    change, at, action, status, mapping, anchor, ref, names, error = row[:9]
    source_name = source_key = target_name = None
    new: tuple[str | None, ...] = ()
    old: tuple[str | None, ...] = ()
    if len(row) > 9:
        source_name, source_key, target_name, new, old = row[9:14]
        new, old = tuple(new), tuple(old)
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
        source_name,
        source_key,
        target_name,
        new,
        old,
    )


class ProvisioningLog(StoreTables):
    """The ``provisioning_log`` table, on the store's connection and under its lock."""

    def insert(self, logs: list[LogRecord]) -> None:
        """Inside the checkpoint's transaction: one row per (job, cycle) of ``logs``."""
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

    def prune(self, job_id: str, before: datetime, keep: int | None, budget: PruneBudget) -> int:
        """See StateStore.prune_logs: each delete is its own transaction, and the lock is let
        go between them, so a checkpoint of another cycle gets in after one small delete."""
        dropped = 0
        for _ in range(budget.deletes):
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    count = self._drop_old(job_id, before, budget)
                    if not count and keep is not None:
                        count = self._drop_over(job_id, keep, budget)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            if not count:
                break
            dropped += count
        return dropped

    def total(self, job_id: str) -> int:
        """The job's records, from the per-job total the table's triggers keep (migration 8):
        one row read, not a sum over the log."""
        with self._lock:
            row = self._db.execute(
                "SELECT records FROM log_totals WHERE job_id=?", (job_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def _drop_old(self, job_id: str, before: datetime, budget: PruneBudget) -> int:
        rows = self._db.execute(
            "SELECT seq, count FROM provisioning_log WHERE job_id=? AND time < ? "
            f"ORDER BY time, seq LIMIT {budget.rows}",
            (job_id, format_datetime(before)),
        ).fetchall()
        return self._delete(rows, budget.take(rows, _ALL))

    def _drop_over(self, job_id: str, keep: int, budget: PruneBudget) -> int:
        excess = self.total(job_id) - keep
        if excess <= 0:
            return 0
        rows = self._db.execute(  # each row holds a record at least: no more are needed
            "SELECT seq, count FROM provisioning_log WHERE job_id=? "
            f"ORDER BY time, seq LIMIT {min(budget.rows, excess)}",
            (job_id,),
        ).fetchall()
        return self._delete(rows, budget.take(rows, excess))

    def _delete(self, rows: list[tuple[int, int]], seqs: list[int]) -> int:
        if not seqs:
            return 0
        marks = ",".join("?" * len(seqs))
        self._db.execute(f"DELETE FROM provisioning_log WHERE seq IN ({marks})", seqs)
        return sum(count for _seq, count in rows[: len(seqs)])

    def records(self, job_id: str, cycle_id: str | None, limit: int) -> list[LogRecord]:
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

    def batches(self, job_id: str, chunk: int) -> Iterator[tuple[datetime | None, list[LogRecord]]]:
        """Rows by (time, seq) descending, ``chunk`` per query (keyset: a long scan never
        holds the lock, and rows added meanwhile are newer, so they are not met); rows from
        before migration 2 have no time and come first, bound unknown."""
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
            sql += f" ORDER BY time DESC, seq DESC LIMIT {chunk}"
            with self._lock:
                rows = self._db.execute(sql, params).fetchall()
            for _seq, time, cycle_id, body in rows:
                yield stored_time(time), [_record(job_id, cycle_id, r) for r in orjson.loads(body)]
            if len(rows) < chunk:
                return
            key = (rows[-1][1], rows[-1][0])
