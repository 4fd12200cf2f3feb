"""The contract every connector passes: memory, the SQLite test directory, LDAP (real slapd).

Each connector comes as a dialect (``tests/contract/dialects.py``): the assertions below are
the same for all; the dialect seeds objects as the directory's own tools would, returns the
anchors the directory gave, and translates attribute names (``userName`` is LDAP's ``uid``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import (
    Capability,
    CredentialsError,
    ObjectError,
    Source,
    Target,
    TransientError,
    UnreachableError,
    ValueDelta,
)
from connectors.memory import MemoryDirectory
from tests.contract.dialects import SOURCES, TARGETS, Dialect


@pytest.fixture(params=sorted(SOURCES))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dialect]:
    dialect = SOURCES[request.param](request, tmp_path)
    yield dialect
    dialect.close()


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dialect]:
    dialect = TARGETS[request.param](request, tmp_path)
    yield dialect
    dialect.close()


def as_values(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def read_all(source: Source, object_type: str, watermark: str | None, page_size: int = 3):
    pages = list(source.read(object_type, watermark, page_size))
    assert pages, "read() must yield at least one page"
    changes = [c for p in pages for c in p.changes]
    for page in pages[:-1]:
        assert page.changes, "only the last page may be empty"
    return changes, pages[-1].watermark, pages


class TestSource:
    def test_is_a_source(self, source: Dialect) -> None:
        """The connector satisfies the Source protocol and declares DELTA."""
        assert isinstance(source.connector, Source)
        assert Capability.DELTA in source.connector.capabilities
        source.connector.validate()

    def test_initial_read_returns_every_object(self, source: Dialect) -> None:
        """An initial read enumerates every object once, in pages of at most page_size."""
        anchors = {source.put("User", f"a{n}", {"userName": f"u{n}"}) for n in range(7)}
        changes, _, pages = read_all(source.connector, "User", None)
        assert sorted(anchors) == sorted(c.anchor for c in changes)
        assert all(len(p.changes) <= 3 for p in pages)
        assert all(c.kind == "upsert" and c.attributes for c in changes)

    def test_a_count_of_what_is_left_is_right_or_absent(self, source: Dialect) -> None:
        """Page.remaining, where a source gives it, counts the changes of this page and of
        every later page of the read (a progress hint: None is always allowed)."""
        for n in range(8):
            source.put("User", f"a{n}", {"userName": f"u{n}"})
        _, _, pages = read_all(source.connector, "User", None)
        left = [sum(len(p.changes) for p in pages[k:]) for k in range(len(pages))]
        for page, expected in zip(pages, left, strict=True):
            if page.remaining is not None and page.changes:
                assert page.remaining == expected
        resumed = list(source.connector.read("User", pages[0].watermark, 3))
        if resumed[0].remaining is not None:
            assert resumed[0].remaining == left[1]

    def test_delta_after_final_watermark_is_empty(self, source: Dialect) -> None:
        """Nothing changed after the final watermark: the delta is one empty page."""
        source.put("User", "a1", {"userName": "u1"})
        _, watermark, _ = read_all(source.connector, "User", None)
        changes, again, _ = read_all(source.connector, "User", watermark)
        assert [] == changes
        assert again

    def test_delta_sees_creates_updates_deletes(self, source: Dialect) -> None:
        """A delta read returns only what changed, with deletes as delete changes."""
        anchors = [source.put("User", f"a{n}", {"userName": f"u{n}"}) for n in range(4)]
        _, watermark, _ = read_all(source.connector, "User", None)
        source.put("User", "a1", {"userName": "u1", "mail": "new@x"})
        added = source.put("User", "a9", {"userName": "u9"})
        source.remove("User", "a2")
        changes, _, _ = read_all(source.connector, "User", watermark)
        kinds = {c.anchor: c.kind for c in changes}
        assert {anchors[1]: "upsert", added: "upsert", anchors[2]: "delete"} == kinds
        updated = next(c for c in changes if c.anchor == anchors[1])
        assert updated.attributes is not None
        assert "new@x" in as_values(updated.attributes[source.name("mail")])

    def test_initial_read_resumes_from_any_page(self, source: Dialect) -> None:
        """Resuming from page k's watermark yields exactly the objects after page k."""
        for n in range(10):
            source.put("User", f"a{n:02d}", {"userName": f"u{n}"})
        connector = source.connector
        pages = list(connector.read("User", None, 3))
        for k, page in enumerate(pages[:-1]):
            rest = [c.anchor for p in connector.read("User", page.watermark, 3) for c in p.changes]
            expected = [c.anchor for p in pages[k + 1 :] for c in p.changes]
            assert expected == rest

    def test_changes_during_initial_read_arrive_as_delta(self, source: Dialect) -> None:
        """An object created while an initial read is under way is not lost."""
        for n in range(5):
            source.put("User", f"a{n}", {"userName": f"u{n}"})
        iterator = source.connector.read("User", None, 2)
        first = next(iterator)
        late = source.put("User", "late", {"userName": "late"})
        rest = list(iterator)
        final = (rest[-1] if rest else first).watermark
        changes, _, _ = read_all(source.connector, "User", final)
        assert late in {c.anchor for c in changes}

    def test_rename_keeps_the_anchor(self, source: Dialect) -> None:
        """Changing the naming attribute is an update of the same anchor."""
        anchor = source.put("User", "a1", {"userName": "old", "cn": "Old Name"})
        _, watermark, _ = read_all(source.connector, "User", None)
        assert anchor == source.put("User", "a1", {"userName": "new", "cn": "New Name"})
        changes, _, _ = read_all(source.connector, "User", watermark)
        assert [(anchor, "upsert")] == [(c.anchor, c.kind) for c in changes]
        assert changes[0].attributes is not None
        assert "new" == changes[0].attributes[source.name("userName")]

    def test_multi_valued_attributes_are_lists(self, source: Dialect) -> None:
        """Multi-valued attributes come back as lists, in order."""
        anchor = source.put(
            "User", "a1", {"userName": "u", "proxyAddresses": ["smtp:a@x", "smtp:b@x"]}
        )
        got = source.connector.get("User", anchor)
        assert got is not None and ["smtp:a@x", "smtp:b@x"] == got[source.name("proxyAddresses")]
        source.remove("User", "a1")
        assert source.connector.get("User", anchor) is None


