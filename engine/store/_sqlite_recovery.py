"""The SQLite store's part of crash recovery and references: write-ahead intents (fsynced),
leases with fencing tokens, the reverse index of references and the sweeps of reconciling
full reads. A mixin of SqliteStateStore, which owns the connection and its lock."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime

from engine.store import _sqlite_values as link_values
from engine.store._sqlite_tables import LockedTables
from engine.store._sqlite_text import format_datetime, stored_time
from engine.store.base import (
    Checkpoint,
    Intent,
    IntentBatch,
    Lease,
    Link,
    check_fence,
    chunked,
    decode_intents,
    encode_intents,
    may_take,
    this_host,
)

_RELEASED = "0001-01-01T00:00:00.000000+00:00"
_BATCH = 500


class RecoveryTables(LockedTables):
    """Methods over the intents, leases, refs, sweeps and seen tables."""

    _sets: link_values.SetCache
    _synchronous: str

    def _scope(self, job_id: str, mapping: str, *, create: bool) -> int | None:
        raise NotImplementedError

    def _write_references(self, job_id: str, c: Checkpoint) -> None:
        db = self._db
        gone: list[tuple[int | None, str]] = []
        unlinked: set[tuple[int | None, str]] = set()
        for m, a in c.unlinks:
            scope = self._scope(job_id, m, create=True)
            gone.append((scope, a))
            unlinked.add((scope, a))
            self._sets.drop(("refs", scope, a))
        rows: list[tuple[int | None, str, int | None, str]] = []
        stale: list[tuple[int | None, str, int | None, str]] = []
        # each entry replaces what a referrer names: only its last one in the checkpoint counts
        latest = {(m, a): references for m, a, references in c.references}
        for (m, a), references in latest.items():
            scope = self._scope(job_id, m, create=True)
            key = ("refs", scope, a)
            if len(references) < link_values.LARGE:
                gone.append((scope, a))
                rows.extend(
                    (scope, a, self._scope(job_id, o, create=True), referenced)
                    for o, referenced in references
                )
                self._sets.drop(key)
                continue
            # a large group: write only the difference, not 50,000 rows for one new member
            by_owner: dict[str, set[str]] = {}
            for o, referenced in references:
                by_owner.setdefault(o, set()).add(referenced)
            wanted = {self._scope(job_id, o, create=True): names for o, names in by_owner.items()}
            # an unlinked referrer's rows all go first (``gone``): the difference is from none
            old: dict[int | None, set[str]] | None = (
                {} if (scope, a) in unlinked else self._sets.get(key)
            )
            if old is None:
                old = {}
                for owner, referenced in db.execute(
                    "SELECT owner, referenced FROM refs WHERE scope=? AND referrer=?", (scope, a)
                ):
                    old.setdefault(owner, set()).add(referenced)
            for owner in old.keys() | wanted.keys():
                before, after = old.get(owner, set()), wanted.get(owner, set())
                stale.extend((scope, a, owner, r) for r in before - after)
                rows.extend((scope, a, owner, r) for r in after - before)
            self._sets.put(key, wanted)
        db.executemany("DELETE FROM refs WHERE scope=? AND referrer=?", gone)
        db.executemany(
            "DELETE FROM refs WHERE scope=? AND referrer=? AND owner=? AND referenced=?", stale
        )
        db.executemany("INSERT OR IGNORE INTO refs VALUES (?, ?, ?, ?)", rows)

    def _write_sweep(self, job_id: str, c: Checkpoint) -> None:
        db = self._db
        assert c.mapping is not None
        scope = self._scope(job_id, c.mapping, create=True)
        if c.sweep_start:
            db.execute("INSERT OR IGNORE INTO sweeps VALUES (?)", (scope,))
            db.execute("DELETE FROM seen WHERE scope=?", (scope,))
        if c.seen:
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", [(scope, a) for a in c.seen])
        if c.sweep_end:
            db.execute("DELETE FROM sweeps WHERE scope=?", (scope,))
            db.execute("DELETE FROM seen WHERE scope=?", (scope,))

    def _write_events(self, job_id: str, c: Checkpoint) -> None:
        db = self._db
        if c.clear_events:
            db.execute(
                "DELETE FROM events WHERE scope IN (SELECT id FROM scopes WHERE job_id=?)",
                (job_id,),
            )
        db.executemany(
            "INSERT OR IGNORE INTO events VALUES (?, ?)",
            [(self._scope(job_id, m, create=True), a) for m, a in c.events],
        )

    def link_events(self, job_id: str) -> list[tuple[str, str]]:
        rows = self._rows(
            "SELECT s.mapping, e.anchor FROM events e JOIN scopes s ON s.id = e.scope "
            "WHERE s.job_id=? ORDER BY 1, 2",
            (job_id,),
        )
        return [(str(m), str(a)) for m, a in rows]

    def referrers(self, job_id: str, owner: str, anchors: Iterable[str]) -> list[tuple[str, str]]:
        found: dict[tuple[str, str], None] = {}
        with self._lock:
            scope = self._scope(job_id, owner, create=False)
            if scope is None:
                return []
            for batch in chunked(list(anchors), _BATCH):
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    "SELECT s.mapping, r.referrer FROM refs r JOIN scopes s ON s.id = r.scope "
                    f"WHERE r.owner=? AND r.referenced IN ({marks}) ORDER BY 1, 2",
                    (scope, *batch),
                ).fetchall()
                found.update(((str(m), str(a)), None) for m, a in rows)
        return list(found)

    def referenced_from(self, job_id: str, owner: str, prefix: str) -> list[str]:
        """A range on the (owner, referenced) index: prefix <= referenced < prefix + U+10FFFF."""
        with self._lock:
            scope = self._scope(job_id, owner, create=False)
            if scope is None:
                return []
            rows = self._db.execute(
                "SELECT DISTINCT referenced FROM refs WHERE owner=? AND referenced >= ? "
                "AND referenced < ? ORDER BY 1",
                (scope, prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def sweeping(self, job_id: str, mapping: str) -> bool:
        with self._lock:
            scope = self._scope(job_id, mapping, create=False)
            if scope is None:
                return False
            return bool(self._db.execute("SELECT 1 FROM sweeps WHERE scope=?", (scope,)).fetchall())

    def unseen_links(self, job_id: str, mapping: str, after: str, limit: int) -> list[Link]:
        with self._lock:
            scope = self._scope(job_id, mapping, create=False)
            if scope is None:
                return []
            rows = self._db.execute(
                "SELECT anchor, target_ref, exported FROM links l WHERE scope=? AND anchor>? "
                "AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.scope=l.scope "
                "AND s.anchor=l.anchor) ORDER BY anchor LIMIT ?",
                (scope, after, limit),
            ).fetchall()
            return [
                Link(mapping, a, r, link_values.load(self._db, scope, a, e)) for a, r, e in rows
            ]

    def write_intents(
        self, job_id: str, batches: Sequence[IntentBatch], lease: Lease | None
    ) -> None:
        body = encode_intents(batches)
        with self._lock:
            db = self._db
            durable = self._synchronous in {"FULL", "EXTRA"}
            if not durable:
                db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._fence(job_id, lease)
                    db.execute("INSERT INTO intents (job_id, body) VALUES (?, ?)", (job_id, body))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    db.execute(f"PRAGMA synchronous={self._synchronous}")

    def pending_intents(self, job_id: str) -> list[Intent]:
        rows = self._rows("SELECT body FROM intents WHERE job_id=? ORDER BY seq", (job_id,))
        return [intent for (body,) in rows for intent in decode_intents(body)]

    def _lease(self, job_id: str) -> Lease | None:
        rows = self._db.execute(
            "SELECT holder, host, pid, token, expires FROM leases WHERE job_id=?", (job_id,)
        ).fetchall()
        if not rows:
            return None
        holder, host, pid, token, expires = rows[0]
        return Lease(
            job_id=job_id,
            holder=holder,
            host=host,
            pid=pid,
            token=token,
            expires=stored_time(expires),
        )

    def _fence(self, job_id: str, lease: Lease | None) -> None:
        """Inside a write transaction: refuse a stale runner, renew a current one."""
        if lease is None:
            return
        renewed = self._db.execute(
            "UPDATE leases SET expires=? WHERE job_id=? AND token=? AND holder=?",
            (format_datetime(lease.expires), job_id, lease.token, lease.holder),
        ).rowcount
        if renewed != 1:
            check_fence(self._lease(job_id), lease)  # raises LeaseLost, naming the job

    def acquire_lease(
        self, job_id: str, holder: str, now: datetime, expires: datetime
    ) -> Lease | None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # serialises acquirers across processes
            try:
                current = self._lease(job_id)
                if not may_take(current, holder, now):
                    db.execute("ROLLBACK")
                    return None
                lease = Lease(
                    job_id=job_id,
                    holder=holder,
                    host=this_host(),
                    pid=os.getpid(),
                    token=(current.token if current else 0) + 1,
                    expires=expires,
                )
                db.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        lease.holder,
                        lease.host,
                        lease.pid,
                        lease.token,
                        format_datetime(lease.expires),
                    ),
                )
                db.execute("COMMIT")
                return lease
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _revoke(self, job_id: str) -> None:
        """Inside a write transaction: a runner mid-cycle loses the job (its next commit is
        refused), so a reset cannot be overwritten by what that cycle still had in hand."""
        self._db.execute(
            "UPDATE leases SET token = token + 1, holder = '', expires = ? WHERE job_id=?",
            (_RELEASED, job_id),
        )

    def release_lease(self, lease: Lease) -> None:
        self._write(
            "UPDATE leases SET expires=? WHERE job_id=? AND token=? AND holder=?",
            (_RELEASED, lease.job_id, lease.token, lease.holder),
        )
