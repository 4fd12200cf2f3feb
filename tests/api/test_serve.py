"""``syncjob serve`` as a real process: the API over HTTP, the state file's mode, bearer tokens
(configured, or generated once and kept as a digest), and a clean exit on SIGTERM."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from engine import ConfigurationError, SystemClock
from engine.service.cli import main
from engine.service.serve import DIGEST_SUFFIX, TOKENS_ENV, load_config, plain_http_warning
from tests.api.daemon import start_daemon
from tests.processes import tail, terminate

TOKEN = "serve-test-token-Xk7pQ2rM9vL4"
CLOCK = SystemClock()


class Server:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    """Start ``syncjob serve`` on a free port with the given token environment; every
    process started is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def run(tokens: str | None, *, name: str = "serve") -> Server:
        env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV}
        if tokens is not None:
            env[TOKENS_ENV] = tokens
        log = tmp_path / f"{name}-{len(started)}.log"
        process, url = start_daemon(tmp_path / "s.db", log, env)
        started.append(process)
        return Server(process, url, log)

    yield run
    for process in started:
        terminate(process)


def sigterm(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("serve did not exit within 10 s of SIGTERM")


def test_serve_with_configured_token(start: object, tmp_path: Path) -> None:
    server = start(TOKEN)  # type: ignore[operator]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    made = requests.post(
        f"{server.url}/beta/servicePrincipals", json={"displayName": "HR"}, headers=auth
    )
    assert made.status_code == 201, made.text
    app = made.json()["id"]
    jobs = f"{server.url}/beta/servicePrincipals/{app}/synchronization/jobs"
    job = requests.post(jobs, json={"templateId": "memoryToMemory"}, headers=auth)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    got = requests.get(f"{jobs}/{job_id}", headers=auth)
    assert got.status_code == 200
    assert got.json()["id"] == job_id
    assert [j["id"] for j in requests.get(jobs, headers=auth).json()["value"]] == [job_id]

    assert requests.get(f"{server.url}/beta/servicePrincipals").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.get(f"{server.url}/beta/servicePrincipals", headers=wrong).status_code == 401

    state = tmp_path / "s.db"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert not (tmp_path / ("s.db" + DIGEST_SUFFIX)).exists()  # a token was configured
    assert sigterm(server) == 0, tail(server.log)


def test_generated_token_is_shown_once_and_kept_as_digest(start: object, tmp_path: Path) -> None:
    first = start(None)  # type: ignore[operator]
    found = re.findall(r"export SYNCJOB_TOKEN=(\S+)", first.log.read_text())
    count = len(found)
    assert count == 1, "the generated token is printed exactly once"
    token = found[0]
    # the token goes into a session's headers only: a failing assertion shows no token
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {token}"
    assert client.get(f"{first.url}/v1.0/servicePrincipals").status_code == 200
    assert requests.get(f"{first.url}/v1.0/servicePrincipals").status_code == 401

    kept = tmp_path / ("s.db" + DIGEST_SUFFIX)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    content = kept.read_text()
    matches = content.split() == [hashlib.sha256(token.encode()).hexdigest()]
    leaked = token in content
    del token
    assert matches, "the file holds the token's sha256 digest, and only it"
    assert not leaked
    assert sigterm(first) == 0

    second = start(None)  # type: ignore[operator]
    assert "SYNCJOB_TOKEN=" not in second.log.read_text()  # shown on the first start only
    assert client.get(f"{second.url}/v1.0/servicePrincipals").status_code == 200
    assert kept.read_text() == content
    client.close()
    assert sigterm(second) == 0


# ------------------------------------------------------------------- settings, in-process
@pytest.mark.parametrize(
    ("host", "public_url", "warned"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("192.0.2.7", "http://sync.example", True),
        ("0.0.0.0", "https://sync.example", False),
    ],
)
def test_plain_http_beyond_loopback_is_warned_about(
    host: str, public_url: str | None, warned: bool
) -> None:
    """Issue #20, point 7: tokens would cross the network in clear."""
    config = load_config(None, {"host": host, "public_url": public_url}, {})
    warning = plain_http_warning(config)
    assert (warning is not None) == warned
    assert warning is None or "TLS terminator" in warning


@pytest.mark.parametrize("weak", ["change-me", "serve-test-token", "Ab1-" * 10, "0f" * 20])
def test_a_weak_token_is_refused_unless_allowed(weak: str) -> None:
    """Under 128 bits (issue #20, point 7); the refusal names the token by position only."""
    strong = secrets.token_urlsafe(32)
    with pytest.raises(ConfigurationError, match="weak: about") as refused:
        load_config(None, {}, {TOKENS_ENV: f"{strong},{weak}"})
    assert "token 2 of 2" in str(refused.value) and weak not in str(refused.value)
    allowed = load_config(None, {"allow_weak_tokens": True}, {TOKENS_ENV: weak})
    assert allowed.tokens == (weak,)
    for good in (strong, secrets.token_hex(16), secrets.token_urlsafe(16)):
        assert load_config(None, {}, {TOKENS_ENV: good}).tokens == (good,)


def test_config_file_under_command_line_with_env_tokens(tmp_path: Path) -> None:
    config = tmp_path / "syncjob.toml"
    config.write_text(
        'host = "0.0.0.0"\nport = 9000\nstate = "data/x.db"\ntokens = ["a"]\n'
        'workers = 4\nlog_format = "json"\nallow_weak_tokens = true\n'
    )
    loaded = load_config(config, {"port": 9100, "host": None}, {TOKENS_ENV: " b, ,a,c "})
    assert loaded.host == "0.0.0.0"
    assert loaded.port == 9100  # the command line wins
    assert loaded.state == tmp_path / "data" / "x.db"  # relative to the config file
    assert loaded.tokens == ("a", "b", "c")
    assert (loaded.workers, loaded.log_format) == (4, "json")
    defaults = load_config(None, {}, {})
    assert not defaults.allow_weak_tokens
    assert (defaults.host, defaults.port, defaults.state) == ("127.0.0.1", 8080, Path("syncjob.db"))
    assert defaults.tokens == ()


@pytest.mark.parametrize(
    "text",
    [
        "port = 0",
        'port = "80"',
        "workers = 0",
        "tokens = [1]",
        'tokens = "a"',
        'log_format = "xml"',
        'allow_weak_tokens = "yes"',
        "colour = 1",
        "port = ",
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    config = tmp_path / "syncjob.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigurationError):
        load_config(config, {}, {})


def test_cli_reports_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "syncjob.toml"
    config.write_text("workers = 0\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "workers must be at least 1" in result.output
