"""The SQLite store's schema, as forward-only migrations numbered by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the first schema. Links are keyed by a small integer "scope" (job, object mapping)
    # and the provisioning log is stored one row per checkpoint: both keep the per-object
    # cost of a page commit low (see BENCHMARKS.md).
    """
    CREATE TABLE applications (id TEXT PRIMARY KEY, display_name TEXT);
    CREATE TABLE secrets (application_id TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY, application_id TEXT NOT NULL, code TEXT NOT NULL,
        body TEXT NOT NULL, next_run TEXT, force_deletes INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE scopes (
        id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, mapping TEXT NOT NULL,
        links INTEGER NOT NULL DEFAULT 0, UNIQUE (job_id, mapping));
    CREATE TABLE watermarks (
        job_id TEXT NOT NULL, mapping TEXT NOT NULL, watermark TEXT NOT NULL,
        PRIMARY KEY (job_id, mapping));
    CREATE TABLE links (
        scope INTEGER NOT NULL, anchor TEXT NOT NULL, target_ref TEXT NOT NULL,
        exported TEXT NOT NULL, PRIMARY KEY (scope, anchor)) WITHOUT ROWID;
    CREATE INDEX links_by_ref ON links (scope, target_ref);
    CREATE TABLE escrows (
        job_id TEXT NOT NULL, mapping TEXT NOT NULL, anchor TEXT NOT NULL,
        attempts INTEGER NOT NULL, first_failed TEXT NOT NULL, next_retry TEXT NOT NULL,
        error TEXT NOT NULL, parked INTEGER NOT NULL,
        PRIMARY KEY (job_id, mapping, anchor));
    CREATE TABLE staged_deletes (
        job_id TEXT NOT NULL, mapping TEXT NOT NULL, anchor TEXT NOT NULL,
        target_type TEXT NOT NULL, target_ref TEXT NOT NULL, soft INTEGER NOT NULL,
        reason TEXT NOT NULL, PRIMARY KEY (job_id, mapping, anchor));
    CREATE TABLE provisioning_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, cycle_id TEXT NOT NULL,
        count INTEGER NOT NULL, records TEXT NOT NULL);
    CREATE INDEX log_by_job ON provisioning_log (job_id, cycle_id);
    """,
    # 2: provisioning log retention needs each batch's time
    """
    ALTER TABLE provisioning_log ADD COLUMN time TEXT;
    CREATE INDEX log_by_time ON provisioning_log (job_id, time);
    """,
    # 3: write-ahead intents (one row per page of writes in flight) and per-job leases whose
    # token fences out a runner that lost its lease
    """
    CREATE TABLE intents (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX intents_by_job ON intents (job_id);
    CREATE TABLE leases (
        job_id TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL,
        pid INTEGER NOT NULL, token INTEGER NOT NULL, expires TEXT NOT NULL);
    """,
    # 4: the reverse index of references (referrer -> the source anchors it names, resolved
    # or not), and what a reconciling full read has seen so far
    """
    CREATE TABLE refs (
        scope INTEGER NOT NULL, referrer TEXT NOT NULL, owner INTEGER NOT NULL,
        referenced TEXT NOT NULL, PRIMARY KEY (scope, referrer, owner, referenced))
        WITHOUT ROWID;
    CREATE INDEX refs_by_referenced ON refs (owner, referenced);
    CREATE TABLE sweeps (scope INTEGER PRIMARY KEY);
    CREATE TABLE seen (
        scope INTEGER NOT NULL, anchor TEXT NOT NULL, PRIMARY KEY (scope, anchor)) WITHOUT ROWID;
    CREATE TABLE events (
        scope INTEGER NOT NULL, anchor TEXT NOT NULL, PRIMARY KEY (scope, anchor)) WITHOUT ROWID;
    """,
    # 5: large exported lists (a big group's members) one row per value (_sqlite_values.py)
    """
    CREATE TABLE link_values (
        scope INTEGER NOT NULL, anchor TEXT NOT NULL, attribute TEXT NOT NULL,
        value TEXT NOT NULL, PRIMARY KEY (scope, anchor, attribute, value)) WITHOUT ROWID;
    """,
    # 6: a staged delete waiting out DeleteGracePeriod is due at a time (NULL: at once)
    """
    ALTER TABLE staged_deletes ADD COLUMN due TEXT;
    """,
    # 7: the file's own random keys: passwords are kept as digests under one (the links that
    # held them in clear are sealed as this is applied: _sqlite_keys.seal_links)
    """
    CREATE TABLE store_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    """,
    # 8: the provisioning log bounded by records (ProvisioningLogMaxRecords): each job's total
    # kept by triggers, so a cycle reads one row instead of summing the log (the oldest rows
    # are found by log_by_time; no index is added: each costs every row ~60 bytes)
    """
    CREATE TABLE log_totals (job_id TEXT PRIMARY KEY, records INTEGER NOT NULL);
    INSERT INTO log_totals (job_id, records)
        SELECT job_id, SUM(count) FROM provisioning_log GROUP BY job_id;
    CREATE TRIGGER log_added AFTER INSERT ON provisioning_log BEGIN
        INSERT INTO log_totals (job_id, records) VALUES (NEW.job_id, NEW.count)
            ON CONFLICT (job_id) DO UPDATE SET records = records + NEW.count;
    END;
    CREATE TRIGGER log_dropped AFTER DELETE ON provisioning_log BEGIN
        UPDATE log_totals SET records = records - OLD.count WHERE job_id = OLD.job_id;
    END;
    """,
]


def statements(script: str) -> list[str]:
    """Split a migration into statements; trigger bodies keep their inner semicolons."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {current.strip()[:60]}")
    return statements
