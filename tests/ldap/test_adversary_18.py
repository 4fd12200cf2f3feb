"""Adversarial checks of issue #18 (operator safety) on real slapd servers: untrusted reads
hold deletes through a SIGKILL in the middle of the reconciliation, a quarantine-only
restart and provisionOnDemand; the delete threshold counts every mapping's deletes; a
subject given by DN, uid or hostile text finds exactly what it names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine import ManualClock, SyncEngine
from engine.errors import NotFoundError
from engine.jobs._on_demand import SubjectAmbiguous
from engine.model import TaskExecutionResult
from tests.ldap.ldap_jobs import Tree, count, ldap_job, make_tree, seed
from tests.ldap.slapd import Slapd
from tests.ldap.test_adversary_untrusted import _empty_ou
from tests.ldap.test_untrusted_reads import delete_users, point_source_at, synced

ROOT = Path(__file__).resolve().parents[2]

#: a runner that SIGKILLs itself right after the first commit of a reconciliation's staged
#: deletes (before the sweep's end, which carries the verdict on the read)
KILLED_IN_RECONCILIATION = """
import os, signal, sys
from engine import SyncEngine, SystemClock
from engine.store.sqlite import SqliteStateStore
commit = SqliteStateStore.commit
def killing(self, job_id, checkpoint):
    commit(self, job_id, checkpoint)
    if not checkpoint.sweep_end and any(
        s.reason == "not in the full read" for s in checkpoint.staged
    ):
        os.kill(os.getpid(), signal.SIGKILL)
SqliteStateStore.commit = killing
SyncEngine(sys.argv[1], SystemClock()).run_cycle(sys.argv[2])
"""


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def _kill_in_reconciliation(state: Path, job_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_IN_RECONCILIATION, str(state), job_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


def _users(tree: Tree) -> int:
    return count(tree.target, tree.people)


def _groups(tree: Tree) -> int:
    return count(tree.target, tree.groups, "(objectClass=groupOfNames)")


def test_killed_inside_an_untrusted_reconciliation_the_deletes_stay_held(
    tree: Tree, tmp_path: Path
) -> None:
    """SIGKILL after the reconciliation staged its first page of deletes as ordinary ones,
    before the verdict: the resumed cycle holds them all; then the operator fixes the base
    and the trusted read deletes only the user really gone."""
    state = tmp_path / "s.db"
    engine, job_id = synced(tree, state)
    point_source_at(engine, job_id, tree, _empty_ou(tree))
    engine.close()
    _kill_in_reconciliation(state, job_id)
    engine = SyncEngine(state, ManualClock())
    try:
        reasons = {s.reason for s in engine.store.staged_deletes(job_id)}
        assert reasons == {"not in the full read"}  # the kill came before the verdict
        engine.run_cycle(job_id)
        assert _users(tree) == 4
        staged = engine.store.staged_deletes(job_id)
        assert len(staged) == 4 and all(s.reason.startswith("held: ") for s in staged)
        delete_users(tree, 3)
        point_source_at(engine, job_id, tree, tree.base)
        assert engine.run_cycle(job_id).state is TaskExecutionResult.SUCCEEDED
        assert _users(tree) == 3 and engine.store.staged_deletes(job_id) == []
    finally:
        engine.close()


def test_a_quarantine_only_restart_does_not_split_the_threshold_by_mapping(
    tree: Tree, tmp_path: Path
) -> None:
    """Two user and two group deletes against a threshold of 3 quarantine the job. A restart
    that only clears the quarantine used to apply them anyway: the interrupted cycle's deletes
    were settled early, one mapping at a time, each share (2) under the threshold. Fixed:
    the threshold always counts every staged delete."""
    seed(tree, 8, groups=4)
    engine, job_id = ldap_job(tree, tmp_path / "s.db", QuarantineTooManyDeletesThreshold="3")
    try:
        assert engine.run_cycle(job_id).state is TaskExecutionResult.SUCCEEDED
        connection = tree.source.connect()
        for dn in (tree.user_dn(6), tree.user_dn(7), tree.group_dn(2), tree.group_dn(3)):
            assert connection.delete(dn), connection.result
        connection.unbind()
        engine.run_cycle(job_id)
        status = engine.get_job(job_id).status
        assert status is not None and status.quarantine is not None
        engine.restart(job_id, ["QuarantineState"])  # not ForceDeletes
        engine.run_cycle(job_id)
        assert (_users(tree), _groups(tree)) == (8, 4)
        status = engine.get_job(job_id).status
        assert status is not None and status.quarantine is not None
        assert "4 deletes exceed" in str(status.quarantine.error)
        engine.restart(job_id, ["ForceDeletes"])
        engine.run_cycle(job_id)
        assert (_users(tree), _groups(tree)) == (6, 2)
    finally:
        engine.close()


def test_provision_on_demand_does_not_apply_a_delete_an_untrusted_read_holds(
    tree: Tree, tmp_path: Path
) -> None:
    """The source points at an empty OU: every delete is held. provisionOnDemand of one of
    those users asks the same misconfigured source, which of course does not have it: it
    used to delete the user in the target (and the dry run showed a plain delete). Fixed: it
    is skipped, naming the hold; ForceDeletes still applies it."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    try:
        point_source_at(engine, job_id, tree, _empty_ou(tree))
        engine.run_cycle(job_id)
        anchor = engine.store.staged_deletes(job_id)[0].anchor
        preview = engine.preview_on_demand(job_id, "User", anchor)
        assert preview.changes == ()
        assert [s.reason[:6] for s in preview.skipped] == ["held: "]
        records = engine.provision_on_demand(job_id, "User", anchor)
        assert [(r.action, r.status) for r in records] == [("StagedDelete", "skipped")]
        assert _users(tree) == 4 and len(engine.store.staged_deletes(job_id)) == 4
        engine.restart(job_id, ["ForceDeletes"])
        engine.provision_on_demand(job_id, "User", anchor)
        assert _users(tree) == 3
    finally:
        engine.close()


