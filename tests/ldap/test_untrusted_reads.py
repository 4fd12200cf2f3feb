"""A read that cannot be trusted never deletes (issue #18, point 1), on real slapd servers.

An operator's slip in the source's base DN, then a restart: before, the full read found
nothing, reconciled, and deprovisioned everything the job had provisioned. Now a base DN that
does not exist fails the cycle naming it, and a full read that sees none (or too few) of the
objects the job has linked holds its deletes and quarantines the job saying what it saw;
restart(ForceDeletes) applies them when that was meant.
"""

from __future__ import annotations

from pathlib import Path

import ldap3
import pytest

from engine import ManualClock, SyncEngine
from engine.model import TaskExecutionResult
from tests.ldap.ldap_jobs import Tree, count, make_tree, seed
from tests.ldap.slapd import Slapd
from tests.ldap.test_ldap_to_ldap import purge_accesslog


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def synced(tree: Tree, state: Path, users: int = 4) -> tuple[SyncEngine, str]:
    seed(tree, users)
    engine = SyncEngine(state, ManualClock())
    app = engine.create_application("ldap").id
    engine.set_secrets(app, tree.secrets())
    job_id = engine.create_job("ldapToLdap", application_id=app).id
    assert app is not None and job_id is not None
    engine.start(job_id)
    first = engine.run_cycle(job_id)
    assert first.state is TaskExecutionResult.SUCCEEDED
    assert count(tree.target, tree.people) == users
    APPLICATIONS[job_id] = app
    return engine, job_id


APPLICATIONS: dict[str, str] = {}


def delete_users(tree: Tree, *numbers: int) -> None:
    connection = tree.source.connect()
    try:
        for n in numbers:
            assert connection.delete(tree.user_dn(n)), connection.result
    finally:
        connection.unbind()


def point_source_at(engine: SyncEngine, job_id: str, tree: Tree, base: str) -> None:
    """What an operator does: save the source's base DN, then restart (the default scope:
    watermarks, escrows and quarantine; the links stay, so the full read reconciles)."""
    engine.set_secrets(APPLICATIONS[job_id], tree.secrets(SourceBaseDn=base))
    engine.restart(job_id)


def test_a_base_dn_that_does_not_exist_fails_the_cycle_and_deletes_nothing(
    tree: Tree, tmp_path: Path
) -> None:
    engine, job_id = synced(tree, tmp_path / "s.db")
    typo = f"ou=peple,{tree.base}"
    point_source_at(engine, job_id, tree, typo)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.FAILED
    error = str(execution.error)  # named: a base DN is no credential, so it is not masked
    assert f"ou=people,{typo}" in error and "of User does not exist" in error, error
    assert count(tree.target, tree.people) == 4  # nothing deprovisioned
    engine.close()


def test_a_full_read_that_sees_none_of_the_linked_objects_holds_its_deletes(
    tree: Tree, tmp_path: Path
) -> None:
    """The base exists but holds nothing of the job's (an empty OU named by mistake): the
    deletes are staged and held, the job is quarantined saying what the read saw; pointed
    back at the right base, the next full read finds everyone again and nothing is lost."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    empty = f"ou=empty,{tree.base}"
    connection = tree.source.connect()
    try:  # the layout the template reads (people and groups), with nobody in it
        for dn in (empty, f"ou=people,{empty}", f"ou=groups,{empty}"):
            ou = dn.split(",")[0].split("=")[1]
            assert connection.add(dn, ["organizationalUnit"], {"ou": ou}), connection.result
    finally:
        connection.unbind()
    point_source_at(engine, job_id, tree, empty)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is not None
    reason = str(status.quarantine.error)
    assert "saw 0 of the 4" in reason and "SourceShrinkThreshold" in reason, reason
    assert count(tree.target, tree.people) == 4  # held, not applied
    point_source_at(engine, job_id, tree, tree.base)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert count(tree.target, tree.people) == 4
    assert engine.store.staged_deletes(job_id) == []  # seen again: the deletes are gone
    engine.close()


def test_a_shrink_beyond_the_threshold_is_held_until_forced(tree: Tree, tmp_path: Path) -> None:
    """Three of four users gone from the source at once, seen by a full read (a purged change
    log, a restart): more than SourceShrinkThreshold (50%) is held; ForceDeletes applies it.
    One of four is under the threshold and goes through."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    delete_users(tree, 1, 2, 3)
    engine.restart(job_id)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is not None
    assert "saw 1 of the 4" in str(status.quarantine.error)
    assert count(tree.target, tree.people) == 4
    engine.restart(job_id, ["Watermark", "QuarantineState", "ForceDeletes"])
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert count(tree.target, tree.people) == 1
    engine.close()


def test_a_small_shrink_goes_through(tree: Tree, tmp_path: Path) -> None:
    engine, job_id = synced(tree, tmp_path / "s.db")
    connection = tree.source.connect()
    try:
        assert connection.delete(tree.user_dn(1)), connection.result
        connection.search(tree.people, "(uid=*)", ldap3.LEVEL, attributes=["1.1"])
    finally:
        connection.unbind()
    engine.restart(job_id)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert count(tree.target, tree.people) == 3
    engine.close()


def test_a_purged_change_log_reconciliation_is_held_the_same_way(
    tree: Tree, tmp_path: Path
) -> None:
    """The accesslog was purged while the engine was away, and three of four users went
    meanwhile: the reconciling full read that follows is held like any other."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    delete_users(tree, 1, 2, 3)
    purge_accesslog(tree.source)
    engine.run_cycle(job_id)  # no restart: the watermark expired on its own
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is not None
    assert "saw 1 of the 4" in str(status.quarantine.error)
    assert count(tree.target, tree.people) == 4
    engine.close()
