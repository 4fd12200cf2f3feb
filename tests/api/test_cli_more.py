"""``syncjob logs`` and ``syncjob validate`` against a real ``syncjob serve`` process, and
``syncjob run --once`` (no daemon) with an ldapToLdap job between the session's slapd servers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from connectors.memory import MemoryDirectory
from engine import SystemClock
from engine.jobs import SyncEngine
from engine.service.cli import demo_directory, main
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import free_port, start_daemon
from tests.api.test_cli_client import cli
from tests.ldap.conftest import slapd_source, slapd_target
from tests.ldap.ldap_jobs import Tree, count, make_tree, seed
from tests.ldap.slapd import Slapd
from tests.processes import terminate

__all__ = ["slapd_source", "slapd_target"]  # the session's slapd servers (tests/ldap)
TOKEN = "cli-client-token-Xk7pQ2rM9vL4"  # what tests.api.test_cli_client.cli sends
CLOCK = SystemClock()
USERS = 12


class Daemon:
    def __init__(self, url: str, job: str, app: str) -> None:
        self.url, self.job, self.app = url, job, app


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``syncjob serve`` on a state file holding a paused memoryToMemory job that has run one
    cycle (so it has provisioning records); stopped after the tests."""
    tmp = tmp_path_factory.mktemp("logs")
    state = tmp / "s.db"
    with SyncEngine(state) as engine:
        app = engine.create_application("logs").id
        job = engine.create_job(
            "memoryToMemory", demo_directory(USERS), MemoryDirectory(), application_id=app
        ).id
        assert job is not None
        engine.start(job)
        engine.run_cycle(job)
        engine.pause(job)
    env = {**os.environ, TOKENS_ENV: TOKEN}
    process, url = start_daemon(state, tmp / "serve.log", env)
    try:
        yield Daemon(url, job, app)
    finally:
        terminate(process)


