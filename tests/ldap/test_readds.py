"""ldapToLdap between two real slapd servers: a user deleted and re-added under the same DN
(issue #17 point 3).

The re-added entry has a new entryUUID (the source's anchor), so to the engine it is a new
object; the group that still lists its DN in ``member`` and the user whose ``manager`` names it
are not touched in the source (no referential integrity there), so no change names them. The
target must put the re-added user back into that group and back as that user's manager, also
when the re-add comes in a later cycle than the delete. With referential integrity on the
source (slapd's refint overlay) the delete took the DN out of ``member`` and ``manager``
there, so after the re-add the target must not list it either: the target follows the source.

U (user 1) is in G (group 1) with V (user 2, so that G never loses its last member) and is the
manager of R (user 3). The target's entries have the source's DNs (same base on both sides).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ldap3
import pytest

from engine import SyncEngine, SystemClock
from engine.model import TaskExecutionResult
from tests.ldap.ldap_jobs import GROUP, PERSON, Tree, entries, ldap_job, make_tree, person
from tests.ldap.slapd import Slapd, require_slapd

U, V, R, G = 1, 2, 3, 1


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def cycle(engine: SyncEngine, job_id: str) -> None:
    """One cycle, which must succeed with nothing escrowed: a re-added U waits for its old
    target object's delete within the cycle, and so do G and R, which name it (they were
    logged ReferenceNotResolved first, then written again)."""
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert execution.count_escrowed == 0, execution


# ------------------------------------------------------------------------ the source
def seed_readd(tree: Tree) -> None:
    """U and V; R managed by U; G with members U and V."""
    connection = tree.source.connect()
    try:
        for n in (U, V):
            connection.add(tree.user_dn(n), PERSON, person(tree, n, managers=False))
        connection.add(
            tree.user_dn(R), PERSON, person(tree, R, managers=False, manager=tree.user_dn(U))
        )
        members = [tree.user_dn(U), tree.user_dn(V)]
        connection.add(tree.group_dn(G), GROUP, {"cn": "g001", "member": members})
    finally:
        connection.unbind()


def delete_user(tree: Tree, n: int) -> None:
    connection = tree.source.connect()
    try:
        assert connection.delete(tree.user_dn(n)), connection.result
    finally:
        connection.unbind()


def readd_user(tree: Tree, n: int) -> None:
    """The same DN and attributes again: slapd gives the entry a new entryUUID."""
    connection = tree.source.connect()
    try:
        assert connection.add(tree.user_dn(n), PERSON, person(tree, n, managers=False))
    finally:
        connection.unbind()


def entry_uuid(server: Slapd, dn: str) -> str:
    connection = server.connect()
    try:
        connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
        return str(connection.response[0]["attributes"]["entryUUID"][0])
    finally:
        connection.unbind()


# ------------------------------------------------------------------------ either side
def users(server: Slapd, tree: Tree) -> set[str]:
    """The DNs (lower case) of the tree's users on ``server``."""
    return set(entries(server, tree.people, "(objectClass=inetOrgPerson)", ["uid"]))


def members(server: Slapd, tree: Tree) -> list[str]:
    """G's ``member`` values on ``server`` (lower case, sorted), dangling ones included."""
    found = entries(server, tree.groups, "(objectClass=groupOfNames)", ["member"])
    member: list[str] = found[tree.group_dn(G).lower()].get("member", [])
    return member


def manager(server: Slapd, tree: Tree) -> list[str]:
    """R's ``manager`` values on ``server`` (lower case), dangling ones included."""
    found = entries(server, tree.people, "(objectClass=inetOrgPerson)", ["manager"])
    value: list[str] = found[tree.user_dn(R).lower()].get("manager", [])
    return value


def dns(tree: Tree, *users: int) -> list[str]:
    return sorted(tree.user_dn(n).lower() for n in users)


def delete_then_readd(tree: Tree, engine: SyncEngine, job_id: str, across: bool) -> None:
    """Cycle; delete U; (cycle, when ``across``); re-add U under its DN; cycle. Checks the
    target after the first cycle and after the delete's own cycle."""
    cycle(engine, job_id)
    assert users(tree.target, tree) == set(dns(tree, U, V, R))
    assert members(tree.target, tree) == dns(tree, U, V)
    assert manager(tree.target, tree) == dns(tree, U)
    before = entry_uuid(tree.source, tree.user_dn(U))
    delete_user(tree, U)
    if across:
        cycle(engine, job_id)
        assert users(tree.target, tree) == set(dns(tree, V, R)), "U is still in the target"
        assert members(tree.target, tree) == dns(tree, V), "G still lists the deleted U"
        assert manager(tree.target, tree) == [], "R's manager still names the deleted U"
    readd_user(tree, U)
    assert entry_uuid(tree.source, tree.user_dn(U)) != before  # a new anchor, the same DN
    cycle(engine, job_id)
    assert users(tree.target, tree) == set(dns(tree, U, V, R)), "U did not come back"


