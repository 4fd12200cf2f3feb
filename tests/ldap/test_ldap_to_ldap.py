"""ldapToLdap jobs end to end between two real slapd servers: jobs built from secrets, the
initial and an incremental cycle, renames, reconciliation when the accesslog was purged,
SIGKILLed runner processes, and a target that goes away mid-cycle."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ldap3
import pytest

from connectors.base import CredentialsError, UnreachableError
from engine import (
    ConfigurationError,
    ManualClock,
    StatusCode,
    SyncEngine,
    SystemClock,
    TransitionError,
)
from engine.model import TaskExecutionResult
from tests.ldap.job_worker import kill_when, settle, start_worker
from tests.ldap.ldap_jobs import (
    PERSON,
    Tree,
    count,
    ldap_job,
    make_tree,
    modify,
    person,
    picture,
    seed,
    user_name,
)
from tests.ldap.slapd import ACCESSLOG_DN, Slapd

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def actions(engine: SyncEngine, job_id: str, cycle_id: str) -> dict[str, list[str]]:
    """What a cycle's provisioning log shows: action -> target refs (lower case), sorted."""
    found: dict[str, list[str]] = {}
    for record in engine.provisioning_logs(job_id, cycle_id):
        if record.status == "success" and record.action in ("Create", "Update", "Delete"):
            found.setdefault(record.action, []).append((record.target_ref or "").lower())
    return {k: sorted(v) for k, v in found.items()}


def test_a_job_waits_for_its_secrets_then_runs_again_after_a_restart_without_attach(
    tree: Tree, tmp_path: Path
) -> None:
    """NotConfigured until the secrets are there; then it runs; a new engine on the same
    state file (a restarted process) runs it again, building the connectors itself."""
    seed(tree, 5)
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    app = engine.create_application("ldap").id
    job_id = engine.create_job("ldapToLdap", application_id=app).id or ""
    assert engine.get_job(job_id).status.code is StatusCode.NOT_CONFIGURED  # type: ignore[union-attr]
    with pytest.raises(TransitionError):
        engine.start(job_id)
    engine.set_secrets(app, {k: v for k, v in tree.secrets().items() if k != "Password"})
    assert engine.get_job(job_id).status.code is StatusCode.NOT_CONFIGURED  # type: ignore[union-attr]
    engine.set_secrets(app, tree.secrets())
    engine.start(job_id)
    assert engine.run_cycle(job_id).count_exported == 5
    engine.close()
    modify(tree.source, {tree.user_dn(1): {"title": [(ldap3.MODIFY_REPLACE, ["Boss"])]}})
    again = SyncEngine(tmp_path / "s.db", ManualClock())
    execution = again.run_cycle(job_id)
    assert (execution.count_imported, execution.count_exported) == (1, 1)
    assert picture(tree.source, tree) == picture(tree.target, tree)
    again.close()


