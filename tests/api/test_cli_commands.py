"""The commands that complete the README (issue 18, point 6, and ``jobs list``) against a real
``syncjob serve`` process: secrets merged (or replaced), applications, jobs across
applications, job settings, schemas fetched/put/edited, provisioning on demand."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
import requests
from click.testing import CliRunner

from connectors.memory import MemoryDirectory
from engine.jobs import SyncEngine
from engine.service.cli import demo_directory, main
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import free_port, start_daemon
from tests.api.test_cli_client import cli
from tests.ldap.conftest import slapd_source, slapd_target
from tests.ldap.ldap_jobs import count, make_tree, seed
from tests.ldap.slapd import Slapd
from tests.processes import terminate

__all__ = ["slapd_source", "slapd_target"]  # the session's slapd servers (tests/ldap)
TOKEN = "cli-client-token-Xk7pQ2rM9vL4"  # what tests.api.test_cli_client.cli sends
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = 5
LDAP_SECRETS = {
    "SourceUrl": "ldap://127.0.0.1:1",
    "SourceUserName": "cn=sync,dc=example,dc=org",
    "SourcePassword": "source-pw-never-shown",
    "SourceBaseDn": "dc=example,dc=org",
    "BaseAddress": "https://app.example/scim/v2",
    "SecretToken": "scim-token-never-shown",
}


class Daemon:
    def __init__(
        self, url: str, ran: str, ran_app: str, failed: str, failed_app: str, exported: int
    ) -> None:
        self.url, self.exported = url, exported
        self.ran, self.ran_app = ran, ran_app  # a memoryToMemory job that ran one cycle
        self.failed, self.failed_app = failed, failed_app  # an ldapToLdap job whose cycle failed


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``syncjob serve`` on a state file with two applications: one job that ran a cycle
    (paused since) and one whose cycle failed (an LDAP server that is not there)."""
    tmp = tmp_path_factory.mktemp("commands")
    state = tmp / "s.db"
    with SyncEngine(state) as engine:
        ran_app = engine.create_application("memory").id
        ran = engine.create_job(
            "memoryToMemory", demo_directory(USERS), MemoryDirectory(), application_id=ran_app
        ).id
        assert ran is not None
        engine.start(ran)
        counts = engine.run_cycle(ran)
        engine.pause(ran)
        failed_app = engine.create_application("ldap").id
        dead = f"ldap://127.0.0.1:{free_port()}"
        engine.set_secrets(
            failed_app,
            {"SourceUrl": dead, "SourceUserName": "cn=x", "SourcePassword": "pw-1",
             "SourceBaseDn": "dc=x", "Url": dead, "UserName": "cn=y", "Password": "pw-2",
             "BaseDn": "dc=y"},
        )  # fmt: skip
        failed = engine.create_job("ldapToLdap", application_id=failed_app, schedule="PT1H").id
        assert failed is not None
        engine.start(failed)
        engine.run_cycle(failed)
        engine.pause(failed)
    env = {**os.environ, TOKENS_ENV: TOKEN}
    process, url = start_daemon(state, tmp / "serve.log", env)
    try:
        yield Daemon(url, ran, ran_app, failed, failed_app, counts.count_exported)
    finally:
        terminate(process)


def _new_app(daemon: Daemon, name: str) -> str:
    made = cli(daemon.url, "apps", "create", "--name", name)
    assert made.exit_code == 0, made.output
    return made.output.strip()


def _job(daemon: Daemon, app: str, job: str) -> dict[str, object]:
    path = f"{daemon.url}/v1.0/servicePrincipals/{app}/synchronization/jobs/{job}"
    found: dict[str, object] = requests.get(path, headers=AUTH, timeout=10).json()
    return found


def _code(daemon: Daemon, app: str, job: str) -> str:
    status = _job(daemon, app, job)["status"]
    assert isinstance(status, dict)
    return str(status["code"])


def _secret_keys(daemon: Daemon, app: str) -> list[str]:
    path = f"{daemon.url}/v1.0/servicePrincipals/{app}/synchronization/secrets"
    return sorted(p["key"] for p in requests.get(path, headers=AUTH, timeout=10).json()["value"])


