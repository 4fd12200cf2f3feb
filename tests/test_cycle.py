"""Cycles end to end on memory connectors and the SQLite store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import structlog

from connectors.base import Capability
from connectors.memory import MemoryDirectory
from engine import (
    ConfigurationError,
    ManualClock,
    NotFoundError,
    QuarantineReason,
    StatusCode,
    SyncEngine,
    TransitionError,
)
from engine.model import KeyValuePair, TaskExecutionResult, to_graph
from engine.settings import JobSettings
from tests.conftest import fill, target_users, user


def test_initial_cycle_creates_everything(make_job: Any) -> None:
    """An initial cycle creates every in-scope source object with its mapped attributes."""
    engine, job_id, source, target = make_job(users=25)
    run = engine.run_cycle(job_id)
    assert TaskExecutionResult.SUCCEEDED == run.state
    assert 25 == run.count_imported == run.count_exported
    users = target_users(target)
    assert 25 == len(users)
    assert {
        "userName": "user3@example.org",
        "displayName": "User 3",
        "mail": "user3@example.org",
        "department": "Sales",
        "active": "True",
    } == users["user3@example.org"]


def test_unchanged_objects_are_not_written(make_job: Any) -> None:
    """A second cycle with no source change makes no write at all."""
    engine, job_id, _, target = make_job(users=10)
    engine.run_cycle(job_id)
    writes = target.writes
    run = engine.run_cycle(job_id)
    assert writes == target.writes
    assert 0 == run.count_imported


def test_update_sends_the_minimal_delta(make_job: Any) -> None:
    """An update carries only the attributes that changed."""
    engine, job_id, source, target = make_job(users=3)
    engine.run_cycle(job_id)
    seen: list[dict[str, Any]] = []
    original = target.update

    def spy(object_type: str, ref: str, delta: Any) -> None:
        seen.append(dict(delta))
        original(object_type, ref, delta)

    target.update = spy  # type: ignore[method-assign]
    source.put("User", "s000001", user(1, department="Research", mail=None))
    run = engine.run_cycle(job_id)
    assert [{"department": "Research", "mail": None}] == seen
    assert 1 == run.count_exported
    assert "mail" not in target_users(target)["user1@example.org"]


def test_case_only_change_does_not_flow_unless_case_exact(make_job: Any) -> None:
    """Change detection ignores case unless the target attribute is caseExact (as Entra)."""
    engine, job_id, source, target = make_job(users=1)
    engine.run_cycle(job_id)
    source.put("User", "s000000", user(0, displayName="USER 0"))
    writes = target.writes
    engine.run_cycle(job_id)
    assert writes == target.writes


def test_join_by_matching_attribute_links_existing_target_object(make_job: Any) -> None:
    """An object already in the target is matched by userName and updated, not duplicated."""
    engine, job_id, source, target = make_job(users=2)
    ref = target.create("User", {"userName": "USER1@example.org", "department": "Old"})
    engine.run_cycle(job_id)
    assert 2 == len(target.list("User"))
    assert "Sales" == target.get("User", ref)["department"]  # type: ignore[index]


def test_two_sources_matching_one_target_object_do_not_share_it(make_job: Any) -> None:
    """A target object already joined to one source object is not joined to a second."""
    engine, job_id, source, target = make_job(users=1)
    engine.run_cycle(job_id)
    source.put("User", "dup", user(0, displayName="Impostor"))
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed
    assert "already joined" in engine.escrows(job_id)[0].error
    assert 1 == len(target.list("User"))


def test_object_without_matching_value_is_escrowed_not_created(make_job: Any) -> None:
    """No matching value means no safe create: the object is escrowed."""
    engine, job_id, source, target = make_job()
    source.put("User", "nomatch", {"displayName": "No userName"})
    run = engine.run_cycle(job_id)
    assert 1 == run.count_escrowed and 0 == len(target.list("User"))


def test_source_delete_hard_deletes_by_default(make_job: Any) -> None:
    """A source delete removes the target object (HardDeletesEnabled defaults to true)."""
    engine, job_id, source, target = make_job(users=3)
    engine.run_cycle(job_id)
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    assert {"user0@example.org", "user2@example.org"} == set(target_users(target))


def test_hard_deletes_disabled_soft_deletes(make_job: Any) -> None:
    """With HardDeletesEnabled=False a source delete disables the target object."""
    engine, job_id, source, target = make_job(users=2)
    engine.set_secrets(None, {"HardDeletesEnabled": "False"})
    engine.run_cycle(job_id)
    source.remove("User", "s000001")
    engine.run_cycle(job_id)
    assert target_users(target)["user1@example.org"]["active"] is False


def scoped_schema(engine: SyncEngine, job_id: str) -> dict[str, Any]:
    schema = to_graph(engine.get_schema(job_id))
    schema["synchronizationRules"][0]["objectMappings"][0]["scope"] = {
        "groups": [
            {
                "clauses": [
                    {
                        "operatorName": "EQUALS",
                        "sourceOperandName": "department",
                        "targetOperand": {"values": ["Sales"]},
                    }
                ]
            }
        ]
    }
    return schema


def test_object_leaving_scope_is_disabled(make_job: Any) -> None:
    """An object that stops matching the scoping filter is soft-deleted (disabled)."""
    engine, job_id, source, target = make_job(users=2)
    engine.update_schema(job_id, scoped_schema(engine, job_id))
    source.put("User", "s009999", user(9999, department="Finance"))
    engine.run_cycle(job_id)
    assert "user9999@example.org" not in target_users(target)
    source.put("User", "s000001", user(1, department="Finance"))
    engine.run_cycle(job_id)
    assert target_users(target)["user1@example.org"]["active"] is False
    logs = engine.provisioning_logs(job_id)
    assert "Disable" == logs[-1].action


def test_skip_out_of_scope_deletions(make_job: Any) -> None:
    """SkipOutOfScopeDeletions=True leaves objects that left scope untouched."""
    engine, job_id, source, target = make_job(users=2)
    engine.update_schema(job_id, scoped_schema(engine, job_id))
    engine.set_secrets(None, {"SkipOutOfScopeDeletions": "True"})
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, department="Finance"))
    engine.run_cycle(job_id)
    assert "active" in target_users(target)["user1@example.org"]
    assert target_users(target)["user1@example.org"]["active"] == "True"


def test_target_without_soft_delete_gets_hard_delete(make_job: Any) -> None:
    """A disable on a target that cannot soft-delete becomes a delete."""
    engine, job_id, source, target = make_job(users=2)
    target.capabilities = frozenset({Capability.DELETE})
    engine.update_schema(job_id, scoped_schema(engine, job_id))
    engine.run_cycle(job_id)
    source.put("User", "s000001", user(1, department="Finance"))
    engine.run_cycle(job_id)
    assert "user1@example.org" not in target_users(target)


def test_flow_types_without_delete_keep_objects(make_job: Any) -> None:
    """An object mapping without Delete in flowTypes never deletes."""
    engine, job_id, source, target = make_job(users=2)
    schema = to_graph(engine.get_schema(job_id))
    schema["synchronizationRules"][0]["objectMappings"][0]["flowTypes"] = "Add, Update"
    engine.update_schema(job_id, schema)
    engine.run_cycle(job_id)
    source.remove("User", "s000000")
    engine.run_cycle(job_id)
    assert 2 == len(target.list("User"))


def test_transient_errors_are_retried_within_the_cycle(make_job: Any) -> None:
    """A couple of transient failures are absorbed by retries: nothing escrowed."""
    engine, job_id, _, target = make_job(users=3)
    target.transient_failures = 2
    run = engine.run_cycle(job_id)
    assert 0 == run.count_escrowed and 3 == len(target.list("User"))


def test_escrow_backoff_schedule(make_job: Any, clock: ManualClock) -> None:
    """A failing object is retried next cycle, then after 5 and 10 minutes, then succeeds."""
    engine, job_id, _, target = make_job(users=3)
    target.fail_object("User", "user1@example.org", times=3)
    assert 1 == engine.run_cycle(job_id).count_escrowed
    assert 1 == engine.run_cycle(job_id).count_escrowed  # retried next cycle: fails again
    assert 0 == engine.run_cycle(job_id).count_imported  # not due yet (5 minutes)
    clock.advance(timedelta(minutes=5))
    assert 1 == engine.run_cycle(job_id).count_escrowed
    escrow = engine.escrows(job_id)[0]
    assert 3 == escrow.attempts
    assert clock.now() + timedelta(minutes=10) < escrow.next_retry + timedelta(seconds=1)
    clock.advance(timedelta(minutes=10))
    run = engine.run_cycle(job_id)
    assert 0 == run.count_escrowed and 1 == run.count_exported
    assert [] == engine.escrows(job_id)
    assert 3 == len(target.list("User"))


def test_credentials_error_quarantines_at_once(make_job: Any) -> None:
    """Bad credentials fail the cycle and quarantine the job immediately."""
    engine, job_id, source, _ = make_job(users=1)
    source.bad_credentials = True
    run = engine.run_cycle(job_id)
    assert TaskExecutionResult.FAILED == run.state
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.ENCOUNTERED_QUARANTINE_EXCEPTION == status.quarantine.reason
    assert "CredentialsError" == status.quarantine.error.code


def test_an_unreachable_target_shows_at_the_first_failed_cycle(make_job: Any) -> None:
    """By default the first failed cycle quarantines (the status tells the truth at once),
    and the job recovers by itself when the target is back."""
    engine, job_id, _, target = make_job(users=1)
    target.unreachable = True
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert status.quarantine.reason is QuarantineReason.ENCOUNTERED_QUARANTINE_EXCEPTION
    assert 1 == status.count_successive_complete_failures
    target.unreachable = False
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.ACTIVE == status.code and status.quarantine is None
    assert 1 == len(target.list("User"))


def test_unreachable_quarantines_after_successive_failures(make_job: Any) -> None:
    """QuarantineUnreachableCycles 3: an unreachable target quarantines after 3 failed
    cycles, then recovers when back."""
    engine, job_id, _, target = make_job(users=1, settings={"QuarantineUnreachableCycles": "3"})
    target.unreachable = True
    for failures in (1, 2):
        engine.run_cycle(job_id)
        status = engine.get_job(job_id).status
        assert StatusCode.ACTIVE == status.code
        assert failures == status.count_successive_complete_failures
    engine.run_cycle(job_id)
    assert StatusCode.QUARANTINE == engine.get_job(job_id).status.code
    target.unreachable = False
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.ACTIVE == status.code and status.quarantine is None
    assert 1 == len(target.list("User"))


def test_most_objects_failing_quarantines_naming_the_common_error(make_job: Any) -> None:
    """With the default minimum (10), a cycle where most objects fail alike quarantines at
    once and its reason names the error most of them had."""
    engine, job_id, _, target = make_job(users=12)
    for n in range(11):
        target.fail_object("User", f"user{n}@example.org", times=1)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD == status.quarantine.reason
    message = status.quarantine.error.message
    assert message.startswith("11 of ") and "11 of them with " in message, message


def test_a_few_failures_do_not_quarantine(make_job: Any) -> None:
    engine, job_id, _, target = make_job(users=20)
    for n in range(9):
        target.fail_object("User", f"user{n}@example.org", times=1)
    engine.run_cycle(job_id)
    assert StatusCode.ACTIVE == engine.get_job(job_id).status.code


def test_escrow_share_quarantines(make_job: Any) -> None:
    """More failures than QuarantineEscrowProportion of the cycle's objects quarantines."""
    engine, job_id, _, target = make_job(
        users=10, settings={"QuarantineEscrowMinimum": "5", "QuarantineEscrowProportion": "0.4"}
    )
    for n in range(6):
        target.fail_object("User", f"user{n}@example.org", times=1)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert StatusCode.QUARANTINE == status.code
    assert QuarantineReason.ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD == status.quarantine.reason


