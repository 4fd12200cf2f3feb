"""The contract every connector passes (``connectors.testing``), run against ours: memory, the
SQLite test directory, LDAP (real slapd) and SCIM (real scim2-server).

Each connector comes as a dialect made by a factory in ``tests/contract/dialects.py``; a class
per connector runs the kit's SourceContract and TargetContract with it (a connector outside
this repository does the same with fixtures of its own: ``examples/json_directory``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from connectors.base import CredentialsError, ObjectError, TransientError, UnreachableError
from connectors.memory import MemoryDirectory
from connectors.testing import Dialect, SourceContract, TargetContract
from tests.contract.dialects import SOURCES, TARGETS


class _Ours:
    """The fixtures from the factories in dialects.py named by ``dialect``."""

    dialect: ClassVar[str]

    @pytest.fixture
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dialect]:
        dialect = SOURCES[self.dialect](request, tmp_path)
        yield dialect
        dialect.close()

    @pytest.fixture
    def target(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dialect]:
        dialect = TARGETS[self.dialect](request, tmp_path)
        yield dialect
        dialect.close()


class TestMemory(_Ours, SourceContract, TargetContract):
    dialect = "memory"


class TestSqlite(_Ours, SourceContract, TargetContract):
    dialect = "sqlite"


class TestLdap(_Ours, SourceContract, TargetContract):
    dialect = "ldap"


class TestScim(_Ours, SourceContract, TargetContract):
    dialect = "scim"


def test_every_dialect_runs_the_contract() -> None:
    """A factory added to SOURCES or TARGETS is tested only once a class above names it."""
    ours = _Ours.__subclasses__()
    assert sorted(SOURCES) == sorted(c.dialect for c in ours if issubclass(c, SourceContract))
    assert sorted(TARGETS) == sorted(c.dialect for c in ours if issubclass(c, TargetContract))


class TestFaults:
    """Fault knobs of the memory directory (the other connectors meet real faults instead)."""

    def test_object_fault_fails_n_times_then_clears(self) -> None:
        """fail_object fails exactly the next N writes touching that key."""
        target = MemoryDirectory()
        target.fail_object("User", "bad@x", times=2)
        for _ in range(2):
            with pytest.raises(ObjectError):
                target.create("User", {"userName": "bad@x"})
        target.create("User", {"userName": "good@x"})
        assert target.create("User", {"userName": "bad@x"})

    def test_transient_unreachable_credentials(self) -> None:
        """Transient, unreachable and credential faults raise their own error classes."""
        target = MemoryDirectory()
        target.transient_failures = 1
        with pytest.raises(TransientError):
            target.create("User", {"userName": "u"})
        target.create("User", {"userName": "u"})
        target.unreachable = True
        with pytest.raises(UnreachableError):
            list(target.read("User", None, 10))
        target.unreachable = False
        target.bad_credentials = True
        with pytest.raises(CredentialsError):
            target.validate()

    def test_writes_count_only_target_writes(self) -> None:
        """writes counts create/update/delete calls, not test-writer puts."""
        target = MemoryDirectory()
        target.put("User", "x", {"userName": "x"})
        ref = target.create("User", {"userName": "u"})
        target.update("User", ref, {"mail": "m"})
        target.delete("User", ref, soft=False)
        assert 3 == target.writes
