"""Shared fixtures: a manual clock, both state stores, and a small engine factory."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryDirectory
from engine import ManualClock, MemoryStateStore, SqliteStateStore, StateStore, SyncEngine


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """Every store-facing test runs against both stores."""
    made: StateStore = (
        MemoryStateStore() if request.param == "memory" else SqliteStateStore(tmp_path / "s.db")
    )
    yield made
    made.close()


def user(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "userName": f"user{n}@example.org",
        "displayName": f"User {n}",
        "mail": f"user{n}@example.org",
        "department": "Sales",
        **extra,
    }


def fill(directory: MemoryDirectory, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        directory.put("User", f"s{n:06d}", user(n))


def target_users(target: MemoryDirectory) -> dict[str, dict[str, Any]]:
    """The target's users keyed by userName, without engine-made refs: the comparable state."""
    return {attrs["userName"]: dict(attrs) for attrs in target.list("User").values()}


@pytest.fixture
def make_job(
    clock: ManualClock, tmp_path: Path
) -> Callable[..., tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]]:
    """Build an engine on SQLite with a started memoryToMemory job."""

    def make(
        users: int = 0, settings: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[SyncEngine, str, MemoryDirectory, MemoryDirectory]:
        source, target = MemoryDirectory(), MemoryDirectory()
        fill(source, users)
        engine = SyncEngine(tmp_path / "state.db", clock)
        job = engine.create_job("memoryToMemory", source, target, settings=settings, **kwargs)
        engine.start(job.id)
        return engine, job.id, source, target

    return make


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Runner processes a test starts (and may kill): whatever still runs is killed after."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)