def test_initial_then_one_incremental_cycle_applies_exactly_what_changed(
    tree: Tree, tmp_path: Path
) -> None:
    """1,000 users and 20 groups; then 10 modified, 3 deleted, 2 renamed, 5 added and group
    members changed: one incremental cycle reads only those and writes only those."""
    seed(tree, 1000, groups=20)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    first = engine.run_cycle(job_id)
    assert first.state is TaskExecutionResult.SUCCEEDED and first.count_escrowed == 0
    assert picture(tree.source, tree) == picture(tree.target, tree)
    assert count(tree.target, tree.people) == 1000

    connection = tree.source.connect()
    modified = [200 + n for n in range(10)]  # users 100+ manage nobody
    for n in modified:
        connection.modify(tree.user_dn(n), {"title": [(ldap3.MODIFY_REPLACE, ["Manager"])]})
    deleted = [300, 301, 302]  # in groups 0, 1, 2
    for n in deleted:
        connection.delete(tree.user_dn(n))
    renamed = [400, 401]  # in groups 0 and 1: their member values move with them
    for n in renamed:
        connection.modify_dn(tree.user_dn(n), f"uid={user_name(n)}-r")
    added = [1000 + n for n in range(5)]
    for n in added:
        connection.add(tree.user_dn(n), PERSON, person(tree, n))
    connection.modify(
        f"cn=g005,{tree.groups}",
        {"member": [(ldap3.MODIFY_ADD, [tree.user_dn(1000)]),
                    (ldap3.MODIFY_DELETE, [tree.user_dn(5)])]},
    )  # fmt: skip
    connection.unbind()

    second = engine.run_cycle(job_id)
    assert picture(tree.source, tree) == picture(tree.target, tree)
    groups = {f"cn=g{j:03d},{tree.groups}".lower() for j in (0, 1, 2, 5)}
    users = {tree.user_dn(n).lower() for n in modified}
    users |= {f"uid={user_name(n)}-r,{tree.people}".lower() for n in renamed}
    assert actions(engine, job_id, second.activity_identifier or "") == {
        "Create": sorted(tree.user_dn(n).lower() for n in added),
        "Update": sorted(users | groups),
        "Delete": sorted(tree.user_dn(n).lower() for n in deleted),
    }
    # only what changed after the watermark was read: the users and group 5 (without refint
    # on the source, groups 0-2 did not change there: they follow their members' links)
    assert second.count_imported == 10 + 3 + 2 + 5 + 1
    assert second.count_escrowed == 0


def test_a_purged_accesslog_falls_back_to_a_reconciling_full_read(
    tree: Tree, tmp_path: Path
) -> None:
    """The accesslog no longer reaches back to the watermark (purged while the engine was
    down): the next cycle reads everything and deprovisions what it did not see, counted
    against the delete threshold."""
    seed(tree, 30)
    engine, job_id = ldap_job(tree, tmp_path / "s.db", QuarantineTooManyDeletesThreshold="5")
    engine.run_cycle(job_id)
    connection = tree.source.connect()
    connection.delete(tree.user_dn(29))
    connection.modify(tree.user_dn(28), {"title": [(ldap3.MODIFY_REPLACE, ["Chief"])]})
    connection.unbind()
    purge_accesslog(tree.source)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED
    assert picture(tree.source, tree) == picture(tree.target, tree)
    assert count(tree.target, tree.people) == 29


def purge_accesslog(server: Slapd) -> None:
    """Delete every accesslog record, as olcAccessLogPurge would once they are old enough."""
    connection = server.connect()
    try:
        connection.search(ACCESSLOG_DN, "(reqStart=*)", ldap3.LEVEL, attributes=["1.1"])
        for entry in list(connection.response):
            connection.delete(entry["dn"])
    finally:
        connection.unbind()


def test_the_timestamp_mode_syncs_without_an_accesslog(tree: Tree, tmp_path: Path) -> None:
    """SourceDeltaMode=timestamp: modifyTimestamp deltas; deletes found by the anchor-set
    comparison, which the engine runs as a reconciling full read."""
    seed(tree, 10)
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    app = engine.create_application("ldap").id
    engine.set_secrets(app, tree.secrets(SourceDeltaMode="timestamp"))
    job_id = engine.create_job("ldapToLdap", application_id=app).id or ""
    engine.start(job_id)
    engine.run_cycle(job_id)
    SystemClock().sleep(1.1)  # modifyTimestamp has a resolution of one second
    modify(tree.source, {tree.user_dn(3): {"title": [(ldap3.MODIFY_REPLACE, ["Lead"])]}})
    engine.run_cycle(job_id)
    assert picture(tree.source, tree) == picture(tree.target, tree)


