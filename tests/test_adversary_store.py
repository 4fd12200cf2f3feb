"""Adversarial store tests: the SQLite store against the memory store (the reference
semantics), with large lists crossing the row threshold, two connections, odd checkpoints."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import MemoryStateStore, SqliteStateStore
from engine.directory_values import encode_values
from engine.store.base import Checkpoint, Link

ANCHORS = ["a", "b"]
NAMES = [f"uid=u{n:03d}" for n in range(140)]
UNIQUE = False
UNIQUE_LINKS = False
UNLINK_AND_REFERENCES = True
REFERENCED = [f"r{n:03d}" for n in range(80)]


@st.composite
def exported(draw: Any) -> str:
    size = draw(st.sampled_from([0, 1, 3, 60, 63, 64, 65, 70, 130]))
    start = draw(st.integers(0, 10))
    values: list[Any] = NAMES[start : start + size]
    shape = draw(st.sampled_from(["sorted", "sorted", "reversed", "dup", "ints"]))
    if shape == "reversed":
        values = values[::-1]
    elif shape == "dup" and values:
        values = sorted(values + values[:1])
    elif shape == "ints":
        values = list(range(size))
    body: dict[str, Any] = {"cn": "g", "member": values}
    if draw(st.booleans()):
        body["other"] = NAMES[: draw(st.sampled_from([0, 64, 66]))]
    prefix = draw(st.sampled_from(["", "", "?"]))
    return prefix + encode_values(body)


@st.composite
def checkpoint(draw: Any) -> Checkpoint:
    links = [
        Link("m", a, f"cn={a}", draw(exported()))
        for a in draw(st.lists(st.sampled_from(ANCHORS), max_size=2, unique=UNIQUE_LINKS))
    ]
    unlinks = [("m", a) for a in draw(st.lists(st.sampled_from(ANCHORS), max_size=1))]
    references = [
        (
            "m",
            a,
            tuple(
                ("users", r)
                for r in REFERENCED[: draw(st.sampled_from([0, 2, 63, 64, 70, 80]))]
                if draw(st.booleans()) or True
            )[draw(st.integers(0, 5)) :],
        )
        for a in draw(st.lists(st.sampled_from(ANCHORS), max_size=2, unique=UNIQUE))
    ]
    if not UNLINK_AND_REFERENCES:
        unlinks = [u for u in unlinks if u[1] not in {r[1] for r in references}]
    return Checkpoint(links=links, unlinks=unlinks, references=references)


def state(store: Any) -> tuple[Any, ...]:
    return (
        store.get_links("j", "m", ANCHORS),
        sorted(store.referrers("j", "users", REFERENCED)),
        {r: sorted(store.referrers("j", "users", [r])) for r in REFERENCED[::7]},
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), checkpoint()), min_size=1, max_size=6))
def test_sqlite_links_and_refs_are_what_the_memory_store_says(
    steps: list[tuple[int, Checkpoint]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        stores = [SqliteStateStore(path), SqliteStateStore(path)]  # two processes, alternately
        reference = MemoryStateStore()
        try:
            for which, work in steps:
                if not (work.links or work.unlinks or work.references):  # a reset instead
                    stores[which].reset("j", watermarks=False, escrows=False, links=True)
                    reference.reset("j", watermarks=False, escrows=False, links=True)
                else:
                    stores[which].commit("j", work)
                    reference.commit("j", work)
                expected = state(reference)
                assert state(stores[which]) == expected
                assert state(stores[1 - which]) == expected
        finally:
            for store in stores:
                store.close()


def large(n: int, start: int = 0) -> str:
    return encode_values({"cn": "g", "member": NAMES[start : start + n]})


def test_unlink_and_large_references_of_one_referrer_in_one_checkpoint(tmp_path: Path) -> None:
    """ObjectGone on a big group: its unlink and its (large) references in one checkpoint.
    The reverse index must hold every reference afterwards, as the memory store's does."""
    store = SqliteStateStore(tmp_path / "s.db")
    named = tuple(("users", r) for r in REFERENCED[:70])
    store.commit("j", Checkpoint(links=[Link("m", "g", "cn=g", large(70))],
                                 references=[("m", "g", named)]))  # fmt: skip
    store.commit("j", Checkpoint(unlinks=[("m", "g")], links=[Link("m", "g", "cn=g2", large(70))],
                                 references=[("m", "g", named)]))  # fmt: skip
    assert store.referrers("j", "users", ["r005"]) == [("m", "g")]
    store.close()


def test_one_referrer_named_twice_in_a_checkpoint_keeps_the_last(tmp_path: Path) -> None:
    """Like the memory store, the last references of a referrer in a checkpoint win (a page
    holding one anchor twice: an upsert then a delete)."""
    store = SqliteStateStore(tmp_path / "s.db")
    named = tuple(("users", r) for r in REFERENCED[:70])
    store.commit("j", Checkpoint(references=[("m", "g", named[:2]), ("m", "g", ())]))
    assert store.referrers("j", "users", ["r000"]) == []
    store.commit("j", Checkpoint(references=[("m", "g", named), ("m", "g", named[:1])]))
    assert store.referrers("j", "users", ["r005"]) == []
    store.close()


def test_one_anchor_linked_twice_in_a_checkpoint_reads_back_the_last(tmp_path: Path) -> None:
    """Two links of one anchor in one checkpoint (a page holding one anchor twice), both with
    a large list, in a scope without value rows yet: the last is what reads back."""
    store = SqliteStateStore(tmp_path / "s.db")
    first, last = Link("m", "g", "cn=g", large(66)), Link("m", "g", "cn=g", large(64))
    store.commit("j", Checkpoint(links=[first, last]))
    assert store.get_links("j", "m", ["g"]) == {"g": last}
    store.close()