def test_quarantined_job_backs_off(make_job: Any, clock: ManualClock) -> None:
    """A quarantined job is due later and later, never more than daily."""
    engine, job_id, source, _ = make_job(users=1, schedule="PT10M")
    source.bad_credentials = True
    engine.run_cycle(job_id)
    q = engine.get_job(job_id).status.quarantine
    assert timedelta(minutes=10) == q.next_attempt - clock.now()
    clock.advance(timedelta(minutes=9))
    assert [] == engine.run_pending()
    clock.advance(timedelta(minutes=1))
    assert 1 == len(engine.run_pending())
    q = engine.get_job(job_id).status.quarantine
    assert 1 == q.series_count
    assert timedelta(minutes=20) == q.next_attempt - clock.now()


def test_run_pending_follows_the_schedule(make_job: Any, clock: ManualClock) -> None:
    """run_pending runs a job when started, then again once its interval has passed."""
    engine, job_id, _, _ = make_job(users=1, schedule="PT40M")
    assert 1 == len(engine.run_pending())
    assert [] == engine.run_pending()
    clock.advance(timedelta(minutes=39))
    assert [] == engine.run_pending()
    clock.advance(timedelta(minutes=1))
    assert 1 == len(engine.run_pending())
    engine.pause(job_id)
    clock.advance(timedelta(hours=1))
    assert [] == engine.run_pending()


