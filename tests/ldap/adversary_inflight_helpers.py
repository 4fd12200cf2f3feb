"""Helpers for :mod:`tests.ldap.test_adversary_inflight`: reading a source's deltas the way the
engine does, bursts of writes on a few connections, and in-process ldapToLdap jobs whose cycles
must succeed."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import ldap3

from connectors.base import Change, ConnectorError
from connectors.ldap import LdapSource
from engine import SyncEngine, SystemClock
from engine.model import TaskExecutionResult
from tests.ldap.ldap_jobs import GROUP, PERSON, Tree, person
from tests.ldap.ldap_source_helpers import read_through
from tests.ldap.slapd import ACCESSLOG_DN, Slapd

PAGE = 500


def read_all(source: LdapSource, kind: str, watermark: str | None) -> tuple[list[Change], str]:
    return read_through(source, kind, watermark, PAGE)


def read_or_refuse(
    source: LdapSource, kind: str, watermark: str
) -> tuple[list[Change], str] | ConnectorError:
    """A read from ``watermark``, or the ConnectorError (WatermarkExpired...) that refused it.
    Any other exception propagates: that is what the hostile-watermark tests look for."""
    try:
        return read_all(source, kind, watermark)
    except ConnectorError as refused:
        return refused


def anchors(changes: list[Change]) -> set[str]:
    return {c.anchor for c in changes}


def entry_uuid(connection: ldap3.Connection, dn: str) -> str:
    connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    return str(connection.response[0]["attributes"]["entryUUID"][0])


def add_users(server: Slapd, container: str, count: int, prefix: str = "b") -> list[str]:
    """``count`` users under ``ou=people,<container>``; their DNs."""
    dns = [f"uid={prefix}{n},ou=people,{container}" for n in range(count)]
    connection = server.connect()
    try:
        for n, dn in enumerate(dns):
            values = {"uid": f"{prefix}{n}", "cn": f"{prefix}{n}", "sn": "burst"}
            assert connection.add(dn, ["inetOrgPerson"], values), connection.result
    finally:
        connection.unbind()
    return dns


def burst(server: Slapd, dns: list[str], writes: int, connections: int = 4) -> None:
    """``writes`` title replaces spread over ``dns``, sent on ``connections`` connections at
    once (as fast as slapd takes them)."""
    share = writes // connections

    def write(k: int) -> None:
        connection = server.connect()
        try:
            for i in range(share):
                dn = dns[(k * share + i) % len(dns)]
                connection.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, [f"w{k}-{i}"])]})
        finally:
            connection.unbind()

    threads = [threading.Thread(target=write, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def records_ending_since(server: Slapd, container: str, since: str) -> int:
    """Accesslog records of writes under ``container`` whose reqEnd is at or after ``since``."""
    connection = server.connect()
    try:
        found = connection.extend.standard.paged_search(
            ACCESSLOG_DN,
            f"(&(objectClass=auditWriteObject)(reqEnd>={since})(reqDN:dnSubtreeMatch:={container}))",
            ldap3.SUBTREE,
            attributes=["1.1"],
            paged_size=1000,
            generator=False,
        )
        return sum(1 for e in found if e.get("type") == "searchResEntry")
    finally:
        connection.unbind()


# ---------------------------------------------------------------------- in-process jobs
def clean_cycle(engine: SyncEngine, job_id: str) -> None:
    """One cycle that must succeed with nothing escrowed."""
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert engine.escrows(job_id) == [], engine.escrows(job_id)


def on_source(tree: Tree, action: Callable[[ldap3.Connection], object]) -> None:
    connection = tree.source.connect()
    try:
        action(connection)
    finally:
        connection.unbind()


def add_user(connection: ldap3.Connection, tree: Tree, n: int, **extra: object) -> None:
    values = person(tree, n, managers=False, **extra)
    assert connection.add(tree.user_dn(n), PERSON, values), connection.result


# ---------------------------------------------------------------------- writers under kills
class Writers:
    """Three fast writers (titles, group membership, users deleted and re-added under their
    DN) and one slow writer (a replace of a big group's ``member`` with ``dangling`` DNs that
    name no entry, plus a rotating slice of real users), until :meth:`stop`."""

    def __init__(self, tree: Tree, users: int, groups: int, dangling: int, seed: int) -> None:
        self.tree, self.users, self.groups, self.seed = tree, users, groups, seed
        self.nowhere = [f"uid=gone{n},{tree.people}" for n in range(dangling)]
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.writes = 0
        self._threads = [
            threading.Thread(target=self._run, args=(self._fast, k)) for k in range(3)
        ] + [threading.Thread(target=self._run, args=(self._slow, 3))]

    @property
    def big(self) -> str:
        return self.tree.group_dn("big")

    def add_big_group(self) -> None:
        connection = self.tree.source.connect()
        try:
            members = [self.tree.user_dn(n) for n in range(0, self.users, 7)] + self.nowhere
            values = {"cn": "big", "description": "slow", "member": members}
            assert connection.add(self.big, GROUP, values), connection.result
        finally:
            connection.unbind()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(30)
        assert not self.errors, self.errors

    def _run(self, body: Callable[[ldap3.Connection, random.Random], None], k: int) -> None:
        chance = random.Random(self.seed * 10 + k)
        connection = self.tree.source.connect()
        try:
            while not self.stopping.is_set():
                body(connection, chance)
                self.writes += 1
        except BaseException as error:  # reported by stop()
            self.errors.append(error)
        finally:
            connection.unbind()

    def _fast(self, connection: ldap3.Connection, chance: random.Random) -> None:
        tree = self.tree
        n = chance.randrange(1, self.users)  # user 0 stays
        dn = tree.user_dn(n)
        roll = chance.random()
        if roll < 0.5:
            title = f"t{chance.random()}"
            attempt(lambda: connection.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, [title])]}))
        elif roll < 0.8:
            group = tree.group_dn(chance.randrange(self.groups))
            how = ldap3.MODIFY_ADD if chance.random() < 0.5 else ldap3.MODIFY_DELETE
            attempt(lambda: connection.modify(group, {"member": [(how, [dn])]}))
        else:  # deleted and re-added under its DN (a new entryUUID), now or later
            values = person(tree, n, managers=n % 3 == 0)
            if not attempt(lambda: connection.delete(dn)) or chance.random() < 0.7:
                attempt(lambda: connection.add(dn, PERSON, values))
        clock_sleep(0.002)

    def _slow(self, connection: ldap3.Connection, chance: random.Random) -> None:
        step = chance.randrange(2, 9)
        real = [self.tree.user_dn(n) for n in range(0, self.users, step)]
        connection.modify(
            self.big,
            {
                "member": [(ldap3.MODIFY_REPLACE, real + self.nowhere)],
                "description": [(ldap3.MODIFY_REPLACE, [f"every {step}"])],
            },
        )


def clock_sleep(seconds: float) -> None:
    SystemClock().sleep(seconds)


def attempt(operation: Callable[[], object]) -> bool:
    """An LDAP write that may be refused (already there, not there, last member...)."""
    try:
        return bool(operation())
    except ldap3.core.exceptions.LDAPOperationResult:
        return False


def diagnose(tree: Tree, state: Path, dns: list[str]) -> str:
    """For users in the source but not in the target: their entryUUID, the job's link for
    it, its accesslog records (type, reqStart, reqEnd) and the users' watermark."""
    lines: list[str] = []
    database = sqlite3.connect(state)
    connection = tree.source.connect()
    try:
        marks = database.execute("SELECT mapping, substr(watermark, 1, 90) FROM watermarks")
        lines += [f"watermark {m}: {w}" for m, w in marks]
        for dn in dns:
            uuid = entry_uuid(connection, dn)
            link = database.execute(
                "SELECT target_ref FROM links WHERE anchor = ?", (uuid,)
            ).fetchall()
            connection.search(
                ACCESSLOG_DN,
                f"(&(objectClass=auditWriteObject)(reqDN={dn}))",
                attributes=["reqType", "reqStart", "reqEnd", "reqEntryUUID"],
            )
            log = sorted(
                (
                    str(r["attributes"]["reqStart"]),
                    str(r["attributes"]["reqEnd"]),
                    str(r["attributes"]["reqType"]),
                    str(r["attributes"].get("reqEntryUUID", "")),
                )
                for r in connection.response
            )
            lines.append(f"{dn.split(',')[0]} entryUUID {uuid}, link {link}; log (last 4):")
            lines += [f"    {entry}" for entry in log[-4:]]
    finally:
        connection.unbind()
        database.close()
    return "\n".join(lines)
