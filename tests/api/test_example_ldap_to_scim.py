"""examples/ldap_to_scim runs as its README says: ``syncjob serve --config`` with the example's
file, ``create_job.py`` against it, and the users (with the schema's extra mapping) in SCIM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from engine.service.serve import TOKENS_ENV, load_config
from tests.api.daemon import start_daemon
from tests.api.ldap_scim import DaemonApi, listed, members, source_tree, wait_until
from tests.ldap.ldap_jobs import seed
from tests.ldap.slapd import ROOT_DN, Slapd
from tests.processes import tail, terminate
from tests.scim.server import ScimServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ldap_to_scim"
TOKEN = "example-token-Xk7pQ2rM9vL4"


def test_the_example_config_is_valid() -> None:
    config = load_config(EXAMPLE / "syncjob.toml", {}, {})
    assert (config.host, config.port, config.log_format) == ("127.0.0.1", 8080, "json")
    assert config.state == EXAMPLE / "syncjob.db" and config.tokens == ()


def test_the_example_provisions_ldap_users_into_scim(
    slapd_source: Slapd, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    tree = source_tree(slapd_source, "example")
    seed(tree, 20, groups=2, members=10)
    scim = make_scim_server("scim")
    env = {**os.environ, TOKENS_ENV: TOKEN}
    log = tmp_path / "serve.log"
    # the example's config, with a free port and a temporary state (the command line wins)
    args = ["--config", str(EXAMPLE / "syncjob.toml")]
    process, url = start_daemon(tmp_path / "state.db", log, env, args)
    api = DaemonApi(url, TOKEN)
    try:
        client_env = {
            **os.environ,
            "SYNCJOB_URL": url,
            "SYNCJOB_TOKEN": TOKEN,
            "LDAP_PASSWORD": tree.source.password.reveal(),
            "SCIM_TOKEN": scim.token.reveal(),
            "SYNC_INTERVAL": "PT2S",
        }
        flags = ["--ldap-url", tree.source.url, "--ldap-bind-dn", ROOT_DN,
                 "--ldap-base-dn", tree.base, "--scim-url", scim.url]  # fmt: skip
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "create_job.py"), *flags],
            env=client_env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        job = done.stdout.strip()
        assert job and "\n" not in job

        def arrived() -> bool:
            users = listed(scim, "Users")
            return len(users) == 20 and len(members(scim, users)) == 2

        wait_until(arrived, 30, "20 users and 2 groups in SCIM", every=0.3)
        users = {u["userName"]: u for u in listed(scim, "Users")}
        assert users["u00007"]["nickName"] == "Given7"  # schema.json's extra mapping
        assert {n: len(m) for n, m in members(scim, list(users.values())).items()} == {
            "g000": 10, "g001": 10
        }  # fmt: skip

        logs = subprocess.run(
            [sys.executable, "-m", "engine", "logs", job, "--top", "5"],
            env=client_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 5, logs.stderr
        assert "syncjob_job_has_run" in api.metrics()
    finally:
        api.close()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(15)
        finally:
            terminate(process)
    assert code == 0, tail(log)
