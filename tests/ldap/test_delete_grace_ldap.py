"""DeleteGracePeriod on an LDAP target (two real slapd servers): LDAP cannot disable, so a
delete waits, staged, writing nothing, and is applied once due; an entry deleted and added
again in the source (a new entryUUID) meanwhile takes its target entry over."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine import ManualClock
from tests.ldap.ldap_jobs import PERSON, Tree, count, ldap_job, make_tree, person, seed
from tests.ldap.slapd import Slapd


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def test_an_ldap_target_waits_out_the_grace_period_then_deletes(tree: Tree, tmp_path: Path) -> None:
    clock = ManualClock()
    seed(tree, 4)
    engine, job_id = ldap_job(tree, tmp_path / "s.db", clock, DeleteGracePeriod="P1D")
    engine.run_cycle(job_id)
    assert 4 == count(tree.target, tree.people)
    connection = tree.source.connect()
    try:
        connection.delete(tree.user_dn(3))
        connection.delete(tree.user_dn(2))
        connection.add(tree.user_dn(2), PERSON, person(tree, 2))  # back, with a new entryUUID
    finally:
        connection.unbind()
    engine.run_cycle(job_id)
    assert 4 == count(tree.target, tree.people)  # nothing deleted yet
    [waiting] = engine.store.staged_deletes(job_id)
    assert waiting.target_ref.lower() == tree.user_dn(3).lower()
    assert waiting.due == clock.now() + timedelta(days=1)
    skipped = [r for r in engine.provisioning_logs(job_id) if r.action == "StagedDelete"]
    assert skipped and "cannot disable" in (skipped[-1].error or "")
    assert [] == engine.escrows(job_id)  # the re-added entry joined its old target entry
    clock.advance(timedelta(hours=23))
    engine.run_cycle(job_id)
    assert 4 == count(tree.target, tree.people)
    clock.advance(timedelta(hours=1))
    engine.run_cycle(job_id)
    assert 3 == count(tree.target, tree.people)
    assert [] == engine.store.staged_deletes(job_id)
    engine.close()
