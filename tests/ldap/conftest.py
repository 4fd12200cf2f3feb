"""Real slapd servers: ``slapd_source`` and ``slapd_target`` (one each per test session), and
``make_slapd`` for a test that needs its own instance. Without slapd these tests are skipped,
and with ``CI=true`` they fail. The session instances are shared: tests use names of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ldap.slapd import Slapd, require_slapd


@pytest.fixture(scope="session")
def slapd_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_slapd()
    with Slapd(tmp_path_factory.mktemp("slapd-source"), "source") as server:
        yield server


@pytest.fixture(scope="session")
def slapd_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_slapd()
    with Slapd(tmp_path_factory.mktemp("slapd-target"), "target") as server:
        yield server


@pytest.fixture
def make_slapd(tmp_path: Path) -> Iterator[Callable[..., Slapd]]:
    """Start extra instances in this test (keyword options as for :class:`Slapd`); whatever is
    still running is stopped afterwards."""
    require_slapd()
    started: list[Slapd] = []

    def make(name: str, **options: Any) -> Slapd:
        server = Slapd(tmp_path / name, name, **options)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()