# ------------------------------------------------------------------------------- secrets
def test_secrets_set_merges_and_says_what_it_added_or_changed(daemon: Daemon) -> None:
    app = _new_app(daemon, "merge")
    first = cli(daemon.url, "secrets", "set", "A=one", "B=two", "--app", app)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["added: A, B"]
    second = cli(daemon.url, "secrets", "set", "B=two", "C=three", "A=uno", "--app", app)
    assert second.exit_code == 0, second.output
    assert second.output.splitlines() == ["added: C", "changed: A", "unchanged: B"]
    assert _secret_keys(daemon, app) == ["A", "B", "C"]
    listed = cli(daemon.url, "secrets", "list", "--app", app)
    assert listed.exit_code == 0 and listed.output.splitlines() == ["A", "B", "C"]
    for value in ("one", "two", "three", "uno"):
        assert value not in first.output + second.output

    replaced = cli(daemon.url, "secrets", "set", "--replace", "D=four", "--app", app)
    assert replaced.exit_code == 0, replaced.output
    assert "four" not in replaced.output
    assert _secret_keys(daemon, app) == ["D"]


def test_setting_one_secret_keeps_the_job_configured(daemon: Daemon) -> None:
    """The issue's report: `secrets set SourceDeltaMode=timestamp` replaced all the secrets
    and stopped the job. It merges now; --replace still replaces (and says so)."""
    app = _new_app(daemon, "one-secret")
    pairs = [f"{k}={v}" for k, v in LDAP_SECRETS.items()]
    assert cli(daemon.url, "secrets", "set", *pairs, "--app", app).exit_code == 0
    made = cli(daemon.url, "jobs", "create", "ldapToScim", "--app", app)
    assert made.exit_code == 0, made.output
    job = made.output.strip()
    assert _code(daemon, app, job) == "NotRun"

    one = cli(daemon.url, "secrets", "set", "SourceDeltaMode=timestamp", "--app", app)
    assert one.exit_code == 0, one.output
    assert one.output.strip() == "added: SourceDeltaMode"
    assert _code(daemon, app, job) == "NotRun"
    assert len(_secret_keys(daemon, app)) == len(LDAP_SECRETS) + 1

    replaced = cli(daemon.url, "secrets", "set", "--replace", "SourceDeltaMode=timestamp",
                   "--app", app)  # fmt: skip
    assert replaced.exit_code == 0
    assert _code(daemon, app, job) == "NotConfigured"


def test_secrets_set_reads_values_from_stdin_and_files(daemon: Daemon, tmp_path: Path) -> None:
    """Out of argv and the shell's history (issue #20, point 7): KEY=- and KEY=@file, one
    trailing line break dropped; KEY=@@x is the literal "@x"."""
    app = _new_app(daemon, "from-files")
    (tmp_path / "token").write_text("tok-from-file-1234\n")
    env = {"SYNCJOB_URL": daemon.url, "SYNCJOB_TOKEN": TOKEN}
    args = ["secrets", "set", "SecretToken=@" + str(tmp_path / "token"), "SourcePassword=-"]
    args += ["Note=@@at", "--app", app]
    first = CliRunner().invoke(main, args, env=env, input="pw-from-stdin-99\n")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["added: SecretToken, SourcePassword, Note"]
    same = ["SecretToken=tok-from-file-1234", "SourcePassword=pw-from-stdin-99", "Note=@@at"]
    again = cli(daemon.url, "secrets", "set", *same, "--app", app)
    assert again.output.splitlines() == ["unchanged: SecretToken, SourcePassword, Note"]
    missing = cli(daemon.url, "secrets", "set", f"A=@{tmp_path / 'none'}", "--app", app)
    assert missing.exit_code == 2 and "cannot read A's value from" in missing.output
    two = cli(daemon.url, "secrets", "set", "A=-", "B=-", "--app", app)
    assert two.exit_code == 2 and "only one key can read standard input" in two.output


def test_secrets_refusals(daemon: Daemon) -> None:
    bad = cli(daemon.url, "secrets", "set", "no-equals-sign-hush")
    assert bad.exit_code == 2
    assert "argument 1 is not KEY=VALUE" in bad.output
    assert "hush" not in bad.output
    app = _new_app(daemon, "refusals")
    masked = cli(daemon.url, "secrets", "set", "Never=*****", "--app", app)
    assert masked.exit_code == 1
    assert "'Never' has no stored value to keep" in masked.output
    switch = cli(daemon.url, "secrets", "set", "HardDeletesEnabled=perhaps", "--app", app)
    assert switch.exit_code == 1, switch.output
    assert _secret_keys(daemon, app) == []
    unknown = cli(daemon.url, "secrets", "set", "A=1", "--app", "no-such-app")
    assert unknown.exit_code == 1 and unknown.output.startswith("itemNotFound: ")


