"""Accesslog deltas against writes in flight: every change arrives, however writes interleave.

slapd stamps an accesslog record's ``reqStart`` when the operation arrives but stores the
record (makes it visible) only when the operation ends. A ``member`` replace of 20,000 values
is in flight in slapd for 0.1-0.2 s here (after ldap3 spent 0.3-0.5 s encoding it), longer on
a busy server; fast writes by other clients that arrive meanwhile are logged, and visible,
before it, with later ``reqStart`` values. A delta read in that
window must not leave the slow record behind for good (issue #17, point 2).

Each test starts a slapd of its own (``make_slapd``) whose pool of users and big groups is
loaded by slapadd before it starts: seconds of LDAP adds saved, and the session servers'
accesslogs do not fill with records of 20,000 values.

- ``test_a_slow_replace_logged_after_a_read_still_arrives``: one slow replace, one fast write
  to another group while it runs, a delta read between them, a delta read after: the exact
  interleaving, checked in the accesslog (retried when the machine did not produce it).
- ``test_every_change_arrives_while_slow_replaces_run``: three fast writers, one writer of
  slow replaces and a reader of deltas run for a while; afterwards what the reader received
  (the last upsert of every anchor, as the engine keeps it) must be the directory's state.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import ldap3
import pytest

from connectors.base import Attributes, Change
from connectors.ldap import LdapSource
from engine import SystemClock
from tests.ldap.ldap_source_helpers import make_source, read_through, unique_container
from tests.ldap.slapd import ACCESSLOG_DN, ROOT_DN, Slapd

#: users loaded by slapadd; a big group holds all of them (or all but one)
POOL = 20_000
#: members of a big group: a replace of that many values keeps slapd busy for 0.1-0.2 s (idle
#: server) to about a second (with the writers and the reader of the second test)
MEMBERS = POOL
WRITERS = 3
#: users each fast writer modifies, and small groups it owns
HOT_USERS = 200
SMALL_GROUPS = 2
BIG_GROUPS = 6
RUN_SECONDS = 12.0
#: the engine's page size for these reads
PAGE = 200

clock = SystemClock()


class Directory(NamedTuple):
    server: Slapd
    container: str
    pool: list[str]  # the users' DNs, in order

    def group(self, name: str) -> str:
        return f"cn={name},ou=groups,{self.container}"


def start_directory(
    make_slapd: Callable[..., Slapd], name: str, big: Sequence[str], small: Sequence[str]
) -> Directory:
    """A slapd whose container holds the pool of users, the ``big`` groups (every pool user a
    member) and the ``small`` groups (one member each), all loaded with slapadd."""
    container = unique_container()
    pool = [f"uid=p{n:05d},ou=people,{container}" for n in range(POOL)]
    blocks = [
        f"dn: {container}\nobjectClass: organizationalUnit\nou: {container.split(',')[0][3:]}\n",
        f"dn: ou=people,{container}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{container}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    blocks += (
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: p{n:05d}\ncn: p{n:05d}\nsn: p{n:05d}\n"
        for n, dn in enumerate(pool)
    )
    everyone = "".join(f"member: {dn}\n" for dn in pool[:MEMBERS])
    blocks += (
        f"dn: cn={g},ou=groups,{container}\nobjectClass: groupOfNames\ncn: {g}\n{everyone}"
        for g in big
    )
    blocks += (
        f"dn: cn={g},ou=groups,{container}\nobjectClass: groupOfNames\ncn: {g}\nmember: {pool[n]}\n"
        for n, g in enumerate(small)
    )
    server = make_slapd(name, seed_ldif="\n".join(blocks))
    return Directory(server, container, pool)


def read_delta(source: LdapSource, kind: str, watermark: str | None) -> tuple[list[Change], str]:
    return read_through(source, kind, watermark, PAGE)


def members(attributes: Attributes | None) -> int | None:
    """How many members an upsert of a group holds (None for a user or a delete)."""
    if attributes is None or "member" not in attributes:
        return None
    value = attributes["member"]
    return len(value) if isinstance(value, list) else 1


def description(attributes: Attributes | None) -> str | None:
    value = (attributes or {}).get("description")
    return value if isinstance(value, str) or value is None else str(value)


# ---------------------------------------------------------------------- one interleaving


def logged(connection: ldap3.Connection, dn: str, token: str, timeout: float = 5.0) -> str:
    """The reqStart of the modify of ``dn`` that wrote the description ``token``, once the
    accesslog shows it."""
    deadline = clock.monotonic() + timeout
    while True:
        connection.search(
            ACCESSLOG_DN,
            f"(&(objectClass=auditModify)(reqDN={dn}))",
            attributes=["reqStart", "reqMod"],
        )
        for record in connection.response:
            raw = record["raw_attributes"]
            if f"description:= {token}".encode() in raw["reqMod"]:  # a replace of it
                return str(raw["reqStart"][0].decode())
        if clock.monotonic() > deadline:
            raise AssertionError(f"no accesslog record of {dn} writing {token}")
        clock.sleep(0.005)


def test_a_slow_replace_logged_after_a_read_still_arrives(
    make_slapd: Callable[..., Slapd],
) -> None:
    """A slow member replace starts; a fast write to another group starts after it and ends
    first; a delta read sees the fast one only; the slow one ends: the next read brings it."""
    directory = start_directory(make_slapd, "in-flight-one", ["big"], ["small"])
    server, big, small = directory.server, directory.group("big"), directory.group("small")
    source = make_source(server, directory.container)
    fast, log = server.connect(), server.connect()
    slow = ldap3.Connection(
        ldap3.Server(server.url, get_info=ldap3.NONE, connect_timeout=5),
        user=ROOT_DN,
        password=server.password.reveal(),
        client_strategy=ldap3.ASYNC,  # modify() returns once the request is sent
        auto_bind=ldap3.AUTO_BIND_NO_TLS,
        raise_exceptions=True,
    )
    outcomes: list[str] = []
    try:
        _, watermark = read_delta(source, "Group", None)
        for attempt in range(1, 4):
            size, token, quick = MEMBERS - attempt, f"slow-{attempt}", f"fast-{attempt}"
            began = clock.monotonic()
            message = slow.modify(
                big,
                {
                    "member": [(ldap3.MODIFY_REPLACE, directory.pool[:size])],
                    "description": [(ldap3.MODIFY_REPLACE, [token])],
                },
            )
            sent = clock.monotonic()
            clock.sleep(0.02)  # slapd takes in the whole request and starts the operation
            fast.modify(small, {"description": [(ldap3.MODIFY_REPLACE, [quick])]})
            fast_done = clock.monotonic()
            fast_start = logged(log, small, quick)  # visible (it is, once answered)
            between, after_between = read_delta(source, "Group", watermark)
            read_done = clock.monotonic()
            slow.get_response(message, timeout=30)
            answered = clock.monotonic()
            seen = {description(c.attributes) for c in between}
            assert quick in seen, f"a write that ended before the read is not in it: {seen}"
            slow_start = logged(log, big, token)
            outcomes.append(
                f"attempt {attempt}: replace of {size} members: encoded and sent in "
                f"{sent - began:.2f} s, answered {answered - sent:.2f} s after that; the fast "
                f"write took {(fast_done - sent - 0.02) * 1000:.0f} ms, the read between ended "
                f"{answered - read_done:.2f} s before the replace; reqStart slow {slow_start}, "
                f"fast {fast_start}; the read between saw {sorted(s for s in seen if s)}"
            )
            if slow_start > fast_start or token in seen:  # not the interleaving: again
                watermark = read_delta(source, "Group", after_between)[1]
                continue
            print("\n" + "\n".join(outcomes))
            after, _ = read_delta(source, "Group", after_between)
            arrived = {description(c.attributes): members(c.attributes) for c in after}
            assert arrived.get(token) == size, (
                f"the slow replace ({token}, {size} members, reqStart {slow_start}) was logged "
                f"after a read that had read the fast write (reqStart {fast_start}), and the "
                f"next read did not bring it: it got {arrived}"
            )
            return
        pytest.fail("the interleaving was not produced:\n" + "\n".join(outcomes))
    finally:
        source.close()
        for connection in (slow, fast, log):
            connection.unbind()


# ---------------------------------------------------------------------- writers and a reader


class Write(NamedTuple):
    kind: str  # User or Group
    dn: str
    version: int  # grows with each write of one writer (and each entry has one writer)
    token: str  # the description written
    done: float  # monotonic, when the server answered


class Read(NamedTuple):
    kind: str
    started: float
    seen: dict[str, int]  # DN (lower case) -> version of the description received


def version(token: str | None) -> int:
    return int(token.rsplit("-", 1)[1]) if token and "-" in token else -1


class Run:
    """Fast writers, a slow writer and a reader on one directory, until told to stop."""

    def __init__(
        self, directory: Directory, source: LdapSource, watermarks: dict[str, str]
    ) -> None:
        self.directory = directory
        self.source = source
        self.watermarks = watermarks
        self.state: dict[str, Attributes] = {}  # anchor -> last upsert, as the engine has it
        self.writes: list[Write] = []
        self.reads: list[Read] = []
        #: seconds per slow replace as its client saw it (ldap3 encoding it, slapd doing it)
        self.replaces: list[float] = []
        self.failures: list[BaseException] = []
        self.stop_writing = threading.Event()
        self.stop_reading = threading.Event()

    def thread(self, work: Callable[..., None], *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                work(*args)
            except BaseException as error:  # handed to the test
                self.failures.append(error)
                self.stop_writing.set()
                self.stop_reading.set()

        started = threading.Thread(target=guarded, name=work.__name__, daemon=True)
        started.start()
        return started

    def _write(self, kind: str, dn: str, number: int, token: str) -> None:
        self.writes.append(Write(kind, dn, number, token, clock.monotonic()))

    def fast_writer(self, index: int) -> None:
        """Descriptions of its own users and small groups, and now and then a new user."""
        container = self.directory.container
        hot = self.directory.pool[index : WRITERS * HOT_USERS : WRITERS]
        small = [self.directory.group(f"small{index}-{n}") for n in range(SMALL_GROUPS)]
        connection = self.directory.server.connect()
        try:
            number = 0
            while not self.stop_writing.is_set():
                number += 1
                token = f"w{index}-{number:06d}"
                if number % 10 == 0:
                    dn = f"uid=new{index}-{number:06d},ou=people,{container}"
                    connection.add(
                        dn,
                        ["inetOrgPerson"],
                        {"cn": token, "sn": token, "description": token},
                    )
                    self._write("User", dn, number, token)
                    continue
                kind = "Group" if number % 3 == 0 else "User"
                dn = small[number % SMALL_GROUPS] if kind == "Group" else hot[number % len(hot)]
                connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [token])]})
                self._write(kind, dn, number, token)
        finally:
            connection.unbind()

    def slow_writer(self) -> None:
        """Member replaces of the big groups in turn: all but one member, then all of them
        (each group's next replace changes its size), with a description of its own."""
        connection = self.directory.server.connect()
        try:
            number = 0
            while not self.stop_writing.is_set():
                dn = self.directory.group(f"big{number % BIG_GROUPS}")
                size = MEMBERS - 1 + (number // BIG_GROUPS) % 2
                token = f"slow-{number:06d}"
                began = clock.monotonic()
                connection.modify(
                    dn,
                    {
                        "member": [(ldap3.MODIFY_REPLACE, self.directory.pool[:size])],
                        "description": [(ldap3.MODIFY_REPLACE, [token])],
                    },
                )
                self.replaces.append(clock.monotonic() - began)
                self._write("Group", dn, number, token)
                number += 1
        finally:
            connection.unbind()

    def read_once(self, kind: str) -> None:
        started = clock.monotonic()
        changes, self.watermarks[kind] = read_delta(self.source, kind, self.watermarks[kind])
        seen: dict[str, int] = {}
        for change in changes:
            if change.kind == "upsert" and change.attributes is not None:
                self.state[change.anchor] = change.attributes
                seen[str(change.attributes["dn"]).lower()] = version(description(change.attributes))
            else:
                self.state.pop(change.anchor, None)
        self.reads.append(Read(kind, started, seen))

    def reader(self) -> None:
        """Deltas of both types, one after the other, as long as the writers write."""
        while not self.stop_reading.is_set():
            for kind in ("User", "Group"):
                self.read_once(kind)

    def late(self) -> list[Write]:
        """Writes whose state the first read of their type begun after them did not bring
        (nor any read before it): a reader that skips nothing has none."""
        found: list[Write] = []
        for write in self.writes:
            best = -1
            for read in self.reads:
                if read.kind != write.kind:
                    continue
                best = max(best, read.seen.get(write.dn.lower(), -1))
                if read.started > write.done:
                    break
            if best < write.version:
                found.append(write)
        return found


def directory_state(connection: ldap3.Connection, container: str) -> dict[str, tuple[Any, ...]]:
    """anchor -> (DN, description, member count) of every entry a writer wrote."""
    state: dict[str, tuple[Any, ...]] = {}
    for base, search_filter, attributes in (
        (f"ou=people,{container}", "(description=*)", ["entryUUID", "description"]),
        (f"ou=groups,{container}", "(description=*)", ["entryUUID", "description", "member"]),
    ):
        connection.search(base, search_filter, attributes=attributes)
        for entry in connection.response:
            raw = entry["raw_attributes"]
            count = len(raw["member"]) if "member" in raw else None
            state[raw["entryUUID"][0].decode()] = (
                entry["dn"],
                raw["description"][0].decode(),
                count,
            )
    return state


def by_kind(writes: list[Write]) -> dict[str, int]:
    return {
        "users": sum(1 for w in writes if w.kind == "User"),
        "small groups": sum(1 for w in writes if w.kind == "Group" and "cn=small" in w.dn),
        "big groups": sum(1 for w in writes if w.kind == "Group" and "cn=big" in w.dn),
    }


@pytest.mark.slow
def test_every_change_arrives_while_slow_replaces_run(make_slapd: Callable[..., Slapd]) -> None:
    """Three fast writers (user descriptions, new users, small groups' descriptions), one
    writer of 20,000-member replaces and a delta reader run together; afterwards the last
    upsert the reader received for every entry is the entry as the directory holds it."""
    big = [f"big{n}" for n in range(BIG_GROUPS)]
    small = [f"small{w}-{n}" for w in range(WRITERS) for n in range(SMALL_GROUPS)]
    began = clock.monotonic()
    directory = start_directory(make_slapd, "in-flight-many", big, small)
    source = make_source(directory.server, directory.container)
    check = directory.server.connect()
    try:
        watermarks: dict[str, str] = {}
        run = Run(directory, source, watermarks)
        for kind in ("User", "Group"):  # the full reads, as the engine's first cycle
            changes, watermarks[kind] = read_delta(source, kind, None)
            run.state.update({c.anchor: c.attributes for c in changes if c.attributes})
        ready = clock.monotonic()
        threads = [run.thread(run.fast_writer, index) for index in range(WRITERS)]
        threads.append(run.thread(run.slow_writer))
        reader = run.thread(run.reader)
        clock.sleep(RUN_SECONDS)
        run.stop_writing.set()
        for thread in threads:
            thread.join(60)
        run.stop_reading.set()
        reader.join(60)
        assert not any(t.is_alive() for t in (*threads, reader)), "a thread did not stop"
        assert not run.failures, run.failures
        for _ in range(2):  # the engine's next cycles, after the writes stopped
            for kind in ("User", "Group"):
                run.read_once(kind)

        truth = directory_state(check, directory.container)
        last = {w.dn.lower(): w.token for w in run.writes}
        held = {dn.lower(): token for dn, token, _ in truth.values()}
        drift = sorted(dn for dn in last.keys() | held.keys() if last.get(dn) != held.get(dn))
        assert not drift, f"the directory does not hold what was written: {drift[:10]}"
        wrong: list[str] = []
        for anchor, (dn, token, count) in sorted(truth.items(), key=lambda item: item[1]):
            got = run.state.get(anchor)
            received = (description(got), members(got)) if got is not None else None
            if received != (token, count):
                wrong.append(f"{dn}: has {(token, count)}, the reader got {received}")
        late = run.late()
        replaces = sorted(run.replaces)
        kinds, late_kinds = by_kind(run.writes), by_kind(late)
        summary = (
            f"setup and full reads {ready - began:.1f} s, run {RUN_SECONDS:.0f} s, "
            f"{len(run.reads)} delta reads\n"
            f"writes {kinds}; slow replaces of ~{MEMBERS} members took (client side) "
            f"min {replaces[0]:.2f} / median {statistics.median(replaces):.2f} / "
            f"max {replaces[-1]:.2f} s\n"
            f"not brought by the first read after them: {len(late)} {late_kinds}\n"
            f"entries whose last received state is not the directory's: {len(wrong)} "
            f"of {len(truth)}"
        )
        print("\n" + summary)
        assert not wrong, summary + "\n" + "\n".join(wrong[:20])
    finally:
        source.close()
        check.unbind()