# ------------------------------------------------------------------------ real kills
def test_sigkill_during_the_initial_and_an_incremental_cycle_converges(
    tree: Tree, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    """A real runner process is killed mid-cycle twice; started again on the same state file
    it converges: nothing lost, no duplicate (LDAP would refuse a second entry at one DN, so
    duplicates would show as escrows or as extra entries under other names)."""
    seed(tree, 600, groups=10, members=60)
    state = tmp_path / "s.db"
    engine, job_id = ldap_job(tree, state)
    engine.close()
    worker = start_worker(state, job_id)
    workers.append(worker)
    assert kill_when(worker, lambda: count(tree.target, tree.people) >= 200, 60)
    assert 200 <= count(tree.target, tree.people) < 600
    connection = tree.source.connect()
    for n in range(100, 160):  # the source moves while the runner is down
        connection.modify(tree.user_dn(n), {"title": [(ldap3.MODIFY_REPLACE, ["Moved"])]})
    connection.delete(tree.user_dn(599))
    connection.unbind()
    settle(state, job_id)
    assert picture(tree.source, tree) == picture(tree.target, tree)

    connection = tree.source.connect()
    for n in range(100, 600, 2):
        if n != 598:
            connection.modify(tree.user_dn(n), {"title": [(ldap3.MODIFY_REPLACE, ["Again"])]})
    connection.unbind()
    worker = start_worker(state, job_id)
    workers.append(worker)
    assert kill_when(worker, lambda: titled(tree.target, tree, "Again") >= 50, 60)
    settle(state, job_id)
    assert picture(tree.source, tree) == picture(tree.target, tree)
    assert count(tree.target, tree.people) == 599


def titled(server: Slapd, tree: Tree, title: str) -> int:
    return count(server, tree.people, f"(title={title})")


# ------------------------------------------------------------------------ target down
def test_a_target_that_goes_away_mid_cycle_fails_the_cycle_and_escrows_nothing(
    slapd_source: Slapd, make_slapd: Callable[[str], Slapd], tmp_path: Path
) -> None:
    """The target slapd stops during the initial cycle: the cycle fails with the failure
    recorded (no object escrowed for it); once the server is back the job completes."""
    target = make_slapd("target-down")
    tree = make_tree(slapd_source, target)
    seed(tree, 400)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    stopper = threading.Thread(target=stop_when_written, args=(target, tree, 100))
    stopper.start()
    execution = engine.run_cycle(job_id)
    stopper.join()
    assert execution.state is TaskExecutionResult.FAILED
    assert "Unreachable" in (execution.error.code or "") if execution.error else False
    assert engine.escrows(job_id) == []
    target.restart()
    engine.run_cycle(job_id)
    assert picture(tree.source, tree) == picture(tree.target, tree)
    assert engine.escrows(job_id) == []


def stop_when_written(target: Slapd, tree: Tree, written: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and count(target, tree.people) < written:
        SystemClock().sleep(0.01)
    target.pause()  # then stop it: connections drop, nothing answers on the port
    assert target.process is not None
    target.process.kill()
    target.process.wait(10)


def test_validate_credentials_says_which_side_refused(tree: Tree, tmp_path: Path) -> None:
    """Graph's validateCredentials: the saved secrets pass; a wrong target password given
    for the check is a CredentialsError naming the bind, and nothing is saved."""
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    engine.validate_credentials(job_id)
    with pytest.raises(CredentialsError, match="invalid credentials") as refused:
        engine.validate_credentials(job_id, {"Password": "wrong"})
    assert tree.target.password.reveal() not in str(refused.value)
    engine.validate_credentials(job_id)  # the saved secrets are unchanged
    with pytest.raises(ConfigurationError, match="SourcePassword"):  # never sent elsewhere
        engine.validate_credentials(job_id, {"SourceUrl": "ldap://127.0.0.1:1"})
    with pytest.raises(UnreachableError):
        engine.validate_credentials(
            job_id, {"SourceUrl": "ldap://127.0.0.1:1", "SourcePassword": "other"}
        )


def test_provision_on_demand_reads_one_entry_by_its_anchor(tree: Tree, tmp_path: Path) -> None:
    """Graph's provisionOnDemand: one source entry, found by its entryUUID, written now
    (user 0: the others' manager, so it has none itself)."""
    seed(tree, 3)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    connection = tree.source.connect()
    connection.search(tree.user_dn(0), "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    (anchor,) = connection.response[0]["attributes"]["entryUUID"]
    connection.unbind()
    records = engine.provision_on_demand(job_id, "User", anchor)
    assert [(r.action, r.status) for r in records] == [("Create", "success")]
    assert count(tree.target, tree.people) == 1