# ------------------------------------------------------------------------ no refint
def test_a_user_readded_in_a_later_cycle_is_back_in_the_group_that_lists_its_dn(
    tree: Tree, tmp_path: Path
) -> None:
    """Scenario a: without refint G keeps U's DN in the source throughout; the target drops
    U from G with U, and puts it back when U is re-added a cycle later. (Accesslog deltas,
    the default. Timestamp deltas see a delete only at a delete scan, once per hour of
    server time, which the template does not let a test shorten.)"""
    seed_readd(tree)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    delete_then_readd(tree, engine, job_id, across=True)
    assert members(tree.source, tree) == dns(tree, U, V)  # never touched in the source
    assert members(tree.target, tree) == dns(tree, U, V), "G lacks the re-added U"
    engine.close()


def test_a_user_readded_in_a_later_cycle_is_back_as_the_manager_its_reports_name(
    tree: Tree, tmp_path: Path
) -> None:
    """Scenario b: R's manager keeps U's DN in the source; the target clears it with U's
    delete and names U again once U is re-added a cycle later."""
    seed_readd(tree)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    delete_then_readd(tree, engine, job_id, across=True)
    assert manager(tree.source, tree) == dns(tree, U)  # never touched in the source
    assert manager(tree.target, tree) == dns(tree, U), "R's manager does not name U again"
    engine.close()


def test_a_user_deleted_and_readded_within_one_cycle_keeps_its_group_and_reports(
    tree: Tree, tmp_path: Path
) -> None:
    """Scenario c (a regression test): the delete and the re-add both before one cycle."""
    seed_readd(tree)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    delete_then_readd(tree, engine, job_id, across=False)
    assert members(tree.target, tree) == dns(tree, U, V), "G lacks the re-added U"
    assert manager(tree.target, tree) == dns(tree, U), "R's manager does not name U"
    assert engine.escrows(job_id) == []  # nothing held over for the next cycle
    engine.close()


def test_a_user_renamed_away_and_back_is_back_in_the_group_that_lists_its_dn(
    tree: Tree, tmp_path: Path
) -> None:
    """Without refint a rename leaves G listing U's old DN, which then names nothing: G
    drops U in the target. Renamed back, U is under the name G holds dangling: G has U
    again in the same cycle, though G never changed in the source."""
    seed_readd(tree)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    cycle(engine, job_id)
    away = f"uid=u{U:05d}-away"
    connection = tree.source.connect()
    try:
        assert connection.modify_dn(tree.user_dn(U), away), connection.result
        cycle(engine, job_id)
        assert members(tree.target, tree) == dns(tree, V), "G still lists the renamed U"
        assert connection.modify_dn(f"{away},{tree.people}", f"uid=u{U:05d}"), connection.result
    finally:
        connection.unbind()
    cycle(engine, job_id)
    assert members(tree.source, tree) == dns(tree, U, V)  # never touched in the source
    assert members(tree.target, tree) == dns(tree, U, V), "G lacks U renamed back"
    assert manager(tree.target, tree) == dns(tree, U), "R's manager does not name U"
    engine.close()


# ------------------------------------------------------------------------ with refint
def wait_for_refint(tree: Tree) -> None:
    """Until the source's refint overlay has taken U's DN out of G and R (it may run after
    the delete's answer); slapd does not record these modifies in its accesslog."""
    clock = SystemClock()
    deadline = clock.monotonic() + 10
    while (members(tree.source, tree), manager(tree.source, tree)) != (dns(tree, V), []):
        assert clock.monotonic() < deadline, "refint did not remove U's DN in the source"
        clock.sleep(0.01)


def test_with_refint_on_the_source_a_readded_user_is_not_put_back(
    make_slapd: Callable[..., Slapd], slapd_target: Slapd, tmp_path: Path
) -> None:
    """Scenario d: the source's refint overlay removes U's DN from G's member and R's manager
    when U is deleted (modifies the accesslog does not record), so after the re-add, a cycle
    later, G must not list U and R must have no manager in the target either."""
    require_slapd("refint")
    tree = make_tree(make_slapd("source-refint", refint=True), slapd_target)
    seed_readd(tree)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    cycle(engine, job_id)
    assert members(tree.target, tree) == dns(tree, U, V)
    assert manager(tree.target, tree) == dns(tree, U)
    delete_user(tree, U)
    wait_for_refint(tree)
    cycle(engine, job_id)
    assert users(tree.target, tree) == set(dns(tree, V, R))
    assert members(tree.target, tree) == dns(tree, V)
    assert manager(tree.target, tree) == []
    readd_user(tree, U)
    cycle(engine, job_id)
    assert users(tree.target, tree) == set(dns(tree, U, V, R))
    assert members(tree.source, tree) == dns(tree, V) and manager(tree.source, tree) == []
    assert members(tree.target, tree) == dns(tree, V), "G lists U, which the source does not"
    assert manager(tree.target, tree) == [], "R has a manager, which the source has not"
    engine.close()