def test_logs_lists_the_jobs_records_newest_first(daemon: Daemon) -> None:
    result = cli(daemon.url, "logs", daemon.job, "--top", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert all(len(line.split("\t")) >= 4 for line in lines)
    assert sorted(lines, reverse=True) == lines  # activityDateTime first, newest first

    every = cli(daemon.url, "logs", daemon.job, "--top", "1000", "--json")
    assert every.exit_code == 0, every.output
    records = json.loads(every.output)
    assert {r["jobId"] for r in records} == {daemon.job}
    assert len(records) >= USERS
    actions = {r["provisioningAction"] for r in records}
    assert "create" in actions

    created = cli(daemon.url, "logs", daemon.job, "--action", "create", "--top", "1000")
    assert created.exit_code == 0, created.output
    assert all("\tcreate\t" in line for line in created.output.splitlines())
    expected = sum(1 for r in records if r["provisioningAction"] == "create")
    assert len(created.output.splitlines()) == expected


def test_logs_with_no_match_says_so(daemon: Daemon) -> None:
    result = cli(daemon.url, "logs", daemon.job, "--status", "failure")
    assert result.exit_code == 0, result.output
    assert f"no provisioning records for job {daemon.job}" in result.output
    other = cli(daemon.url, "logs", "no-such-job")
    assert other.exit_code == 0
    assert "no provisioning records" in other.output


def test_logs_bad_filter_value_is_the_daemons_error(daemon: Daemon) -> None:
    result = cli(daemon.url, "logs", daemon.job, "--top", "0")
    assert result.exit_code == 2  # click refuses it before any request
    dead = cli(f"http://127.0.0.1:{free_port()}", "logs", daemon.job)
    assert dead.exit_code == 2
    assert "no syncjob daemon answers" in dead.output


def _records(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    result = cli(daemon.url, "logs", daemon.job, "--top", "1000", "--json", *args)
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.output)
    return found


def test_logs_name_the_people_and_find_them_by_name_or_id(daemon: Daemon) -> None:
    """Each line names both sides (display name, then identifier); --user finds a person by
    part of a name or by an identifier, without case, in the daemon's $filter (issue 18)."""
    everything = _records(daemon)
    created = next(
        r for r in everything
        if r["provisioningAction"] == "create" and r["sourceIdentity"]["id"] == "src-000003"
    )  # fmt: skip
    name = created["sourceIdentity"]["displayName"]
    assert name and created["targetIdentity"]["displayName"] == name
    assert {p["displayName"] for p in created["modifiedProperties"]} >= {"mail", "userName"}

    lines = cli(daemon.url, "logs", daemon.job, "--user", "src-000003").output.splitlines()
    assert lines and all(f"{name} (" in line for line in lines)
    create = next(line for line in lines if "\tcreate\t" in line)
    assert " -> " in create and "mail: " in create  # [mail: ...; userName: ...]

    surname = name.split()[-1]
    wanted = {
        r["id"] for r in everything
        if any(surname.lower() in (r[side].get("displayName") or "").lower()
               for side in ("sourceIdentity", "targetIdentity"))
    }  # fmt: skip
    found = _records(daemon, "--user", surname.upper())
    assert wanted and {r["id"] for r in found} == wanted
    mail = created["sourceIdentity"]["details"]["identifier"]  # the userName it is matched by
    assert created["id"] in {r["id"] for r in _records(daemon, "--user", mail)}
    assert _records(daemon, "--user", "nobody-by-that-name") == []


def test_logs_between_times(daemon: Daemon) -> None:
    everything = _records(daemon)
    assert len(_records(daemon, "--since", "1h")) == len(everything)  # the cycle just ran
    assert len(_records(daemon, "--since", "PT1H", "--until", "2999-01-01T00:00:00Z")) == len(
        everything
    )
    assert _records(daemon, "--until", "1h") == []
    assert _records(daemon, "--since", "2999-01-01") == []  # no zone: UTC
    newest = everything[0]["activityDateTime"]
    assert {r["id"] for r in _records(daemon, "--since", newest)} >= {everything[0]["id"]}
    bad = cli(daemon.url, "logs", daemon.job, "--since", "yesterday")
    assert bad.exit_code == 2 and "neither a date-time nor a duration" in bad.output


def test_logs_refuse_unknown_actions_and_statuses_listing_the_known(daemon: Daemon) -> None:
    action = cli(daemon.url, "logs", daemon.job, "--action", "Frobnicate")
    assert action.exit_code == 2
    for known in ("Create", "Update", "Delete", "Disable", "StagedDelete", "Other"):
        assert repr(known.lower()) in action.output  # click lists them as it compares them
    status = cli(daemon.url, "logs", daemon.job, "--status", "broken")
    assert status.exit_code == 2
    for known in ("success", "failure", "skipped", "warning"):
        assert known in status.output
    staged = cli(daemon.url, "logs", daemon.job, "--action", "stagedDELETE", "--status", "WARNING")
    assert staged.exit_code == 0 and "no provisioning records" in staged.output


def _ldap_job(daemon: Daemon, secrets: dict[str, str]) -> tuple[str, str]:
    """A new application with ``secrets`` and an ldapToLdap job; (app, job)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{daemon.url}/v1.0/servicePrincipals"
    app = requests.post(base, json={"displayName": "ldap"}, headers=auth, timeout=10).json()["id"]
    pairs = {"value": [{"key": k, "value": v} for k, v in secrets.items()]}
    put = requests.put(f"{base}/{app}/synchronization/secrets", json=pairs, headers=auth)
    assert put.status_code == 204, put.text
    made = cli(daemon.url, "jobs", "create", "ldapToLdap", "--app", app)
    assert made.exit_code == 0, made.output
    return app, made.output.strip()


def test_validate_ok_with_the_saved_credentials(
    daemon: Daemon, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    tree = make_tree(slapd_source, slapd_target)
    app, job = _ldap_job(daemon, tree.secrets())
    result = cli(daemon.url, "validate", job, "--app", app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK"


def test_discover_reads_a_directory_by_name_through_the_daemon(
    daemon: Daemon, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    tree = make_tree(slapd_source, slapd_target)
    app, job = _ldap_job(daemon, tree.secrets())
    result = cli(daemon.url, "discover", job, "LDAP Source", "--app", app)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    users = next(line for line in lines if line.startswith("User\t"))
    assert int(users.split("\t")[1].split()[0]) > 20  # inetOrgPerson's MUST and MAY
    assert lines[-1].startswith("version ")
    memory = cli(daemon.url, "discover", daemon.job, "Memory Source", "--app", daemon.app)
    assert memory.exit_code == 1 and memory.output.startswith("DiscoveryNotSupported: ")


def test_validate_prints_the_daemons_error_and_no_secret(
    daemon: Daemon, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    tree = make_tree(slapd_source, slapd_target)
    secrets = tree.secrets(Password="not-the-password-123")
    app, job = _ldap_job(daemon, secrets)
    result = cli(daemon.url, "validate", job, "--app", app)
    assert result.exit_code == 1, result.output
    code, _, message = result.output.strip().partition(": ")
    assert code and message
    assert "not-the-password-123" not in result.output
    assert tree.source.password.reveal() not in result.output

    unknown = cli(daemon.url, "validate", "no-such-job", "--app", app)
    assert unknown.exit_code == 1
    assert unknown.output.startswith("itemNotFound: ")


def test_run_once_between_two_slapd_servers(
    tmp_path: Path, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    tree = make_tree(slapd_source, slapd_target)
    seed(tree, USERS, groups=2)
    state = tmp_path / "run.db"
    with SyncEngine(state) as engine:
        app = engine.create_application("run").id
        engine.set_secrets(app, tree.secrets())
        job = engine.create_job("ldapToLdap", application_id=app).id
        assert job is not None
    began = CLOCK.monotonic()
    result = CliRunner().invoke(main, ["run", job, "--once", "--start", "--state", str(state)])
    assert result.exit_code == 0, result.output
    assert CLOCK.monotonic() - began < 30
    lines = result.output.splitlines()  # not a terminal: a bar line per checkpoint
    assert lines[0].startswith("User  [") and f"/{USERS:,}" in lines[0]
    assert any(line.startswith(f"User  [{'#' * 30}] {USERS:,}/{USERS:,} 100%") for line in lines)
    assert lines[-1].startswith(f"Succeeded: imported {USERS + 2}, exported {USERS + 2}")
    assert count(slapd_target, tree.people) == USERS

    again = CliRunner().invoke(main, ["run", job, "--once", "--state", str(state)])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[-1].startswith("Succeeded: imported 0, exported 0")


def ldap_job_in_a_state_file(
    tmp_path: Path, source: Slapd, target: Slapd, users: int
) -> tuple[Tree, Path, str]:
    """``users`` people in a fresh tree, and an ldapToLdap job (pages of 20) between the two
    servers in a new state file: (tree, state file, job id)."""
    tree = make_tree(source, target)
    seed(tree, users)
    state = tmp_path / "run.db"
    with SyncEngine(state) as engine:
        app = engine.create_application("run").id
        engine.set_secrets(app, tree.secrets())
        job = engine.create_job("ldapToLdap", application_id=app, settings={"PageSize": "20"}).id
        assert job is not None
    return tree, state, job


def start_run_once(state: Path, job: str, stderr: int) -> subprocess.Popen[bytes]:
    """A real ``syncjob run JOB --once --start`` process, its output on a pipe."""
    command = [sys.executable, "-m", "engine", "run", job, "--once", "--start"]
    return subprocess.Popen(
        [*command, "--state", str(state)], stdout=subprocess.PIPE, stderr=stderr
    )


def test_run_once_stops_at_a_checkpoint_on_ctrl_c_and_the_next_run_resumes(
    tmp_path: Path, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    """SIGINT (Ctrl-C) to a real ``syncjob run --once`` process: the cycle ends at its next
    checkpoint, exits 130 saying how far it got, and the next run finishes the rest, nothing
    doubled."""
    users = 400
    tree, state, job = ldap_job_in_a_state_file(tmp_path, slapd_source, slapd_target, users)
    process = start_run_once(state, job, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        assert first.startswith("User  ["), first
        process.send_signal(signal.SIGINT)
        rest = process.stdout.read().decode()
        assert process.wait(30) == 130, rest
    finally:
        terminate(process)
    said = next(line for line in rest.splitlines() if line.startswith("interrupted: "))
    assert re.match(r"interrupted: \d+ page\(s\) checkpointed, the last of User at \d+ of 400; "
                    r"imported \d+, exported \d+, escrowed 0$", said), said  # fmt: skip
    assert "the cycle stopped at a checkpoint; the next run resumes it" in rest
    assert 0 < count(slapd_target, tree.people) < users
    again = CliRunner().invoke(main, ["run", job, "--once", "--state", str(state)])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[-1].startswith("Succeeded:")
    assert count(slapd_target, tree.people) == users


def test_run_once_reports_a_job_that_cannot_run(tmp_path: Path) -> None:
    state = tmp_path / "run.db"
    with SyncEngine(state) as engine:
        job = engine.create_job("memoryToMemory").id  # no connectors outside this process
        assert job is not None
    not_started = CliRunner().invoke(main, ["run", job, "--once", "--state", str(state)])
    assert not_started.exit_code == 1
    assert "start it before running a cycle" in not_started.output

    result = CliRunner().invoke(main, ["run", job, "--once", "--start", "--state", str(state)])
    assert result.exit_code == 1
    assert "has no connectors" in result.output

    missing = CliRunner().invoke(main, ["run", "nope", "--once", "--state", str(state)])
    assert missing.exit_code == 1
    assert "nope" in missing.output


@pytest.mark.parametrize("command", [["logs"], ["validate"], ["run"]])
def test_new_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="syncjob")
    assert result.exit_code == 0, result.output
    assert "Usage: syncjob " in result.output
