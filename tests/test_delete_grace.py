"""DeleteGracePeriod: a delete disables first and deletes after the period, unless the object
comes back or is restored meanwhile (memory connectors, SQLite store, a manual clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from connectors.base import Capability
from engine import ManualClock, NotFoundError, StatusCode
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


def test_an_object_back_before_the_period_is_enabled_again(
    make_job: Any, clock: ManualClock
) -> None:
    """Back in the source before the delete is due: its delete is cancelled, and the same
    target object gets a complete update that enables it; nothing is created twice."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    ref = next(r for r, a in target.list("User").items() if a["userName"] == "user1@example.org")
    kept = source.get("User", "s000001")
    assert kept is not None
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    assert target.list("User")[ref]["active"] is False
    clock.advance(timedelta(days=3))
    source.put("User", "s000001", kept)
    engine.run_cycle(job_id)
    assert "True" == target.list("User")[ref]["active"]
    assert 2 == len(target.list("User"))
    assert [] == engine.store.staged_deletes(job_id)
    clock.advance(timedelta(days=30))
    engine.run_cycle(job_id)
    assert 2 == len(target.list("User"))


def test_a_target_that_cannot_disable_waits_then_deletes(make_job: Any, clock: ManualClock) -> None:
    """No write before the period ends (as LDAP: no disable); the delete waits, staged."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    target.capabilities = frozenset({Capability.DELETE})
    engine.run_cycle(job_id)
    before = target.list("User")
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    assert before == target.list("User")
    waiting = engine.provisioning_logs(job_id)[-1]
    assert ("StagedDelete", "skipped") == (waiting.action, waiting.status)
    assert waiting.error is not None and "cannot disable" in waiting.error
    [staged] = engine.store.staged_deletes(job_id)
    assert staged.due == clock.now() + timedelta(days=7)
    clock.advance(timedelta(days=7))
    engine.run_cycle(job_id)
    assert {"user0@example.org"} == set(target_users(target))


def test_waiting_deletes_are_not_counted_against_the_threshold(
    make_job: Any, clock: ManualClock
) -> None:
    """Deletes staged in earlier cycles and still waiting do not add to a later cycle's
    count; once due they are counted (and held) like any other."""
    engine, job_id, source, target = make_job(
        users=6, settings={**GRACE, "QuarantineTooManyDeletesThreshold": "2"}
    )
    engine.run_cycle(job_id)
    for n in (0, 1):
        source.remove("User", f"s00000{n}")
    engine.run_cycle(job_id)
    clock.advance(timedelta(days=1))
    for n in (2, 3):
        source.remove("User", f"s00000{n}")
    run = engine.run_cycle(job_id)
    assert StatusCode.QUARANTINE != engine.get_job(job_id).status.code, run
    disabled = [a for a in target.list("User").values() if a["active"] is False]
    assert 4 == len(disabled)
    clock.advance(timedelta(days=7))  # all four due now: over the threshold of 2
    engine.run_cycle(job_id)
    assert StatusCode.QUARANTINE == engine.get_job(job_id).status.code
    assert 6 == len(target.list("User"))


def test_restore_before_the_period(make_job: Any, clock: ManualClock) -> None:
    """Restore by a matching value: the delete cancelled, the object enabled; the source
    lacks it, so it is no longer linked and never deleted; it joins again when it is back."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    ref = next(r for r, a in target.list("User").items() if a["userName"] == "user1@example.org")
    kept = source.get("User", "s000001")
    assert kept is not None
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    with pytest.raises(NotFoundError):
        engine.restore(job_id, "nobody@example.org")
    with pytest.raises(NotFoundError):
        engine.restore("no-such-job", "user1@example.org")
    restored = engine.restore(job_id, "USER1@example.org")
    assert (True, False, "s000001") == (restored.enabled, restored.linked, restored.anchor)
    assert target.list("User")[ref]["active"] is True
    assert [] == engine.store.staged_deletes(job_id)
    assert "Update" == engine.provisioning_logs(job_id)[-1].action
    clock.advance(timedelta(days=8))
    engine.run_cycle(job_id)
    assert ref in target.list("User")
    source.put("User", "s000001", {**kept, "displayName": "Back"})
    engine.run_cycle(job_id)
    assert "Back" == target.list("User")[ref]["displayName"]
    assert 2 == len(target.list("User"))


def test_restore_keeps_the_link_when_the_source_has_the_object(
    make_job: Any, clock: ManualClock
) -> None:
    """Restored by its anchor while the source has it again: still linked, enabled."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    kept = source.get("User", "s000001")
    assert kept is not None
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    source.put("User", "s000001", kept)
    restored = engine.restore(job_id, "s000001")
    assert (True, True) == (restored.enabled, restored.linked)
    assert engine.store.get_links(job_id, restored.mapping, ["s000001"])
    clock.advance(timedelta(days=8))
    engine.run_cycle(job_id)
    assert 2 == len(target_users(target))
    assert "True" == target_users(target)["user1@example.org"]["active"]


@pytest.mark.parametrize("same_cycle", [True, False])
def test_a_re_add_under_a_new_anchor_takes_the_waiting_object_over(
    make_job: Any, clock: ManualClock, same_cycle: bool
) -> None:
    """An object deleted and added again with a new anchor (LDAP: a new entryUUID), in the
    same cycle or a later one: it joins the disabled target object by its matching value and
    enables it; the old anchor's delete is cancelled, nothing is created or deleted."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    ref = next(r for r, a in target.list("User").items() if a["userName"] == "user1@example.org")
    kept = source.get("User", "s000001")
    assert kept is not None
    source.remove("User", "s000001")
    if not same_cycle:
        engine.run_cycle(job_id)
        assert target.list("User")[ref]["active"] is False
        clock.advance(timedelta(days=1))
    source.put("User", "n000001", kept)
    engine.run_cycle(job_id)
    assert "True" == target.list("User")[ref]["active"]
    assert 2 == len(target.list("User"))
    assert [] == engine.store.staged_deletes(job_id)
    assert [] == engine.escrows(job_id)
    clock.advance(timedelta(days=8))
    engine.run_cycle(job_id)
    assert ref in target.list("User") and 2 == len(target.list("User"))