# --------------------------------------------------------------------------- apps, jobs
def test_apps_create_and_list(daemon: Daemon) -> None:
    app = _new_app(daemon, "listed app")
    listed = cli(daemon.url, "apps", "list")
    assert listed.exit_code == 0, listed.output
    assert f"{app}\tlisted app\t0 job(s)" in listed.output.splitlines()
    assert f"{daemon.ran_app}\tmemory\t1 job(s)" in listed.output.splitlines()


def test_jobs_list_shows_every_application_with_last_cycle_and_error(daemon: Daemon) -> None:
    listed = cli(daemon.url, "jobs", "list")
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[1]: line.split("\t") for line in listed.output.splitlines()}
    ran = lines[daemon.ran]
    assert ran[0] == daemon.ran_app and ran[2:4] == ["memoryToMemory", "Paused"]
    assert ran[5] == "Succeeded"
    n = daemon.exported
    assert n >= USERS and ran[6] == f"imported {n} exported {n} escrowed 0"
    assert len(ran) == 7  # no error
    failed = lines[daemon.failed]
    assert failed[0] == daemon.failed_app and failed[2:4] == ["ldapToLdap", "Paused"]
    assert failed[4] != "never run" and failed[5] == "Failed"
    code, _, message = failed[7].partition(": ")
    assert code and message and "\n" not in message
    assert "pw-1" not in listed.output and "pw-2" not in listed.output

    narrowed = cli(daemon.url, "jobs", "list", "--app", daemon.ran_app)
    assert [line.split("\t")[1] for line in narrowed.output.splitlines()] == [daemon.ran]

    as_json = cli(daemon.url, "jobs", "list", "--json")
    assert as_json.exit_code == 0, as_json.output
    found = {j["id"]: j for j in json.loads(as_json.output)}
    assert found[daemon.ran]["imported"] == n
    assert found[daemon.ran]["lastCycleResult"] == "Succeeded"
    assert found[daemon.failed]["error"]["code"] == code
    assert found[daemon.failed]["application"] == daemon.failed_app

    unknown = cli(daemon.url, "jobs", "list", "--app", "no-such-app")
    assert unknown.exit_code == 1 and unknown.output.startswith("itemNotFound: ")


def test_jobs_create_with_an_interval(daemon: Daemon) -> None:
    app = _new_app(daemon, "interval")
    made = cli(daemon.url, "jobs", "create", "memoryToMemory", "--interval", "PT20M",
               "--app", app)  # fmt: skip
    assert made.exit_code == 0, made.output
    schedule = _job(daemon, app, made.output.strip())["schedule"]
    assert isinstance(schedule, dict) and schedule["interval"] == "PT20M"
    bad = cli(daemon.url, "jobs", "create", "memoryToMemory", "--interval", "soon", "--app", app)
    assert bad.exit_code == 1, bad.output
    assert "interval" in bad.output.lower()


