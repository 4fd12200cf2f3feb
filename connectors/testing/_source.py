"""SourceContract: the tests every Source passes, and the helpers they read with."""

from __future__ import annotations

from connectors.base import Capability, Change, Page, ReadsMany, Source
from connectors.testing._dialect import Dialect


def as_values(value: object) -> list[object]:
    """A value as a list of values (a single value is a list of one)."""
    return value if isinstance(value, list) else [value]


def read_all(
    source: Source, object_type: str, watermark: str | None, page_size: int = 3
) -> tuple[list[Change], str, list[Page]]:
    """Every page of one read, checked for the shape the contract requires: the changes, the
    final watermark and the pages."""
    pages = list(source.read(object_type, watermark, page_size))
    assert pages, "read() must yield at least one page"
    changes = [c for p in pages for c in p.changes]
    for page in pages[:-1]:
        assert page.changes, "only the last page may be empty"
    return changes, pages[-1].watermark, pages


class SourceContract:
    """The contract of :class:`connectors.base.Source`, for a subclass named ``Test...`` that
    provides a fixture ``source`` yielding a :class:`Dialect` of an empty directory."""

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
        assert changes == []
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
        assert changes[0].attributes[source.name("userName")] == "new"

    def test_multi_valued_attributes_are_lists(self, source: Dialect) -> None:
        """Multi-valued attributes come back as lists, in order."""
        anchor = source.put(
            "User", "a1", {"userName": "u", "proxyAddresses": ["smtp:a@x", "smtp:b@x"]}
        )
        got = source.connector.get("User", anchor)
        assert got is not None and got[source.name("proxyAddresses")] == ["smtp:a@x", "smtp:b@x"]
        source.remove("User", "a1")
        assert source.connector.get("User", anchor) is None

    def test_get_many_answers_as_get(self, source: Dialect) -> None:
        """A source that reads many objects at once (ReadsMany) answers for each anchor as
        ``get`` does: the attributes, or None for one gone; every anchor asked is a key."""
        connector = source.connector
        if not isinstance(connector, ReadsMany):
            return
        anchors = [source.put("User", f"a{n}", {"userName": f"u{n}"}) for n in range(5)]
        gone = anchors.pop()
        source.remove("User", "a4")
        found = connector.get_many("User", [*anchors, gone])
        assert sorted(found) == sorted([*anchors, gone])
        assert found[gone] is None
        for anchor in anchors:
            assert found[anchor] == source.connector.get("User", anchor)
