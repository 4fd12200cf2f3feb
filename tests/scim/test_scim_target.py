"""ScimTarget against a real scim2-server: what it sends (as the server recorded it) and what
the server then holds. Faults a server cannot make on demand come from the FaultProxy."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from connectors.base import (
    CredentialsError,
    ObjectError,
    ObjectGone,
    TransientError,
    UnreachableError,
    ValueDelta,
)
from connectors.memory import MemoryDirectory
from connectors.scim import ScimSource, ScimTarget
from connectors.scim.client import ScimEndpointMissing
from engine import ManualClock, SyncEngine
from engine.model import TaskExecutionResult
from tests.scim.faults import FaultProxy
from tests.scim.server import ENTERPRISE_SCHEMA, RecordedRequest, ScimServer

WORK = 'emails[type eq "work"].value'
DEPARTMENT = f"{ENTERPRISE_SCHEMA}:department"
MANAGER = f"{ENTERPRISE_SCHEMA}:manager"


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def target(scim_server: ScimServer) -> Iterator[ScimTarget]:
    """A target that finds live (the wire-shape tests assert the filtered GET)."""
    connector = ScimTarget(scim_server.url, scim_server.token.reveal(), find_cache_seconds=0)
    yield connector
    connector.close()


SENTINEL = "/ServiceProviderConfig"


def sent(server: ScimServer) -> list[RecordedRequest]:
    """What the server received since the last call, and forget it.

    The recorder writes a 204's line only after the client already has its answer (a 204 has
    no body to hold it back), so one more request, whose line is written before its answer,
    flushes it: the server has finished the earlier request's task by the time it answers.
    """
    server.request("GET", SENTINEL)
    got = [r for r in server.requests() if r.path != "/v2" + SENTINEL]
    server.clear_requests()
    return got


def ops(request: RecordedRequest) -> list[dict[str, object]]:
    assert "PATCH" == request.method
    operations: list[dict[str, object]] = request.body["Operations"]
    return operations


def member_ids(request: RecordedRequest) -> tuple[list[str], list[str]]:
    """(removed, added) member ids of one PATCH."""
    removed, added = [], []
    for op in ops(request):
        if op["op"] == "remove":
            path = str(op["path"])
            assert path.startswith('members[value eq "')
            removed.append(path.removeprefix('members[value eq "').removesuffix('"]'))
        else:
            assert ("add", "members") == (op["op"], op["path"])
            added += [m["value"] for m in op["value"]]  # type: ignore[attr-defined]
    return removed, added


def test_create_user_is_one_post(scim_server: ScimServer, target: ScimTarget) -> None:
    manager = target.create("User", {"userName": unique("boss")})
    name = unique()
    sent(scim_server)
    attributes = {
        "userName": name,
        "active": True,
        "name.givenName": "Ada",
        "name.familyName": "Lovelace",
        WORK: f"{name}@example.org",
        'phoneNumbers[type eq "mobile"].value': "+33 6",
        'addresses[type eq "work"].locality': "Paris",
        DEPARTMENT: "R&D",
        MANAGER: manager,
    }
    ref = target.create("User", attributes)
    [post] = sent(scim_server)
    assert ("POST", "/v2/Users", 201) == (post.method, post.path, post.status)
    assert [{"type": "work", "primary": True, "value": f"{name}@example.org"}] == post.body[
        "emails"
    ]
    assert {"department": "R&D", "manager": {"value": manager}} == post.body[ENTERPRISE_SCHEMA]
    assert attributes == target.get("User", ref)
    assert ref == target.find("User", "userName", name.upper())
    [get] = [r for r in sent(scim_server) if "filter" in r.query]
    assert [f'userName eq "{name.upper()}"'] == parse_qs(get.query)["filter"]


@pytest.mark.parametrize(
    ("attribute", "value", "wire"),
    [
        (WORK, "new@example.org", "new@example.org"),
        ("name.givenName", "Grace", "Grace"),
        (DEPARTMENT, "Ops", "Ops"),
        ("title", "Engineer", "Engineer"),
    ],
)
def test_modify_one_attribute_is_one_operation(
    scim_server: ScimServer, target: ScimTarget, attribute: str, value: str, wire: str
) -> None:
    ref = target.create(
        "User",
        {"userName": unique(), WORK: "old@example.org", "name.givenName": "A", DEPARTMENT: "D"},
    )
    sent(scim_server)
    assert target.update("User", ref, {attribute: value}) is None
    [patch] = sent(scim_server)
    assert ("/v2/Users/" + ref, 204) == (patch.path, patch.status)
    assert [{"op": "replace", "path": attribute, "value": wire}] == ops(patch)
    assert value == (target.get("User", ref) or {})[attribute]


def test_manager_is_a_reference(scim_server: ScimServer, target: ScimTarget) -> None:
    first, second = (target.create("User", {"userName": unique("m")}) for _ in range(2))
    ref = target.create("User", {"userName": unique(), MANAGER: first})
    sent(scim_server)
    target.update("User", ref, {MANAGER: second})
    [patch] = sent(scim_server)
    assert [{"op": "replace", "path": MANAGER, "value": {"value": second}}] == ops(patch)
    assert second == (target.get("User", ref) or {})[MANAGER]
    sent(scim_server)
    target.update("User", ref, {MANAGER: None, DEPARTMENT: None})
    assert [{"op": "remove", "path": MANAGER}, {"op": "remove", "path": DEPARTMENT}] == ops(
        sent(scim_server)[0]
    )
    assert MANAGER not in (target.get("User", ref) or {})


def test_a_new_filtered_value_is_added(scim_server: ScimServer, target: ScimTarget) -> None:
    """The server answers replace on a work email the user lacks with 400 noTarget: the target
    looks once and adds the element (with the address's parts merged into one)."""
    ref = target.create("User", {"userName": unique()})
    sent(scim_server)
    locality, code = 'addresses[type eq "work"].locality', 'addresses[type eq "work"].postalCode'
    target.update("User", ref, {WORK: "w@example.org", locality: "Paris", code: "75001"})
    first, look, second = sent(scim_server)
    assert (400, "GET", 204) == (first.status, look.method, second.status)
    assert [
        {"op": "add", "path": "emails", "value": [{"type": "work", "value": "w@example.org",
                                                   "primary": True}]},
        {"op": "add", "path": "addresses", "value": [{"type": "work", "locality": "Paris",
                                                      "postalCode": "75001"}]},
    ] == ops(second)  # fmt: skip
    got = target.get("User", ref) or {}
    assert ("w@example.org", "Paris", "75001") == (got[WORK], got[locality], got[code])


def test_disable_and_delete(scim_server: ScimServer, target: ScimTarget) -> None:
    ref = target.create("User", {"userName": unique(), "active": True})
    sent(scim_server)
    target.delete("User", ref, soft=True)
    [patch] = sent(scim_server)
    assert [{"op": "replace", "path": "active", "value": False}] == ops(patch)
    assert False is (target.get("User", ref) or {})["active"]
    sent(scim_server)
    target.delete("User", ref, soft=False)
    target.delete("User", ref, soft=False)  # already gone: done
    assert [("DELETE", 204), ("DELETE", 404)] == [(r.method, r.status) for r in sent(scim_server)]
    assert target.get("User", ref) is None
    target.delete("User", ref, soft=True)  # disabling what is gone: done too


def test_group_create_posts_without_members_then_patches_in_chunks(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    members = [f"m{n:03d}" for n in range(250)]  # no referential integrity on this server
    sent(scim_server)
    name = unique("group")
    ref = target.create("Group", {"displayName": name, "externalId": name, "members": members})
    post, *patches = sent(scim_server)
    assert ("POST", None) == (post.method, post.body.get("members"))
    assert 3 == len(patches)
    assert members == [m for p in patches for m in member_ids(p)[1]]
    assert sorted(members) == sorted((target.get("Group", ref) or {})["members"])
    assert ref == target.find("Group", "displayName", name)
    [lookup] = [r for r in sent(scim_server) if "filter" in r.query]
    assert ["members"] == parse_qs(lookup.query)["excludedAttributes"]


def test_member_changes_are_exactly_the_values_in_chunks(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    old = [f"o{n:03d}" for n in range(250)]
    new = [f"n{n:03d}" for n in range(250)]
    ref = target.create("Group", {"displayName": unique("group"), "members": old[:]})
    sent(scim_server)
    target.update("Group", ref, {"members": ValueDelta(add=tuple(new))})
    patches = sent(scim_server)
    assert 3 == len(patches) and all(p.status == 204 for p in patches)
    assert ([], new) == tuple(sum(x, []) for x in zip(*map(member_ids, patches), strict=True))
    target.update("Group", ref, {"members": ValueDelta(remove=tuple(old))})
    patches = sent(scim_server)
    assert 3 == len(patches)
    assert (old, []) == tuple(sum(x, []) for x in zip(*map(member_ids, patches), strict=True))
    assert sorted(new) == sorted((target.get("Group", ref) or {})["members"])
    # a replay changes nothing and fails nothing
    target.update("Group", ref, {"members": ValueDelta(add=(new[0],), remove=(old[0],))})
    assert sorted(new) == sorted((target.get("Group", ref) or {})["members"])


def test_rename_and_members_share_the_first_request(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    ref = target.create("Group", {"displayName": unique("group")})
    sent(scim_server)
    name = unique("renamed")
    target.update("Group", ref, {"displayName": name, "members": ValueDelta(add=("x",))})
    [patch] = sent(scim_server)
    assert {"op": "replace", "path": "displayName", "value": name} == ops(patch)[0]
    assert {"displayName": name, "members": ["x"]} == target.get("Group", ref)


def test_conflict_on_create_joins_the_existing_user(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    name = unique()
    existing = scim_server.create("Users", {"userName": name})["id"]
    sent(scim_server)
    assert existing == target.create("User", {"userName": name, "title": "Joined"})
    post, lookup, patch = sent(scim_server)
    assert (409, "GET", 204) == (post.status, lookup.method, patch.status)
    assert "Joined" == (target.get("User", existing) or {})["title"]


def test_update_of_a_deleted_user_is_object_gone(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    ref = target.create("User", {"userName": unique()})
    scim_server.request("DELETE", f"/Users/{ref}")
    with pytest.raises(ObjectGone):
        target.update("User", ref, {"title": "x"})


def test_a_refusal_names_scim_type_and_detail(target: ScimTarget) -> None:
    ref = target.create("User", {"userName": unique()})
    with pytest.raises(ObjectError) as caught:
        target.update("User", ref, {"noSuchAttribute": "x"})
    assert "400 invalidPath" in str(caught.value)
    assert "noSuchAttribute" in str(caught.value)  # the server's detail


def test_hostile_user_names_round_trip(target: ScimTarget) -> None:
    for name in (f'q"{unique()}\\', f'{unique()} or userName pr "', f"{unique()}\n\u00e9\t*"):
        ref = target.create("User", {"userName": name})
        assert ref == target.find("User", "userName", name)
        assert {"userName": name} == target.get("User", ref)
        assert target.find("User", "userName", name + "x") is None


def test_wrong_token_is_a_credentials_error(scim_server: ScimServer) -> None:
    wrong = "not-the-token-" + uuid.uuid4().hex
    connector = ScimTarget(scim_server.url, wrong)
    try:
        with pytest.raises(CredentialsError) as caught:
            connector.create("User", {"userName": unique()})
        with pytest.raises(CredentialsError):
            connector.validate()
    finally:
        connector.close()
    assert wrong not in str(caught.value) + repr(connector)


def test_throttling_is_transient_with_retry_after(scim_server: ScimServer) -> None:
    with FaultProxy(scim_server.url) as proxy:
        connector = ScimTarget(proxy.url, scim_server.token.reveal())
        try:
            proxy.fail(429, 1, retry_after=7)
            with pytest.raises(TransientError) as caught:
                connector.create("User", {"userName": unique()})
            assert 7.0 == caught.value.retry_after
            proxy.fail(503, 1, retry_after=2)
            with pytest.raises(TransientError) as busy:
                connector.update("User", "some-id", {"title": "x"})
            assert 2.0 == busy.value.retry_after
            assert connector.create("User", {"userName": unique()})  # and then it works
        finally:
            connector.close()


def test_slow_or_dropped_answers_are_transient(scim_server: ScimServer) -> None:
    with FaultProxy(scim_server.url) as proxy:
        connector = ScimTarget(proxy.url, scim_server.token.reveal(), timeout=0.3)
        try:
            proxy.delay(2.0, 1)
            with pytest.raises(TransientError):
                connector.create("User", {"userName": unique()})
            proxy.drop(1)
            with pytest.raises(TransientError):
                connector.delete("User", "some-id", soft=False)
        finally:
            connector.close()


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = ScimTarget(f"http://127.0.0.1:{port}/v2", "t")
    try:
        with pytest.raises(UnreachableError):
            connector.create("User", {"userName": "u"})
        with pytest.raises(UnreachableError):
            connector.validate()
    finally:
        connector.close()


def test_validate_and_unknown_types(target: ScimTarget) -> None:
    target.validate()
    with pytest.raises(ObjectError):
        target.create("Device", {"displayName": "d"})
    with pytest.raises(ObjectError):
        target.find("User", "not a path", "x")


def test_concurrent_writers_share_one_target(target: ScimTarget) -> None:
    """As the engine's worker pool calls it: each thread its own session, nothing mixed up."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    names = [unique("pool") for _ in range(80)]

    def write(name: str) -> tuple[str, str]:
        ref = target.create("User", {"userName": name, "title": name})
        target.update("User", ref, {DEPARTMENT: name})
        return name, ref

    with ThreadPoolExecutor(8) as pool:
        written = dict(pool.map(write, names))
    assert len(set(written.values())) == len(names)
    for name, ref in written.items():
        assert {"userName": name, "title": name, DEPARTMENT: name} == target.get("User", ref)


def test_find_answers_from_an_index_kept_current_by_the_targets_writes(
    scim_server: ScimServer,
) -> None:
    """The first find lists the type's userNames once; later finds send nothing; creates,
    renames and deletes of this target keep the index current; a resource someone else
    created answers our POST with 409, which drops the index and joins it."""
    indexed = ScimTarget(scim_server.url, scim_server.token.reveal())
    first = unique()
    ref = indexed.create("User", {"userName": first})
    sent(scim_server)
    assert indexed.find("User", "userName", first.upper()) == ref
    listing = sent(scim_server)
    assert [r.method for r in listing] == ["GET"] and "filter" not in listing[0].query
    other = unique()
    other_ref = indexed.create("User", {"userName": other})
    renamed = unique()
    indexed.update("User", other_ref, {"userName": renamed})
    sent(scim_server)
    assert (indexed.find("User", "userName", other), indexed.find("User", "userName", renamed)) == (
        None, other_ref
    )  # fmt: skip
    indexed.delete("User", ref, soft=False)
    assert indexed.find("User", "userName", first) is None
    assert [r.method for r in sent(scim_server)] == ["DELETE"]
    outsider = unique()
    made = scim_server.create("Users", {"userName": outsider})
    assert indexed.find("User", "userName", outsider) is None  # the index missed it
    assert indexed.create("User", {"userName": outsider, "title": "Joined"}) == made["id"]
    assert indexed.find("User", "userName", outsider) == made["id"]
    indexed.close()


def test_two_groups_of_one_name_are_ambiguous_and_named(
    scim_server: ScimServer, target: ScimTarget
) -> None:
    """Two groups with one displayName (the app does not make it unique): find refuses to
    choose, and its error names both ids, so the escrow says which to remove."""
    first = scim_server.create("Groups", {"displayName": "twins"})["id"]
    second = scim_server.create("Groups", {"displayName": "twins"})["id"]
    target.find_cache_seconds = 0  # the live filter, as after a create in doubt
    with pytest.raises(ObjectError, match="ambiguous") as refused:
        target.find("Group", "displayName", "twins")
    assert first in str(refused.value) and second in str(refused.value)


def test_a_wrong_base_address_path_fails_the_cycle_and_escrows_nothing(
    scim_server: ScimServer, tmp_path: Path
) -> None:
    """A BaseAddress with a wrong path (``/v2`` left out, a typo): every POST and GET on the
    collection answers 404. Was: each object escrowed with 404 while the job stayed Active;
    now the cycle fails saying the endpoint does not exist, nothing is escrowed, and the
    source read of such an address is an error, never an empty directory (issue #18, 1)."""
    wrong = scim_server.url.rsplit("/", 1)[0] + "/scim/v9"
    target = ScimTarget(wrong, scim_server.token.reveal())
    source = MemoryDirectory()
    for n in range(5):
        source.put("User", f"s{n}", {"userName": f"user{n}@example.org", "active": True})
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    job_id = engine.create_job("memoryToMemory", source, target).id
    assert job_id is not None
    engine.start(job_id)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.FAILED
    assert "the endpoint does not exist at this address" in str(execution.error)
    assert engine.escrows(job_id) == []
    engine.close()
    with pytest.raises(ScimEndpointMissing):
        list(ScimSource(wrong, scim_server.token.reveal()).read("User", None, 10))
