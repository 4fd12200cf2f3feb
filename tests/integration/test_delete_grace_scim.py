"""DeleteGracePeriod on a SCIM target (a real slapd source, a real scim2-server): a delete is
a PATCH active=false first and a DELETE after the period; a user added again in LDAP in
time (a new entryUUID) makes the same SCIM user active again; a restore makes the user active
again and the job lets it go, so the period's end deletes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engine import ManualClock
from tests.integration.test_ldap_to_scim import scim_job, users
from tests.ldap.ldap_jobs import PERSON, Tree, person, seed
from tests.scim.server import ScimServer


def test_scim_disable_then_delete_and_a_restore(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    seed(tree, 4)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db", DeleteGracePeriod="PT2H")
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    engine.run_cycle(job_id)
    assert 4 == len(users(scim))
    connection = tree.source.connect()
    try:
        for n in (1, 2, 3):
            connection.delete(tree.user_dn(n))
    finally:
        connection.unbind()
    engine.run_cycle(job_id)
    now = users(scim)
    assert [False] * 3 == [now[f"u0000{n}"]["active"] for n in (1, 2, 3)]
    assert 3 == len(engine.store.staged_deletes(job_id))

    connection = tree.source.connect()
    try:
        connection.add(tree.user_dn(1), PERSON, person(tree, 1))
    finally:
        connection.unbind()
    engine.run_cycle(job_id)
    back = users(scim)["u00001"]
    assert (True, now["u00001"]["id"]) == (back["active"], back["id"])
    assert 4 == len(users(scim))

    restored = engine.restore(job_id, "u00003")  # by its userName
    assert (True, False) == (restored.enabled, restored.linked)
    assert users(scim)["u00003"]["active"] is True

    clock.advance(timedelta(hours=2))
    engine.run_cycle(job_id)
    after = users(scim)
    assert "u00002" not in after  # DELETE once due
    assert after["u00001"]["active"] is True
    assert after["u00003"]["active"] is True  # restored: kept
    assert [] == engine.store.staged_deletes(job_id)
    engine.close()