def test_restart_watermark_rereads_everything(make_job: Any) -> None:
    """Restart (default scope) makes the next cycle an initial one that re-reads every object."""
    engine, job_id, _, target = make_job(users=5)
    engine.run_cycle(job_id)
    engine.restart(job_id)
    run = engine.run_cycle(job_id)
    assert 5 == run.count_imported
    assert 0 == run.count_exported  # links kept: nothing to write
    engine.restart(job_id, "Full")
    writes = target.writes
    run = engine.run_cycle(job_id)
    assert 5 == run.count_imported and 5 == run.count_exported  # re-joined by matching
    assert 5 == len(target.list("User")) and writes + 5 == target.writes


def test_restart_escrows_drops_them(make_job: Any) -> None:
    """Restart with Escrows forgets escrowed objects."""
    engine, job_id, _, target = make_job(users=2)
    target.fail_object("User", "user1@example.org", times=1)
    engine.run_cycle(job_id)
    assert engine.escrows(job_id)
    engine.restart(job_id, "Escrows")
    assert [] == engine.escrows(job_id)


def test_restart_quarantine_state_lifts_quarantine(make_job: Any) -> None:
    """Restart with QuarantineState lifts quarantine and resets the failure count."""
    engine, job_id, source, _ = make_job(users=1)
    source.bad_credentials = True
    engine.run_cycle(job_id)
    engine.restart(job_id, ["QuarantineState"])
    status = engine.get_job(job_id).status
    assert StatusCode.ACTIVE == status.code and status.quarantine is None
    assert 0 == status.count_successive_complete_failures


