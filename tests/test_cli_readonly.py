"""`syncjob jobs --state` only reads: it never changes the file, and refuses foreign ones."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connectors.memory import MemoryDirectory
from engine import SqliteStateStore, SyncEngine
from engine.service.cli import main
from engine.store.sqlite import MIGRATIONS


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jobs(state: Path) -> Result:
    return CliRunner().invoke(main, ["jobs", "--state", str(state)])


def made_state(path: Path) -> str:
    with SyncEngine(path) as engine:
        return engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory()).id or ""


def assert_refused(result: Result, words: str) -> None:
    assert 1 == result.exit_code
    assert "" == result.stdout
    lines = result.stderr.splitlines()
    assert 1 == len(lines) and lines[0].startswith("syncjob jobs: ") and words in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["state.sqlite", "odd #name?.db"])
def test_listing_leaves_the_file_and_its_folder_unchanged(tmp_path: Path, name: str) -> None:
    """A closed state is listed; its bytes are the same and no side file appears."""
    state = tmp_path / name
    job_id = made_state(state)
    before, files = digest(state), sorted(tmp_path.iterdir())
    result = jobs(state)
    assert 0 == result.exit_code, result.output
    assert [job_id] == [j["id"] for j in json.loads(result.stdout)["value"]]
    assert before == digest(state) and files == sorted(tmp_path.iterdir())


def test_a_state_in_use_is_read_through_its_wal(tmp_path: Path) -> None:
    """With an engine holding the file open, the latest commit is listed and the file kept."""
    state = tmp_path / "live.db"
    with SyncEngine(state) as engine:
        job_id = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory()).id
        before = digest(state)
        result = jobs(state)
        assert 0 == result.exit_code, result.output
        assert [job_id] == [j["id"] for j in json.loads(result.stdout)["value"]]
        assert before == digest(state)


def test_empty_file_is_refused_untouched(tmp_path: Path) -> None:
    """An empty file is not a state: refused in one line, and still empty (no tables, no WAL)."""
    state = tmp_path / "empty.db"
    state.touch()
    assert_refused(jobs(state), "has no jobs table")
    assert b"" == state.read_bytes()


def test_foreign_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    """Another program's SQLite file is refused; its bytes and journal mode are unchanged."""
    state = tmp_path / "other.db"
    db = sqlite3.connect(state)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    before = digest(state)
    assert_refused(jobs(state), "not a syncjob state file (it has no jobs table)")
    assert before == digest(state)
    db = sqlite3.connect(state)
    assert "delete" == db.execute("PRAGMA journal_mode").fetchone()[0]
    assert [("notes",)] == db.execute("SELECT name FROM sqlite_master").fetchall()
    db.close()


def test_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A text file is refused in one line, no traceback."""
    state = tmp_path / "notes.txt"
    state.write_text("not a database at all\n" * 50)
    before = digest(state)
    assert_refused(jobs(state), "not a syncjob state file")
    assert before == digest(state)


def test_newer_state_is_refused(tmp_path: Path) -> None:
    """A state from a newer syncjob (user_version past our migrations) is refused, untouched."""
    state = tmp_path / "future.db"
    made_state(state)
    db = sqlite3.connect(state)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    before = digest(state)
    assert_refused(jobs(state), f"newer than this syncjob ({len(MIGRATIONS)})")
    assert before == digest(state)


@pytest.mark.parametrize(
    ("version", "body", "words"),
    [
        (0, None, "state schema 0 but a jobs table"),
        (-3, None, "state schema -3"),
        (len(MIGRATIONS), "{not json", "cannot be read"),
        (len(MIGRATIONS), '{"schedule": {"interval": 5}}', "cannot be read"),
    ],
)
def test_broken_states_are_refused(
    tmp_path: Path, version: int, body: str | None, words: str
) -> None:
    """A broken user_version or an unreadable job row is one line on stderr, not a traceback."""
    state = tmp_path / "broken.db"
    made_state(state)
    db = sqlite3.connect(state)
    db.execute(f"PRAGMA user_version={version}")
    if body is not None:
        db.execute("UPDATE jobs SET body=?", (body,))
    db.commit()
    db.close()
    before = digest(state)
    assert_refused(jobs(state), words)
    assert before == digest(state)


def test_the_store_itself_still_migrates(tmp_path: Path) -> None:
    """Only the read-only path changed: SqliteStateStore still creates and migrates files."""
    store = SqliteStateStore(tmp_path / "new.db")
    assert len(MIGRATIONS) == store.schema_version
    store.close()
