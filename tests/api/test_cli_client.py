"""``syncjob jobs …`` and ``syncjob secrets set`` against a real ``syncjob serve`` process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner, Result

from engine import SystemClock
from engine.service.cli import main
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import free_port, start_daemon
from tests.processes import terminate

TOKEN = "cli-client-token-Xk7pQ2rM9vL4"
CLOCK = SystemClock()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``syncjob serve`` on a free port of 127.0.0.1; its URL. Stopped after the tests."""
    tmp = tmp_path_factory.mktemp("daemon")
    process, url = start_daemon(tmp / "s.db", tmp / "serve.log", {**os.environ, TOKENS_ENV: TOKEN})
    try:
        yield url
    finally:
        terminate(process)


def cli(url: str, *args: str, token: str | None = TOKEN) -> Result:
    env = {"SYNCJOB_URL": url, "SYNCJOB_TOKEN": token or ""}
    return CliRunner().invoke(main, list(args), env=env)


def test_job_lifecycle(daemon: str) -> None:
    made = cli(daemon, "jobs", "create", "memoryToMemory")
    assert made.exit_code == 0, made.output
    job = made.output.strip()
    assert job

    listed = cli(daemon, "jobs", "list")
    assert listed.exit_code == 0, listed.output
    assert f"{job}\tmemoryToMemory\t" in listed.output

    shown = cli(daemon, "jobs", "show", job)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["id"] == job
    assert body["templateId"] == "memoryToMemory"
    assert "schema" not in body

    started = cli(daemon, "jobs", "start", job)
    assert started.exit_code == 0, started.output
    assert f"job {job} started" in started.output
    paused = cli(daemon, "jobs", "pause", job)
    assert paused.exit_code == 0, paused.output
    assert json.loads(cli(daemon, "jobs", "show", job).output)["status"]["code"] == "Paused"

    restarted = cli(daemon, "jobs", "restart", job, "--scope", "Watermark")
    assert restarted.exit_code == 0, restarted.output

    deleted = cli(daemon, "jobs", "delete", job)
    assert deleted.exit_code == 0, deleted.output
    assert job not in cli(daemon, "jobs", "list").output


def test_secrets_set_never_echoes_values(daemon: str) -> None:
    result = cli(daemon, "secrets", "set", "BaseAddress=https://x.example", "SecretToken=hush-1")
    assert result.exit_code == 0, result.output
    assert "BaseAddress" in result.output
    assert "hush-1" not in result.output
    apps = requests.get(
        f"{daemon}/v1.0/servicePrincipals", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["value"]
    kept = requests.get(
        f"{daemon}/v1.0/servicePrincipals/{apps[0]['id']}/synchronization/secrets",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()["value"]
    assert sorted(k["key"] for k in kept) == ["BaseAddress", "SecretToken"]


def test_unknown_job_shows_the_daemons_error(daemon: str) -> None:
    result = cli(daemon, "jobs", "show", "no-such-job")
    assert result.exit_code == 1
    assert result.output.startswith("itemNotFound: ")
    assert "no-such-job" in result.output


def test_bad_token_is_a_daemon_error_and_not_printed(daemon: str) -> None:
    result = cli(daemon, "jobs", "list", token="wrong-token-value")
    assert result.exit_code == 1
    assert ": the bearer token is not valid" in result.output
    assert "wrong-token-value" not in result.output


def test_dead_url_exits_2() -> None:
    result = cli(f"http://127.0.0.1:{free_port()}", "jobs", "list")
    assert result.exit_code == 2
    assert "no syncjob daemon answers at http://127.0.0.1:" in result.output
    assert TOKEN not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["jobs"],
        ["jobs", "list"],
        ["jobs", "show"],
        ["jobs", "create"],
        ["jobs", "start"],
        ["jobs", "pause"],
        ["jobs", "restart"],
        ["jobs", "delete"],
        ["secrets"],
        ["secrets", "set"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="syncjob")
    assert result.exit_code == 0, result.output
    assert "Usage: syncjob " in result.output