def test_start_lifts_quarantine_and_keeps_watermark(make_job: Any) -> None:
    """Start clears quarantine but keeps the watermark: the next cycle is incremental."""
    engine, job_id, source, _ = make_job(users=3)
    engine.run_cycle(job_id)
    source.bad_credentials = True
    engine.run_cycle(job_id)
    source.bad_credentials = False
    engine.start(job_id)
    assert StatusCode.ACTIVE == engine.get_job(job_id).status.code
    assert 0 == engine.run_cycle(job_id).count_imported


def test_commands_on_unknown_jobs_and_bad_states(make_job: Any) -> None:
    """Unknown jobs are NotFound; refused transitions say why; bad input is refused."""
    engine, job_id, _, _ = make_job()
    with pytest.raises(NotFoundError):
        engine.start("nope")
    with pytest.raises(NotFoundError, match="no template"):
        engine.create_job("nope", MemoryDirectory(), MemoryDirectory())
    with pytest.raises(ConfigurationError, match="schedule"):
        engine.create_job(
            "memoryToMemory", MemoryDirectory(), MemoryDirectory(), schedule="every day"
        )
    with pytest.raises(ConfigurationError, match="QuarantineTooManyDeletesThreshold"):
        engine.create_job(
            "memoryToMemory",
            MemoryDirectory(),
            MemoryDirectory(),
            settings={"QuarantineTooManyDeletesThreshold": "many"},
        )
    other = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory())
    with pytest.raises(TransitionError, match="start it"):
        engine.run_cycle(other.id)
    with pytest.raises(TransitionError, match="cannot pause"):
        engine.pause(other.id)
    with pytest.raises(ConfigurationError, match="JSON object"):
        engine.set_secrets(None, {"SyncNotificationSettings": "{not json"})