def test_jobs_settings_shows_sets_and_removes(daemon: Daemon) -> None:
    app = _new_app(daemon, "settings")
    job = cli(daemon.url, "jobs", "create", "memoryToMemory", "--app", app).output.strip()
    shown = cli(daemon.url, "jobs", "settings", job, "--app", app)
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == ["QuarantineTooManyDeletesThreshold=500"]

    changed = cli(daemon.url, "jobs", "settings", job, "PageSize=200",
                  "QuarantineTooManyDeletesThreshold=20", "--app", app)  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert changed.output.splitlines() == ["QuarantineTooManyDeletesThreshold=20", "PageSize=200"]
    stored = _job(daemon, app, job)["synchronizationJobSettings"]
    assert stored == [
        {"name": "QuarantineTooManyDeletesThreshold", "value": "20"},
        {"name": "PageSize", "value": "200"},
    ]
    removed = cli(daemon.url, "jobs", "settings", job, "PageSize=", "--app", app)
    assert removed.output.splitlines() == ["QuarantineTooManyDeletesThreshold=20"]
    typo = cli(daemon.url, "jobs", "settings", job, "PagSize=100", "--app", app)
    assert typo.exit_code == 1, typo.output
    assert "PagSize" in typo.output and "PageSize" in typo.output  # the known names listed

    bad_value = cli(daemon.url, "jobs", "settings", job, "PageSize=lots", "--app", app)
    assert bad_value.exit_code == 1, bad_value.output
    assert "PageSize" in bad_value.output
    assert len(_job(daemon, app, job)["synchronizationJobSettings"]) == 1  # type: ignore[arg-type]
    bad_pair = cli(daemon.url, "jobs", "settings", job, "PageSize", "--app", app)
    assert bad_pair.exit_code == 2 and "is not KEY=VALUE" in bad_pair.output
    unknown = cli(daemon.url, "jobs", "settings", "no-such-job", "--app", app)
    assert unknown.exit_code == 1 and unknown.output.startswith("itemNotFound: ")


def test_the_api_updates_only_a_jobs_settings(daemon: Daemon) -> None:
    path = f"{daemon.url}/v1.0/servicePrincipals/{daemon.ran_app}/synchronization/jobs/{daemon.ran}"
    refused = requests.patch(path, json={"templateId": "x"}, headers=AUTH, timeout=10)
    assert refused.status_code == 400
    assert "only synchronizationJobSettings" in refused.json()["error"]["message"]


# ------------------------------------------------------------------------------- schema
def test_schema_get_and_put(daemon: Daemon, tmp_path: Path) -> None:
    app = _new_app(daemon, "schema")
    job = cli(daemon.url, "jobs", "create", "memoryToMemory", "--app", app).output.strip()
    file = tmp_path / "schema.json"
    got = cli(daemon.url, "schema", "get", job, "--out", str(file), "--app", app)
    assert got.exit_code == 0, got.output
    body = json.loads(file.read_text())
    assert "synchronizationRules" in body and not any(k.startswith("@odata") for k in body)
    printed = cli(daemon.url, "schema", "get", job, "--app", app)
    assert json.loads(printed.output) == body

    body["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0]["defaultValue"] = (
        "someone"
    )
    file.write_text(json.dumps(body))
    put = cli(daemon.url, "schema", "put", job, str(file), "--app", app)
    assert put.exit_code == 0, put.output
    assert put.output.startswith(f"schema of {job} saved (version ")
    again = json.loads(cli(daemon.url, "schema", "get", job, "--app", app).output)
    assert (
        again["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0][
            "defaultValue"
        ]
        == "someone"
    )

    body["synchronizationRules"][0]["objectMappings"][0]["flowTypes"] = "Sometimes"
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(body))
    refused = cli(daemon.url, "schema", "put", job, str(invalid), "--app", app)
    assert refused.exit_code == 1
    assert str(invalid) in refused.output and "flowTypes" in refused.output
    assert json.loads(cli(daemon.url, "schema", "get", job, "--app", app).output) == again