class TestTarget:
    def test_is_a_target(self, target: Dialect) -> None:
        """The connector satisfies the Target protocol."""
        assert isinstance(target.connector, Target)
        target.connector.validate()

    def test_create_find_update_delete(self, target: Dialect) -> None:
        """The full life of one object through the target interface."""
        connector, name = target.connector, target.name
        ref = connector.create(
            "User", target.attributes("User", {"userName": "Ada@Example.org", "mail": "a@x"})
        )
        assert ref == connector.find("User", name("userName"), "ada@example.org")
        assert connector.find("User", name("userName"), "nobody") is None
        new_ref = connector.update("User", ref, {name("mail"): "b@x", name("department"): "R&D"})
        ref = new_ref or ref
        assert {"userName": "Ada@Example.org", "mail": "b@x", "department": "R&D"} == target.get(
            "User", ref
        )
        connector.update("User", ref, {name("department"): None})
        assert "department" not in (target.get("User", ref) or {})
        connector.delete("User", ref, soft=False)
        assert target.get("User", ref) is None
        assert connector.find("User", name("userName"), "ada@example.org") is None

    def test_soft_delete_disables(self, target: Dialect) -> None:
        """delete(soft=True) keeps the object but marks it inactive, where the connector
        declares SOFT_DELETE; the others refuse it for that object rather than delete it."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "u"}))
        if Capability.SOFT_DELETE not in connector.capabilities:
            with pytest.raises(ObjectError):
                connector.delete("User", ref, soft=True)
            assert target.get("User", ref) is not None
            return
        connector.delete("User", ref, soft=True)
        got = target.get("User", ref)
        assert got is not None and got.get("active") is False

    def test_delete_of_missing_object_succeeds(self, target: Dialect) -> None:
        """A replayed delete is harmless."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "u"}))
        connector.delete("User", ref, soft=False)
        connector.delete("User", ref, soft=False)

    def test_update_of_missing_object_is_an_object_error(self, target: Dialect) -> None:
        """Updating an object that does not exist escrows that object, nothing else."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "gone"}))
        connector.delete("User", ref, soft=False)
        with pytest.raises(ObjectError):
            connector.update("User", ref, {target.name("mail"): "x"})

    def test_multi_valued_write_and_clear(self, target: Dialect) -> None:
        """A list value is stored as a list; an empty list clears it."""
        connector = target.connector
        ref = connector.create(
            "User", target.attributes("User", {"userName": "u", "emails": ["a@x", "b@x"]})
        )
        assert ["a@x", "b@x"] == (target.get("User", ref) or {})["emails"]
        connector.update("User", ref, {target.name("emails"): []})
        assert "emails" not in (target.get("User", ref) or {})

    def test_value_deltas_add_and_remove_single_values(self, target: Dialect) -> None:
        """A target that declares VALUE_DELTAS adds and removes exactly the values named,
        and a replayed delta (values already added or already gone) changes nothing."""
        connector = target.connector
        if Capability.VALUE_DELTAS not in connector.capabilities:
            return  # the engine sends such a target whole lists
        emails = target.name("emails")
        ref = connector.create(
            "User", target.attributes("User", {"userName": "u", "emails": ["a@x", "b@x"]})
        )
        change = ValueDelta(add=("c@x",), remove=("a@x",))
        connector.update("User", ref, {emails: change})
        assert ["b@x", "c@x"] == sorted((target.get("User", ref) or {})["emails"])
        connector.update("User", ref, {emails: change})
        assert ["b@x", "c@x"] == sorted((target.get("User", ref) or {})["emails"])


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