def test_schema_without_matching_attribute_is_refused(make_job: Any) -> None:
    """A mapping that could create objects but has no matching attribute is refused up front."""
    engine, job_id, _, _ = make_job()
    schema = to_graph(engine.get_schema(job_id))
    for am in schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]:
        am["matchingPriority"] = 0
    with pytest.raises(ConfigurationError, match="matching attribute"):
        engine.update_schema(job_id, schema)


def test_delete_job_drops_all_state(make_job: Any) -> None:
    """Delete removes the job and its links, escrows and logs; the target is left as is."""
    engine, job_id, _, target = make_job(users=2)
    engine.run_cycle(job_id)
    engine.delete_job(job_id)
    with pytest.raises(NotFoundError):
        engine.get_job(job_id)
    assert [] == engine.store.provisioning_logs(job_id)
    assert {} == engine.store.count_links(job_id)
    assert 2 == len(target.list("User"))


def test_provision_on_demand(make_job: Any) -> None:
    """One object is provisioned now, whatever the schedule, and its log is returned."""
    engine, job_id, source, target = make_job(users=1)
    records = engine.provision_on_demand(job_id, "User", "s000000")
    assert ["Create"] == [r.action for r in records]
    assert 1 == len(target.list("User"))
    source.remove("User", "s000000")
    records = engine.provision_on_demand(job_id, "User", "s000000")
    assert ["Delete"] == [r.action for r in records]
    assert 0 == len(target.list("User"))
    with pytest.raises(NotFoundError):
        engine.provision_on_demand(job_id, "Printer", "x")


def test_status_counters_and_steady_state(make_job: Any) -> None:
    """Status carries executions, entry counts per type, progress and steady-state times."""
    engine, job_id, source, _ = make_job(users=4)
    source.put("Group", "g1", {"displayName": "Staff"})
    first = engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert first == status.last_execution == status.last_successful_execution
    assert first == status.last_successful_execution_with_exports
    assert {"User": 4, "Group": 1} == {
        p.key: p.value for p in status.synchronized_entry_count_by_type
    }
    assert "pages" == status.progress[0].units
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert status.steady_state_last_achieved_time == engine.clock.now()
    assert first == status.last_successful_execution_with_exports


def test_provisioning_log_shows_mapped_values_and_log_lines_none(make_job: Any) -> None:
    """Provisioning records carry the attribute names and the values exported (issue 18,
    point 5: masked as tests/test_provisioning_names.py shows); an attribute that is not
    mapped appears nowhere, and the log lines (structlog) carry no value at all."""
    engine, job_id, source, _ = make_job()
    source.put("User", "secret", user(1, password="Hunter2-secret"))
    with structlog.testing.capture_logs() as captured:
        engine.run_cycle(job_id)
    records = engine.provisioning_logs(job_id)
    assert "Create" == records[0].action
    assert "userName" in records[0].attributes
    assert ("userName", None, "user1@example.org") in records[0].changes()
    assert "Hunter2-secret" not in repr(records) + repr(captured)
    assert "user1@example.org" not in repr(captured)


def test_secrets_are_write_only(make_job: Any) -> None:
    """Secrets read back masked."""
    engine, _, _, _ = make_job()
    engine.set_secrets(None, {"SecretToken": "s3cr3t", "BaseAddress": "https://x"})
    assert {"SecretToken": "*", "BaseAddress": "*"} == engine.masked_secrets(None)


def test_fill_helper_is_deterministic() -> None:
    """The fill helper used by these tests creates predictable anchors."""
    d = MemoryDirectory()
    fill(d, 2)
    assert ["s000000", "s000001"] == sorted(d.list("User"))


def test_create_job_takes_graph_json_schema(make_job: Any) -> None:
    """create_job accepts the schema as Graph-shaped JSON and refuses bad JSON by path."""
    engine, job_id, _, _ = make_job()
    schema = to_graph(engine.get_schema(job_id))
    job = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory(), schema=schema)
    assert engine.get_schema(job.id) == engine.get_schema(job_id)
    schema["synchronizationRules"][0]["objectMappings"][0]["flowTypes"] = 3
    with pytest.raises(ConfigurationError, match="flowTypes"):
        engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory(), schema=schema)


