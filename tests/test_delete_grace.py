"""DeleteGracePeriod: a delete disables first and deletes after the period, unless the object
comes back or is restored meanwhile (memory connectors, SQLite store, a manual clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Capability
from connectors.memory import MemoryDirectory
from engine import (
    ConfigurationError,
    ManualClock,
    NotFoundError,
    StatusCode,
    SyncEngine,
    TransitionError,
)
from engine.model import KeyValuePair
from engine.settings import JobSettings
from tests.conftest import target_users
from tests.test_proofs import Crash

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


def crash_after(target: MemoryDirectory, operation: str) -> None:
    """The process dies right after the target applied the next ``operation``."""

    def hook(done: str, object_type: str, ref: str | None) -> None:
        if done == operation:
            raise Crash

    target.after_write = hook


@pytest.mark.parametrize("back_while_down", [False, True])
def test_a_crash_between_the_disable_and_the_delete_staged_again_converges(
    make_job: Any, clock: ManualClock, tmp_path: Path, back_while_down: bool
) -> None:
    """The disable reached the target, the store never heard: the next engine keeps the
    link (the delete intent), disables again (harmless) and stages the delete due after the
    period; or, if the object came back meanwhile, enables it; never a second object."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    ref = next(r for r, a in target.list("User").items() if a["userName"] == "user1@example.org")
    kept = source.get("User", "s000001")
    assert kept is not None
    source.remove("User", "s000001")
    crash_after(target, "delete")
    with pytest.raises(Crash):
        engine.run_cycle(job_id)
    target.after_write = None
    del engine  # dropped as a killed process
    assert target.list("User")[ref]["active"] is False
    if back_while_down:
        source.put("User", "s000001", kept)
    revived = SyncEngine(tmp_path / "state.db", clock)
    revived.attach(job_id, source, target)
    revived.run_cycle(job_id)
    assert [] == revived.store.pending_intents(job_id)
    if back_while_down:
        assert "True" == target.list("User")[ref]["active"]
        assert [] == revived.store.staged_deletes(job_id)
    else:
        assert target.list("User")[ref]["active"] is False
        [staged] = revived.store.staged_deletes(job_id)
        assert staged.due == clock.now() + timedelta(days=7)
        clock.advance(timedelta(days=7))
        revived.run_cycle(job_id)
        assert ref not in target.list("User")
    assert len(target.list("User")) == len(source.list("User"))
    revived.close()


def test_a_restore_cut_short_by_a_crash_is_asked_again(
    make_job: Any, clock: ManualClock, tmp_path: Path
) -> None:
    """The enable reached the target, the store never heard: the delete is still staged and
    the intent in doubt; a restore is refused until a cycle settles it, then succeeds."""
    engine, job_id, source, target = make_job(users=2, settings=GRACE)
    engine.run_cycle(job_id)
    ref = next(r for r, a in target.list("User").items() if a["userName"] == "user1@example.org")
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    crash_after(target, "update")
    with pytest.raises(Crash):
        engine.restore(job_id, "s000001")
    target.after_write = None
    del engine
    revived = SyncEngine(tmp_path / "state.db", clock)
    revived.attach(job_id, source, target)
    clock.advance(timedelta(minutes=10))  # the dead restore's lease expired
    with pytest.raises(TransitionError, match="run a cycle first"):
        revived.restore(job_id, "s000001")
    revived.run_cycle(job_id)
    restored = revived.restore(job_id, "s000001")
    assert (True, False) == (restored.enabled, restored.linked)
    clock.advance(timedelta(days=8))
    revived.run_cycle(job_id)
    assert target.list("User")[ref]["active"] is True
    revived.close()


def test_the_setting_parses_like_the_other_durations() -> None:
    """Off by default and at PT0S; an unreadable or negative value names the setting."""
    assert JobSettings.parse(()).delete_grace is None
    pair = KeyValuePair(name="DeleteGracePeriod", value="P7D")
    assert timedelta(days=7) == JobSettings.parse([pair]).delete_grace
    assert (
        JobSettings.parse([KeyValuePair(name="DeleteGracePeriod", value="PT0S")]).delete_grace
        is None
    )
    for bad in ("7 days", "-P1D"):
        with pytest.raises(ConfigurationError, match="DeleteGracePeriod"):
            JobSettings.parse([KeyValuePair(name="DeleteGracePeriod", value=bad)])


def test_an_untrusted_full_read_disables_nothing(make_job: Any, clock: ManualClock) -> None:
    """The held verdict of a full read that saw too few objects comes before the grace
    period: nothing is disabled until ForceDeletes, which disables; the delete follows."""
    engine, job_id, source, target = make_job(users=10, settings=GRACE)
    engine.run_cycle(job_id)
    for n in range(8):
        source.remove("User", f"s{n:06d}")
    engine.restart(job_id, "Watermark")
    engine.run_cycle(job_id)
    assert StatusCode.QUARANTINE == engine.get_job(job_id).status.code
    assert all(a["active"] == "True" for a in target.list("User").values())
    engine.restart(job_id, ["ForceDeletes", "QuarantineState"])
    engine.run_cycle(job_id)
    assert 8 == sum(a["active"] is False for a in target.list("User").values())
    clock.advance(timedelta(days=7))
    engine.run_cycle(job_id)
    assert 2 == len(target.list("User"))


def test_waiting_deletes_do_not_make_a_full_read_look_shrunk(
    make_job: Any, clock: ManualClock
) -> None:
    """Objects whose delete waits are still linked, and a later full read rightly misses
    them: they do not count toward SourceShrinkThreshold, so the read is trusted."""
    engine, job_id, source, target = make_job(users=10, settings=GRACE)
    engine.run_cycle(job_id)
    for n in range(6):
        source.remove("User", f"s{n:06d}")
    engine.run_cycle(job_id)  # six disabled, waiting
    engine.restart(job_id, "Watermark")
    engine.run_cycle(job_id)
    assert StatusCode.QUARANTINE != engine.get_job(job_id).status.code
    clock.advance(timedelta(days=7))
    engine.run_cycle(job_id)
    assert 4 == len(target.list("User"))