def _editor(tmp_path: Path, code: str) -> str:
    """An $EDITOR: a Python script that edits the file it is given with ``code``."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import json, sys\npath = sys.argv[1]\ntext = open(path).read()\n"
        + code
        + "\nopen(path, 'w').write(text)\n"
    )
    return f"{sys.executable} {script}"


def test_schema_edit_puts_a_valid_edit_and_keeps_an_invalid_one(
    daemon: Daemon, tmp_path: Path
) -> None:
    app = _new_app(daemon, "edit")
    job = cli(daemon.url, "jobs", "create", "memoryToMemory", "--app", app).output.strip()
    env = {"SYNCJOB_URL": daemon.url, "SYNCJOB_TOKEN": TOKEN}

    def edit(code: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            main, ["schema", "edit", job, "--app", app],
            env={**env, "EDITOR": _editor(tmp_path, code), "VISUAL": ""},
        )  # fmt: skip
        return result.exit_code, result.output

    assert edit("") == (0, "no change\n")
    code, output = edit(
        "body = json.loads(text)\n"
        "body['synchronizationRules'][0]['objectMappings'][0]['name'] = 'Edited'\n"
        "text = json.dumps(body)"
    )
    assert code == 0, output
    assert "saved (version " in output
    schema = json.loads(cli(daemon.url, "schema", "get", job, "--app", app).output)
    assert schema["synchronizationRules"][0]["objectMappings"][0]["name"] == "Edited"

    code, output = edit("text = text.replace('Edited', 'Broken', 1)[:-20]")
    assert code == 1
    assert "not JSON" in output
    kept = Path(output.split("kept in ")[-1].strip())
    assert kept.exists() and "Broken" in kept.read_text()
    kept.unlink()
    schema = json.loads(cli(daemon.url, "schema", "get", job, "--app", app).output)
    assert schema["synchronizationRules"][0]["objectMappings"][0]["name"] == "Edited"


# ----------------------------------------------------------------------------- provision
def test_provision_one_user_between_two_slapd_servers(
    daemon: Daemon, slapd_source: Slapd, slapd_target: Slapd
) -> None:
    tree = make_tree(slapd_source, slapd_target)
    seed(tree, 3)  # users 1 and 2 have user 0 as manager
    app = _new_app(daemon, "provision")
    pairs = [f"{k}={v}" for k, v in tree.secrets().items()]
    assert cli(daemon.url, "secrets", "set", *pairs, "--app", app).exit_code == 0
    job = cli(daemon.url, "jobs", "create", "ldapToLdap", "--app", app).output.strip()
    anchor = _entry_uuid(slapd_source, tree.user_dn(0))

    dry = cli(daemon.url, "provision", job, anchor, "--dry-run", "--app", app)
    if dry.exit_code != 0:  # a daemon without dry runs refuses the flag: its error is shown
        assert dry.exit_code == 1 and "dryRun" in dry.output, dry.output
    assert count(slapd_target, tree.people) == 0  # a dry run writes nothing

    early = cli(
        daemon.url, "provision", job, _entry_uuid(slapd_source, tree.user_dn(1)), "--app", app
    )  # fmt: skip  (its manager, user 0, is not in the target yet)
    assert early.exit_code == 1, early.output
    assert early.output.startswith("Failure: ") and "ReferenceNotResolved: " in early.output

    done = cli(daemon.url, "provision", job, anchor, "--app", app)
    assert done.exit_code == 0, done.output
    first = done.output.splitlines()[0]
    assert first.startswith("Success: ") and anchor in first
    assert count(slapd_target, tree.people) == 2  # user 1, waiting on its manager, came along
    assert tree.source.password.reveal() not in done.output

    missing = cli(daemon.url, "provision", job, "no-such-anchor", "--app", app)
    assert missing.output.startswith(("Skipped: no provisioning record", "itemNotFound: "))
    report = cli(daemon.url, "provision", job, _entry_uuid(slapd_source, tree.user_dn(2)),
                 "--json", "--app", app)  # fmt: skip
    assert report.exit_code == 0 and json.loads(report.output)["result"]["result"] == "Success"
    assert count(slapd_target, tree.people) == 3
    no_rule = cli(daemon.url, "provision", job, anchor, "--type", "Printer", "--app", app)
    assert no_rule.exit_code == 1 and no_rule.output.startswith("NoRule: ")


def _entry_uuid(server: Slapd, dn: str) -> str:
    connection = server.connect()
    try:
        assert connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
        return str(connection.entries[0].entryUUID.value)
    finally:
        connection.unbind()


@pytest.mark.parametrize(
    "command",
    [
        ["apps", "create"],
        ["apps", "list"],
        ["secrets", "list"],
        ["jobs", "settings"],
        ["schema", "get"],
        ["schema", "put"],
        ["schema", "edit"],
        ["provision"],
    ],
)
def test_the_new_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="syncjob")
    assert result.exit_code == 0, result.output
    assert "Usage: syncjob " in result.output


def test_a_command_on_a_job_finds_its_application(daemon: Daemon) -> None:
    """Job ids are unique across applications: no --app needed, whichever holds the job."""
    for job in (daemon.ran, daemon.failed):
        shown = cli(daemon.url, "jobs", "show", job)
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["id"] == job
        assert cli(daemon.url, "jobs", "settings", job).exit_code == 0
    missing = cli(daemon.url, "jobs", "show", "no-such-job")
    assert missing.exit_code == 1
    assert missing.output.strip() == "itemNotFound: no job 'no-such-job' in any application"