def test_a_dn_subject_spelt_with_spaces_is_found(tree: Tree, tmp_path: Path) -> None:
    """RFC 2253 tolerates spaces around a DN's types and values, and the engine's own DN
    comparison does; the LDAP client library refuses them, so the lookup used to fail with a
    ConnectorError (a 502 through the API). Fixed: the DN is spelt again before the search."""
    seed(tree, 2)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    try:
        engine.run_cycle(job_id)
        dn = tree.user_dn(1).replace(",", ", ").replace("uid=", "UID = ")
        plan = engine.preview_on_demand(job_id, "User", dn)
        assert plan.skipped and "unchanged" in plan.skipped[0].reason
    finally:
        engine.close()


def test_hostile_subjects_find_nothing_or_exactly_one(tree: Tree, tmp_path: Path) -> None:
    """Filter syntax, wildcards, NUL, a DN outside the base or naming the base itself: each
    is a value, never a filter, and none provisions anything."""
    seed(tree, 3)
    other = make_tree(tree.source, tree.target)
    seed(other, 2)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    try:
        engine.run_cycle(job_id)
        hostile = [
            "*", "u0000*", ")(uid=*", "u00001)(uid=*", "(uid=u00001)", "\x00", "u00001\x00",
            f"uid=*,{tree.people}", f"uid=u00001,{other.people}", tree.people, tree.base,
            f"uid=u00001+cn=User 1,{tree.people}", f"{tree.user_dn(1)}\x00x", "x" * 20_000,
        ]  # fmt: skip
        for subject in hostile:
            with pytest.raises(NotFoundError):
                engine.preview_on_demand(job_id, "User", subject)
        assert _users(tree) == 3
    finally:
        engine.close()


def test_a_uid_two_entries_share_is_refused_naming_how_many(tree: Tree, tmp_path: Path) -> None:
    """Two entries under the type's base with one uid (a contractor OU below ou=people):
    never a guess; each is still reachable by its DN."""
    seed(tree, 2)
    contractors = f"ou=contractors,{tree.people}"
    connection = tree.source.connect()
    try:
        assert connection.add(contractors, ["organizationalUnit"], {"ou": "contractors"})
        values = {"uid": "u00001", "cn": "Twin", "sn": "Twin"}
        assert connection.add(f"uid=u00001,{contractors}", ["inetOrgPerson"], values)
    finally:
        connection.unbind()
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    try:
        with pytest.raises(SubjectAmbiguous, match="2 User objects"):
            engine.preview_on_demand(job_id, "User", "u00001")
        with pytest.raises(SubjectAmbiguous):
            engine.provision_on_demand(job_id, "User", "u00001")
        assert _users(tree) == 0
        twin = engine.preview_on_demand(job_id, "User", f"uid=u00001,{contractors}")
        assert [c.display_name for c in twin.changes] == ["Twin"]
    finally:
        engine.close()
