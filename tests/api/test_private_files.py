"""Private files whoever made them (issue #20, point 6): a state file holds the connections'
secrets and the directory's values, so every entry point creates it (and SQLite its -wal and
-shm) with mode 0600; ``syncjob serve`` makes an older, readable one private and says so, and
refuses a token-digest file that others may write (they could add a token of their own)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine
from engine.errors import ConfigurationError
from engine.service.serve import DIGEST_SUFFIX, make_private, token_digests


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The laxest umask a process may run with: files are made as their code asks."""
    before = os.umask(0)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_embedded_engine_makes_its_state_file_and_wal_private(
    tmp_path: Path, open_umask: None
) -> None:
    source, target = MemoryDirectory(), MemoryDirectory()
    source.put("User", "a", {"userName": "a"})
    with SyncEngine(tmp_path / "s.db", ManualClock()) as engine:
        job_id = engine.create_job("memoryToMemory", source, target).id or ""
        engine.start(job_id)
        engine.run_cycle(job_id)
        files = [p for p in tmp_path.iterdir() if p.name.startswith("s.db")]
        assert {p.name for p in files} >= {"s.db", "s.db-wal", "s.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_serve_makes_a_readable_state_file_private_and_says_so(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    with SyncEngine(state, ManualClock()):
        pass
    state.chmod(0o644)
    said: list[str] = []
    make_private(state, said.append)
    assert mode(state) == 0o600
    assert said == [f"syncjob serve: {state} was open to others (mode 0644); made 0600"]
    make_private(state, said.append)  # private already: nothing said
    assert len(said) == 1


def test_serve_refuses_a_token_digest_file_others_may_write(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    announced: list[str] = []
    token_digests(state, lambda token, path: announced.append(token))
    digests = state.with_name(state.name + DIGEST_SUFFIX)
    assert mode(digests) == 0o600 and len(announced) == 1
    digests.chmod(0o666)
    with pytest.raises(ConfigurationError, match="may be written by others"):
        token_digests(state)
    digests.chmod(0o644)  # readable is no risk to the tokens: only digests are kept
    assert len(token_digests(state)) == 1