def test_logs_bind_job_cycle_and_anchor(make_job: Any) -> None:
    """Log events carry job_id and cycle_id; per-object events carry the anchor."""
    engine, job_id, _, target = make_job(users=2)
    target.fail_object("User", "user1@example.org", times=1)
    with structlog.testing.capture_logs() as captured:
        run = engine.run_cycle(job_id)
    escrowed = [e for e in captured if e["event"] == "object_escrowed"]
    assert [{"anchor": "s000001", "job_id": job_id, "cycle_id": run.activity_identifier}] == [
        {k: e[k] for k in ("anchor", "job_id", "cycle_id")} for e in escrowed
    ]
    assert all(e.get("job_id") == job_id for e in captured if e["event"].startswith("cycle_"))


def test_graph_settings_are_kept_and_unknown_ones_refused(make_job: Any) -> None:
    """A setting Graph documents that the engine does not act on is kept (Graph shows it) and
    logged as unused; a name neither knows is refused, listing the known names."""
    engine, _, _, _ = make_job()
    with structlog.testing.capture_logs() as captured:
        job = engine.create_job(
            "memoryToMemory",
            MemoryDirectory(),
            MemoryDirectory(),
            settings={"DomainFQDN": "corp.example"},
        )
    assert "DomainFQDN" in [p.name for p in job.synchronization_job_settings]
    assert any(e["event"] == "setting_not_used" for e in captured)
    with pytest.raises(ConfigurationError, match="unknown job setting 'PageSise'.*PageSize"):
        engine.create_job("memoryToMemory", settings={"PageSise": "10"})


def test_provisioning_log_retention(make_job: Any, clock: ManualClock) -> None:
    """Records older than ProvisioningLogRetention are pruned after each cycle."""
    engine, job_id, source, _ = make_job(users=2, settings={"ProvisioningLogRetention": "P7D"})
    engine.run_cycle(job_id)
    assert 2 == len(engine.provisioning_logs(job_id))
    clock.advance(timedelta(days=8))
    source.put("User", "s000000", user(0, department="R&D"))
    engine.run_cycle(job_id)
    assert ["Update"] == [r.action for r in engine.provisioning_logs(job_id)]


def test_provisioning_log_max_records(make_job: Any, clock: ManualClock) -> None:
    """ProvisioningLogMaxRecords caps the job's log whatever its age: after each cycle the
    oldest checkpoints go until the log is within it; the newest records stay."""
    engine, job_id, source, _ = make_job(
        users=30, settings={"ProvisioningLogMaxRecords": "12", "PageSize": "5"}
    )
    engine.run_cycle(job_id)  # 30 creates, six checkpoints of five
    assert 10 == engine.store.count_logs(job_id)
    for n in range(20):
        clock.advance(timedelta(minutes=2))
        for k in range(3):
            source.put("User", f"s{n + k:06d}", user(n + k, department=f"D{n}"))
        engine.run_cycle(job_id)
        logs = engine.provisioning_logs(job_id, limit=1000)
        assert len(logs) == engine.store.count_logs(job_id) <= 12
    assert {r.anchor for r in logs[-3:]} == {"s000019", "s000020", "s000021"}


def test_a_cycle_that_exports_nothing_writes_no_record(make_job: Any, clock: ManualClock) -> None:
    """An idle delta writes no record, nor does an object read again whose target already
    holds its values (a re-read, a change to nothing mapped): only what was done is logged.
    Provisioning it on demand still says why nothing was written."""
    engine, job_id, source, _ = make_job(users=3)
    engine.run_cycle(job_id)
    assert 3 == engine.store.count_logs(job_id)
    clock.advance(timedelta(minutes=2))
    assert 0 == engine.run_cycle(job_id).count_imported
    source.put("User", "s000001", user(1))  # read again, values as exported
    source.put("User", "s000002", user(2, displayName="USER 2"))  # case only: no write
    assert 2 == engine.run_cycle(job_id).count_imported
    assert 3 == engine.store.count_logs(job_id)
    (skip,) = engine.provision_on_demand(job_id, "User", "s000001")
    assert ("Other", "skipped", "RedundantExport") == (skip.action, skip.status, skip.error)


