"""A create whose outcome is in doubt is looked up before it is sent again (issue #17, point 1),
on memory connectors: the target applies the create and then fails it (its answer lost), or
refuses it before applying. Real SCIM faults: tests/integration/test_creates_in_doubt.py."""

from __future__ import annotations

from typing import Any

from connectors.base import TransientError
from engine.model import TaskExecutionResult
from tests.conftest import target_users


def _lose_answers(target: Any, operation: str, times: int) -> list[str]:
    """The next ``times`` ``operation`` writes are applied, then fail as a lost answer would."""
    lost: list[str] = []

    def after(done: str, object_type: str, ref: str) -> None:
        if done == operation and len(lost) < times:
            lost.append(ref)
            raise TransientError(f"{done} {ref}: no answer (fault injected after the write)")

    target.after_write = after
    return lost


def test_a_create_applied_but_unanswered_is_completed_not_doubled(make_job: Any) -> None:
    """The first create's answer is lost after the write: the retry finds the object by its
    matching value and completes it; one object, and the log says the create was in doubt."""
    engine, job_id, _, target = make_job(users=3)
    lost = _lose_answers(target, "create", 1)
    execution = engine.run_cycle(job_id)
    assert lost and execution.state is TaskExecutionResult.SUCCEEDED
    assert len(target.list("User")) == 3 and len(target_users(target)) == 3
    records = [r for r in engine.provisioning_logs(job_id) if r.action == "Create"]
    assert sorted(r.status for r in records) == ["success", "success", "warning"]
    warning = next(r for r in records if r.status == "warning")
    assert warning.target_ref == lost[0] and "in doubt" in (warning.error or "")
    assert engine.escrows(job_id) == []


def test_every_create_unanswered_twice_still_makes_one_object_each(make_job: Any) -> None:
    """Lost answers on every create, twice over: still one object per source object."""
    engine, job_id, _, target = make_job(users=5, settings={"TransientRetries": "3"})
    _lose_answers(target, "create", 10)
    engine.run_cycle(job_id)
    assert len(target.list("User")) == 5 and engine.escrows(job_id) == []


def test_a_create_refused_before_the_write_is_simply_sent_again(make_job: Any) -> None:
    """A busy target that refused the create (nothing written): not found, created again, and
    recorded as an ordinary create."""
    engine, job_id, _, target = make_job(users=2)
    target.transient_failures = 1
    engine.run_cycle(job_id)
    assert len(target.list("User")) == 2
    assert {r.status for r in engine.provisioning_logs(job_id)} == {"success"}
