"""DeleteGracePeriod: a delete disables first and deletes after the period, unless the object
comes back or is restored meanwhile (memory connectors, SQLite store, a manual clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine import ManualClock
from tests.conftest import target_users

GRACE = {"DeleteGracePeriod": "P7D"}


def test_a_delete_disables_then_deletes_after_the_period(make_job: Any, clock: ManualClock) -> None:
    """Disabled at once, the link kept; deleted by the first cycle after the period."""
    engine, job_id, source, target = make_job(users=3, settings=GRACE)
    engine.run_cycle(job_id)
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    assert target_users(target)["user1@example.org"]["active"] is False
    disable = engine.provisioning_logs(job_id)[-1]
    assert ("Disable", "success") == (disable.action, disable.status)
    assert disable.error is not None and "deleted after the grace period" in disable.error
    assert 0 == engine.pending_changes(job_id)  # scheduled, not owed
    clock.advance(timedelta(days=6))
    engine.run_cycle(job_id)
    assert "user1@example.org" in target_users(target)
    clock.advance(timedelta(days=1))
    assert 1 == engine.pending_changes(job_id)
    engine.run_cycle(job_id)
    assert {"user0@example.org", "user2@example.org"} == set(target_users(target))
    assert "Delete" == engine.provisioning_logs(job_id)[-1].action
    assert [] == engine.store.staged_deletes(job_id)
