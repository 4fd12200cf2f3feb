"""The contract every connector passes; today the memory and SQLite test directories, later
LDAP and SCIM.

A new connector joins by adding a factory to CONNECTORS: a callable taking a fresh temporary
directory (for connectors that need files) and returning a fresh ``(connector, seed)`` where
``seed(object_type, anchor, attributes)`` creates a source object the way that directory's own
tools would (for the memory directory, ``put``). A connector with ``close()`` is closed after
each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    Capability,
    CredentialsError,
    ObjectError,
    Source,
    Target,
    TransientError,
    UnreachableError,
)
from connectors.memory import MemoryDirectory
from tests.crash.sqlite_directory import SqliteDirectory

Seed = Callable[[str, str, dict[str, Any]], None]


def _memory(tmp_path: Path) -> tuple[MemoryDirectory, Seed]:
    directory = MemoryDirectory()
    return directory, directory.put


def _sqlite(tmp_path: Path) -> tuple[SqliteDirectory, Seed]:
    directory = SqliteDirectory(tmp_path / "directory.sqlite")
    return directory, directory.put


CONNECTORS: dict[str, Callable[[Path], tuple[Any, Seed]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(CONNECTORS))
def connector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Seed]]:
    made = CONNECTORS[request.param](tmp_path)
    yield made
    close = getattr(made[0], "close", None)
    if close is not None:
        close()


def read_all(source: Source, object_type: str, watermark: str | None, page_size: int = 3):
    pages = list(source.read(object_type, watermark, page_size))
    assert pages, "read() must yield at least one page"
    changes = [c for p in pages for c in p.changes]
    for page in pages[:-1]:
        assert page.changes, "only the last page may be empty"
    return changes, pages[-1].watermark, pages


class TestSource:
    def test_is_a_source(self, connector: tuple[Any, Seed]) -> None:
        """The connector satisfies the Source protocol and declares DELTA."""
        source, _ = connector
        assert isinstance(source, Source)
        assert Capability.DELTA in source.capabilities
        source.validate()

    def test_initial_read_returns_every_object(self, connector: tuple[Any, Seed]) -> None:
        """An initial read enumerates every object once, in pages of at most page_size."""
        source, seed = connector
        for n in range(7):
            seed("User", f"a{n}", {"userName": f"u{n}"})
        changes, _, pages = read_all(source, "User", None)
        assert sorted(f"a{n}" for n in range(7)) == sorted(c.anchor for c in changes)
        assert all(len(p.changes) <= 3 for p in pages)
        assert all(c.kind == "upsert" and c.attributes for c in changes)

    def test_delta_after_final_watermark_is_empty(self, connector: tuple[Any, Seed]) -> None:
        """Nothing changed after the final watermark: the delta is one empty page."""
        source, seed = connector
        seed("User", "a1", {"userName": "u1"})
        _, watermark, _ = read_all(source, "User", None)
        changes, again, _ = read_all(source, "User", watermark)
        assert [] == changes
        assert again

    def test_delta_sees_creates_updates_deletes(self, connector: tuple[Any, Seed]) -> None:
        """A delta read returns only what changed, with deletes as delete changes."""
        source, seed = connector
        for n in range(4):
            seed("User", f"a{n}", {"userName": f"u{n}"})
        _, watermark, _ = read_all(source, "User", None)
        seed("User", "a1", {"userName": "u1", "mail": "new@x"})
        seed("User", "a9", {"userName": "u9"})
        source.remove("User", "a2")
        changes, _, _ = read_all(source, "User", watermark)
        kinds = {c.anchor: c.kind for c in changes}
        assert {"a1": "upsert", "a9": "upsert", "a2": "delete"} == kinds
        updated = next(c for c in changes if c.anchor == "a1")
        assert updated.attributes is not None and "new@x" == updated.attributes["mail"]

    def test_initial_read_resumes_from_any_page(self, connector: tuple[Any, Seed]) -> None:
        """Resuming from page k's watermark yields exactly the objects after page k."""
        source, seed = connector
        for n in range(10):
            seed("User", f"a{n:02d}", {"userName": f"u{n}"})
        pages = list(source.read("User", None, 3))
        for k, page in enumerate(pages[:-1]):
            rest = [c.anchor for p in source.read("User", page.watermark, 3) for c in p.changes]
            expected = [c.anchor for p in pages[k + 1 :] for c in p.changes]
            assert expected == rest

    def test_changes_during_initial_read_arrive_as_delta(
        self, connector: tuple[Any, Seed]
    ) -> None:
        """An object created while an initial read is under way is not lost."""
        source, seed = connector
        for n in range(5):
            seed("User", f"a{n}", {"userName": f"u{n}"})
        iterator = source.read("User", None, 2)
        first = next(iterator)
        seed("User", "late", {"userName": "late"})
        rest = list(iterator)
        final = (rest[-1] if rest else first).watermark
        changes, _, _ = read_all(source, "User", final)
        assert "late" in {c.anchor for c in changes}

    def test_rename_keeps_the_anchor(self, connector: tuple[Any, Seed]) -> None:
        """Changing the naming attribute is an update of the same anchor."""
        source, seed = connector
        seed("User", "a1", {"userName": "old", "cn": "Old Name"})
        _, watermark, _ = read_all(source, "User", None)
        seed("User", "a1", {"userName": "old", "cn": "New Name"})
        changes, _, _ = read_all(source, "User", watermark)
        assert [("a1", "upsert")] == [(c.anchor, c.kind) for c in changes]

    def test_multi_valued_attributes_are_lists(self, connector: tuple[Any, Seed]) -> None:
        """Multi-valued attributes come back as lists, in order."""
        source, seed = connector
        seed("User", "a1", {"userName": "u", "proxyAddresses": ["smtp:a@x", "smtp:b@x"]})
        got = source.get("User", "a1")
        assert got is not None and ["smtp:a@x", "smtp:b@x"] == got["proxyAddresses"]
        assert source.get("User", "missing") is None


