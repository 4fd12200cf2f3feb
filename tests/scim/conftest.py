"""Real SCIM servers: ``scim_server`` (one per test session, shared: tests use names of their
own) and ``make_scim_server`` for a test that needs its own instance. Without scim2-server
these tests are skipped, and with ``CI=true`` they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scim.server import ScimServer, require_scim_server


@pytest.fixture(scope="session")
def scim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    require_scim_server()
    with ScimServer(tmp_path_factory.mktemp("scim-server"), "scim") as server:
        yield server


@pytest.fixture
def make_scim_server(tmp_path: Path) -> Iterator[Callable[[str], ScimServer]]:
    """Start instances of this test's own (by name); all are stopped after the test."""
    require_scim_server()
    started: list[ScimServer] = []

    def make(name: str = "scim") -> ScimServer:
        server = ScimServer(tmp_path / name, name)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()
