"""ScimSource against a real scim2-server (each test on a server of its own)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from connectors.base import (
    Capability,
    CredentialsError,
    Source,
    TransientError,
    UnreachableError,
    WatermarkExpired,
)
from connectors.scim import ScimSource
from connectors.scim.paths import ENTERPRISE
from engine import SystemClock
from tests.scim.faults import FaultProxy
from tests.scim.server import ScimServer

MakeServer = Callable[[str], ScimServer]
MANAGER = f"{ENTERPRISE}:manager"


def _source(server: ScimServer, url: str | None = None, **options: Any) -> ScimSource:
    return ScimSource(url or server.url, server.token.reveal(), **options)


def _users(server: ScimServer, count: int, prefix: str = "u") -> list[str]:
    return [server.create("Users", {"userName": f"{prefix}{n:03d}"})["id"] for n in range(count)]


def _anchors(pages: Any) -> list[str]:
    return [c.anchor for p in pages for c in p.changes]


def test_is_a_source_with_delta_and_references(make_scim_server: MakeServer) -> None:
    source = _source(make_scim_server("protocol"))
    assert isinstance(source, Source)
    assert source.capabilities == {Capability.DELTA, Capability.REFERENCES}
    assert list(source.object_types()) == ["User", "Group"]


def test_pages_resume_exactly_while_resources_are_deleted(make_scim_server: MakeServer) -> None:
    """startIndex shifts back when resources before it go away; the watermark does not."""
    server = make_scim_server("resume")
    ids = sorted(_users(server, 30))
    source = _source(server)
    pages = list(source.read("User", None, 4))
    assert _anchors(pages) == ids  # sorted by id, each once
    third = pages[2]
    for gone in ids[:7]:  # more than lookback, all before the position
        server.request("DELETE", f"/Users/{gone}")
    rest = _anchors(source.read("User", third.watermark, 4))
    assert rest == ids[12:]
    seen = server.requests()
    assert any("sortBy=id" in r.query and "startIndex" in r.query for r in seen)


def test_resume_with_the_position_moved_forward(make_scim_server: MakeServer) -> None:
    server = make_scim_server("forward")
    ids = sorted(_users(server, 12))
    source = _source(server)
    pages = list(source.read("User", None, 3))
    added = set(_users(server, 10, prefix="late"))
    rest = _anchors(source.read("User", pages[1].watermark, 3))
    assert [a for a in rest if a not in added] == ids[6:]
    assert all(a > ids[5] for a in rest)  # nothing before the position comes again
    assert len(rest) == len(set(rest))


def test_a_write_seen_late_widens_the_delta_window(make_scim_server: MakeServer) -> None:
    """A write that becomes visible after a read that saw newer stamps (a slow transaction,
    played by the proxy hiding it) is read inside the overlap, and the window then keeps twice
    its lateness in view: a later write that comes later still than the configured overlap
    is not skipped (issue #17, point 2)."""
    server = make_scim_server("late")
    _users(server, 2)
    with FaultProxy(server.url) as proxy:
        source = _source(server, proxy.url, overlap=1.0)
        mark = list(source.read("User", None, 10))[-1].watermark

        def delta() -> set[str]:
            nonlocal mark
            pages = list(source.read("User", mark, 10))
            mark = pages[-1].watermark
            return {c.anchor for p in pages for c in p.changes}

        def slow_write(lateness: float) -> tuple[str, str]:
            slow = server.create("Users", {"userName": f"slow{lateness}"})["id"]
            proxy.hidden.add(slow)  # stamped now, visible only once the newer write was read
            SystemClock().sleep(lateness)
            quick = server.create("Users", {"userName": f"quick{lateness}"})["id"]
            return slow, quick

        slow, quick = slow_write(0.7)  # inside the 1 s overlap
        assert delta() == {quick}
        proxy.hidden.clear()
        assert delta() == {slow}
        assert json.loads(mark.removeprefix("scim1:"))["reach"] >= 1.4
        slow, quick = slow_write(1.2)  # later than the configured overlap
        assert delta() == {quick}
        proxy.hidden.clear()
        assert delta() == {slow}
        # the window just widened: what its new part holds is read once more (harmless
        # upserts of unchanged resources), then nothing comes again
        everyone = server.request("GET", "/Users", params={"count": 100}).json()["Resources"]
        assert delta() <= {r["id"] for r in everyone}
        assert delta() == set()


def test_created_during_read_and_modified_arrive_in_delta(make_scim_server: MakeServer) -> None:
    server = make_scim_server("delta")
    ids = sorted(_users(server, 6))
    source = _source(server)
    iterator = source.read("User", None, 2)
    next(iterator)
    late = server.create("Users", {"userName": "late"})["id"]
    server.request("PATCH", f"/Users/{ids[0]}", _replace("displayName", "Changed"))
    final = list(iterator)[-1].watermark
    changes = [c for p in source.read("User", final, 2) for c in p.changes]
    assert {c.anchor for c in changes} == {late, ids[0]}
    changed = next(c for c in changes if c.anchor == ids[0])
    assert changed.attributes is not None and changed.attributes["displayName"] == "Changed"
    last = list(source.read("User", final, 2))[-1].watermark
    assert [] == _anchors(source.read("User", last, 2))


def test_deletes_seen_by_the_same_source_and_by_a_delete_scan(
    make_scim_server: MakeServer,
) -> None:
    server = make_scim_server("deletes")
    ids = _users(server, 5)
    source = _source(server)
    final = list(source.read("User", None, 10))[-1].watermark
    server.request("DELETE", f"/Users/{ids[1]}")
    changes = [c for p in source.read("User", final, 10) for c in p.changes]
    assert [(c.kind, c.anchor) for c in changes] == [("delete", ids[1])]
    # a restarted engine: the ids are not remembered, so the interval's delete scan finds it
    restarted = _source(server, delete_scan_interval=0.5)
    assert [] == _anchors(restarted.read("User", final, 10))
    SystemClock().sleep(0.6)
    server.create("Users", {"userName": "moves-the-server-clock"})
    with pytest.raises(WatermarkExpired, match="delete scan due"):
        list(restarted.read("User", final, 10))


def test_references_are_ids(make_scim_server: MakeServer) -> None:
    server = make_scim_server("refs")
    boss = server.create("Users", {"userName": "boss"})["id"]
    worker = server.create(
        "Users", {"userName": "worker", ENTERPRISE: {"manager": {"value": boss}}}
    )
    group = server.create(
        "Groups", {"displayName": "team", "members": [{"value": boss}, {"value": worker["id"]}]}
    )
    source = _source(server)
    users = {c.anchor: c.attributes for p in source.read("User", None, 10) for c in p.changes}
    assert users[worker["id"]] is not None and users[worker["id"]][MANAGER] == boss
    groups = [c for p in source.read("Group", None, 10) for c in p.changes]
    assert [(c.anchor, c.attributes) for c in groups] == [
        (group["id"], {"displayName": "team", "members": [boss, worker["id"]]})
    ]


def test_get(make_scim_server: MakeServer) -> None:
    server = make_scim_server("get")
    created = server.create(
        "Users",
        {
            "userName": "ada",
            "name": {"givenName": "Ada"},
            "emails": [{"type": "work", "value": "ada@x"}],
            ENTERPRISE: {"department": "R&D"},
        },
    )
    source = _source(server)
    assert source.get("User", created["id"]) == {
        "userName": "ada",
        "name.givenName": "Ada",
        'emails[type eq "work"].value': "ada@x",
        f"{ENTERPRISE}:department": "R&D",
    }
    server.request("DELETE", f"/Users/{created['id']}")
    assert source.get("User", created["id"]) is None


def test_validate_says_what_failed(scim_server: ScimServer) -> None:
    _source(scim_server).validate()
    wrong = ScimSource(scim_server.url, "wrong-token-123")
    with pytest.raises(CredentialsError, match="SecretToken") as refused:
        wrong.validate()
    assert "wrong-token-123" not in str(refused.value) + repr(wrong)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnreachableError, match="does not answer"):
        ScimSource(f"http://127.0.0.1:{port}/v2", "t").validate()


def test_throttling_is_transient_with_retry_after(scim_server: ScimServer) -> None:
    with FaultProxy(scim_server.url) as proxy:
        source = _source(scim_server, proxy.url)
        source.validate()
        proxy.fail(429, 1, retry_after=12)
        with pytest.raises(TransientError) as throttled:
            list(source.read("User", None, 10))
        assert throttled.value.retry_after == 12.0


def test_without_sort_or_filter_every_delta_is_a_full_read(make_scim_server: MakeServer) -> None:
    server = make_scim_server("plain")
    _users(server, 3)
    source = _source(server)
    final = list(source.read("User", None, 10))[-1].watermark
    source._features = type(source.features())(filter=False, sort=False)
    with pytest.raises(WatermarkExpired, match="full read"):
        list(source.read("User", final, 10))
    assert len(_anchors(source.read("User", None, 2))) == 3


def _replace(path: str, value: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": path, "value": value}],
    }