def test_provisioning_log_max_records_is_validated(make_job: Any) -> None:
    """A whole number; 0 (or none) means the default, 100,000."""
    engine, _, _, _ = make_job(settings={"ProvisioningLogMaxRecords": "0"})
    with pytest.raises(ConfigurationError, match="ProvisioningLogMaxRecords must be"):
        engine.create_job("memoryToMemory", settings={"ProvisioningLogMaxRecords": "-5"})

    def parsed(value: str) -> int:
        pairs = [KeyValuePair(name="ProvisioningLogMaxRecords", value=value)]
        return JobSettings.parse(pairs).log_max_records

    assert 100_000 == parsed("0") == JobSettings().log_max_records
    assert 7 == parsed("7")


def test_old_escrows_are_parked_and_can_be_replayed(make_job: Any, clock: ManualClock) -> None:
    """Past EscrowMaxAge an escrow is parked (kept, no longer retried) until replayed."""
    engine, job_id, _, target = make_job(users=2, settings={"EscrowMaxAge": "P2D"})
    target.fail_object("User", "user1@example.org", times=100)
    engine.run_cycle(job_id)
    for _ in range(4):
        clock.advance(timedelta(days=1))
        engine.run_cycle(job_id)
    escrow = engine.escrows(job_id)[0]
    assert escrow.parked
    clock.advance(timedelta(days=2))
    assert 0 == engine.run_cycle(job_id).count_imported  # parked: not retried
    target.clear_faults()
    assert 1 == engine.replay_escrows(job_id, ["s000001"])
    run = engine.run_cycle(job_id)
    assert 1 == run.count_exported and [] == engine.escrows(job_id)
    assert 2 == len(target.list("User"))


def test_an_object_deleted_in_the_target_is_matched_again_and_created(make_job) -> None:  # type: ignore[no-untyped-def]
    """Someone deleted the linked target object: the next update gets ObjectGone, and the
    engine matches the object again (nothing matches) and creates it, escrowing nothing."""
    engine, job_id, source, target = make_job(users=2)
    engine.run_cycle(job_id)
    (ref,) = [r for r, a in target.list("User").items() if a["userName"] == "user1@example.org"]
    target.delete("User", ref, soft=False)
    source.put("User", "s000001", {**source.get("User", "s000001"), "department": "R&D"})
    execution = engine.run_cycle(job_id)
    assert engine.escrows(job_id) == [] and execution.count_exported == 1
    (again,) = [a for a in target.list("User").values() if a["userName"] == "user1@example.org"]
    assert again["department"] == "R&D"


def test_deletes_the_source_told_of_do_not_make_a_later_full_read_untrusted(
    make_job: Any,
) -> None:
    """Three of four users deleted in the source, their deletes held by the count threshold;
    a restart reads the source in full and sees one: the three are known gone (the source
    said so), so the read is trusted and only the count threshold holds them, until forced.
    (Counted as unseen, they made the full read look untrusted: a churning directory, with a
    runner killed between staging and applying, stayed quarantined.)"""
    engine, job_id, source, target = make_job(
        users=4, settings={"QuarantineTooManyDeletesThreshold": "1"}
    )
    engine.run_cycle(job_id)
    for anchor in sorted(source.list("User"))[1:]:
        source.remove("User", anchor)
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert QuarantineReason.TOO_MANY_DELETES == status.quarantine.reason
    engine.restart(job_id)  # watermarks, escrows, quarantine: a reconciling full read
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert QuarantineReason.TOO_MANY_DELETES == status.quarantine.reason
    message = status.quarantine.error.message
    assert "accidental-deletion threshold" in message and "saw" not in message, message
    assert not any(s.reason.startswith("held: ") for s in engine.store.staged_deletes(job_id))
    engine.restart(job_id, ["ForceDeletes"])
    engine.run_cycle(job_id)
    assert 1 == len(target.list("User"))