class TestTarget:
    def test_is_a_target(self, connector: tuple[Any, Seed]) -> None:
        """The connector satisfies the Target protocol."""
        target, _ = connector
        assert isinstance(target, Target)
        target.validate()

    def test_create_find_update_delete(self, connector: tuple[Any, Seed]) -> None:
        """The full life of one object through the target interface."""
        target, _ = connector
        ref = target.create("User", {"userName": "Ada@Example.org", "mail": "a@x"})
        assert ref == target.find("User", "userName", "ada@example.org")
        assert target.find("User", "userName", "nobody") is None
        target.update("User", ref, {"mail": "b@x", "department": "R&D"})
        assert {"userName": "Ada@Example.org", "mail": "b@x", "department": "R&D"} == dict(
            target.get("User", ref) or {}
        )
        target.update("User", ref, {"department": None})
        assert "department" not in (target.get("User", ref) or {})
        target.delete("User", ref, soft=False)
        assert target.get("User", ref) is None
        assert target.find("User", "userName", "ada@example.org") is None

    def test_soft_delete_disables(self, connector: tuple[Any, Seed]) -> None:
        """delete(soft=True) keeps the object but marks it inactive."""
        target, _ = connector
        assert Capability.SOFT_DELETE in target.capabilities
        ref = target.create("User", {"userName": "u"})
        target.delete("User", ref, soft=True)
        got = target.get("User", ref)
        assert got is not None and got.get("active") is False

    def test_delete_of_missing_object_succeeds(self, connector: tuple[Any, Seed]) -> None:
        """A replayed delete is harmless."""
        target, _ = connector
        ref = target.create("User", {"userName": "u"})
        target.delete("User", ref, soft=False)
        target.delete("User", ref, soft=False)

    def test_update_of_missing_object_is_an_object_error(
        self, connector: tuple[Any, Seed]
    ) -> None:
        """Updating an object that does not exist escrows that object, nothing else."""
        target, _ = connector
        with pytest.raises(ObjectError):
            target.update("User", "no-such-ref", {"mail": "x"})

    def test_multi_valued_write_and_clear(self, connector: tuple[Any, Seed]) -> None:
        """A list value is stored as a list; an empty list clears it."""
        target, _ = connector
        ref = target.create("User", {"userName": "u", "emails": ["a@x", "b@x"]})
        assert ["a@x", "b@x"] == (target.get("User", ref) or {})["emails"]
        target.update("User", ref, {"emails": []})
        assert "emails" not in (target.get("User", ref) or {})


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
