"""The SQLite store's held-back changes: escrows and staged deletes.

Both are per-object changes a cycle decided but did not make: an escrow is a change that
failed, retried from its ``next_retry`` on; a staged delete waits for the accidental-deletion
check (and, in a grace period, for its ``due`` time). Both are written in the checkpoint
that decided them, inside the store's transaction, so they are kept or lost together with that
page's links and watermark. The store owns the connection and its lock and hands both in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.model.converter import parse_datetime
from engine.store._sqlite_tables import StoreTables
from engine.store._sqlite_text import format_datetime
from engine.store.base import Checkpoint, Escrow, StagedDelete


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


class HeldChanges(StoreTables):
    """The ``escrows`` and ``staged_deletes`` tables, on the store's connection."""

    def due_escrows(self, job_id: str, mapping: str, now: datetime, limit: int) -> list[Escrow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT anchor, attempts, first_failed, next_retry, error, parked FROM escrows "
                "WHERE job_id=? AND mapping=? AND parked=0 AND next_retry<=? "
                "ORDER BY next_retry, anchor LIMIT ?",
                (job_id, mapping, format_datetime(now), limit),
            ).fetchall()
        return [_escrow(mapping, r) for r in rows]

    def get_escrows(self, job_id: str) -> list[Escrow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT mapping, anchor, attempts, first_failed, next_retry, error, parked "
                "FROM escrows WHERE job_id=? ORDER BY mapping, anchor",
                (job_id,),
            ).fetchall()
        return [_escrow(r[0], r[1:]) for r in rows]

    def held_counts(self, now: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, COUNT(*) FROM escrows GROUP BY job_id "
                "UNION ALL SELECT job_id, COUNT(*) FROM staged_deletes "
                "WHERE due IS NULL OR due<=? GROUP BY job_id",
                (format_datetime(now),),
            ).fetchall()
        for job_id, count in rows:
            counts[job_id] = counts.get(job_id, 0) + count
        return counts

    def staged_deletes(self, job_id: str) -> list[StagedDelete]:
        with self._lock:
            rows = self._db.execute(
                "SELECT mapping, anchor, target_type, target_ref, soft, reason, due "
                "FROM staged_deletes WHERE job_id=? ORDER BY mapping, anchor",
                (job_id,),
            ).fetchall()
        return [
            StagedDelete(
                mapping=m,
                anchor=a,
                target_type=t,
                target_ref=r,
                soft=bool(s),
                reason=x,
                due=None if due is None else parse_datetime(due),
            )
            for m, a, t, r, s, x, due in rows
        ]

    def write(self, job_id: str, c: Checkpoint) -> None:
        """Inside the checkpoint's transaction: the escrows and staged deletes it changes."""
        db = self._db
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
            "INSERT OR REPLACE INTO staged_deletes "
            "(job_id, mapping, anchor, target_type, target_ref, soft, reason, due) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    job_id,
                    s.mapping,
                    s.anchor,
                    s.target_type,
                    s.target_ref,
                    int(s.soft),
                    s.reason,
                    None if s.due is None else format_datetime(s.due),
                )
                for s in c.staged
            ],
        )
