"""Adversarial tests of the fixes after the first adversarial review (update_job, unchanged
schema PUTs, unbuildable jobs, shutdown during retries, masked secrets, logs)."""

from __future__ import annotations

import http.server
import json
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

from connectors.base import Page
from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine, SystemClock
from engine.errors import LeaseLost
from engine.logs import configure_logging
from engine.model import to_graph
from engine.service.api import create_app
from engine.store.base import JobRow
from engine.store.sqlite import SqliteStateStore
from tests.api.ldap_scim import (
    Start,
    converged,
    daemon,
    ldap_to_scim_secrets,
    scim_picture,
    source_tree,
    total,
    wait_until,
)
from tests.api.test_api import AUTH, TOKEN
from tests.ldap.conftest import make_slapd, slapd_source
from tests.ldap.ldap_jobs import seed
from tests.ldap.slapd import Slapd
from tests.scim.conftest import make_scim_server
from tests.scim.faults import FaultProxy
from tests.scim.server import ScimServer

__all__ = ["daemon", "make_scim_server", "make_slapd", "slapd_source"]  # fixtures
CLOCK = SystemClock()


def _with_display_name_function(engine: SyncEngine, job_id: str) -> dict[str, Any]:
    schema: dict[str, Any] = to_graph(engine.get_schema(job_id))
    users = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    users[:] = [m for m in users if m["targetAttributeName"] != "displayName"]
    users.append(
        {
            "targetAttributeName": "displayName",
            "source": {"type": "Function", "expression": 'Join("-", [userName], "new")'},
        }
    )
    return schema


class _PutDuringRead(MemoryDirectory):
    """A source that lets an operator's schema PUT land while the cycle reads its pages."""

    def __init__(self) -> None:
        super().__init__()
        self.during_read: list[Any] = []

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        pages = super().read(object_type, watermark, page_size)

        def wrapped() -> Iterator[Page]:
            for page in pages:
                while self.during_read:
                    self.during_read.pop(0)()
                yield page

        return wrapped()


def test_schema_put_during_a_cycle_still_forces_a_full_read(tmp_path: Path) -> None:
    """A mapping change PUT while a cycle reads (the API thread, in the daemon) resets the
    watermarks; the running cycle, still on the old mappings, then commits its page
    watermark and ends its read: the new mapping is never applied to the objects already
    synchronized (the next cycle reads only the delta).

    Was: after the cycle ends with the old mapping, the next cycle reads the empty delta;
    u1's displayName stays the old mapping's value forever (until a restart).
    Should: a schema saved while a cycle runs leaves the next cycle a full read (e.g. the
    cycle's checkpoints must not commit watermarks of a superseded schema)."""
    clock = ManualClock()
    source, target = _PutDuringRead(), MemoryDirectory()
    engine = SyncEngine(tmp_path / "s.db", clock, random=random.Random(3))
    try:
        job_id = engine.create_job("memoryToMemory", source, target).id or ""
        engine.start(job_id)
        source.put("User", "u1", {"userName": "ann", "displayName": "Ann"})
        new_schema = _with_display_name_function(engine, job_id)
        source.during_read.append(lambda: engine.update_schema(job_id, new_schema))
        try:
            engine.run_cycle(job_id)
        except LeaseLost:
            pass  # the PUT revoked the running cycle's lease (store.reset): by design
        engine.run_cycle(job_id)
        engine.run_cycle(job_id)
        users = list(target.list("User").values())
        assert 1 == len(users)
        assert "ann-new" == users[0].get("displayName")
    finally:
        engine.close()


class _EchoingScim(http.server.BaseHTTPRequestHandler):
    """A SCIM service that refuses every token and, as some do, quotes it in its error."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        token = self.headers.get("Authorization", "")
        body = json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "401",
                "detail": f"invalid credentials: {token}",
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing_scim() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoingScim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("json_logs", [False, True])
@pytest.mark.parametrize("in_url", [False, True])
def test_a_secret_quoted_by_a_failing_directory_stays_out_of_logs_and_status(
    json_logs: bool,
    in_url: bool,
    echoing_scim: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The cycle's failure message goes unmasked to the cycle_failed log line (console and
    JSON) and to the job's stored status (GET job, `syncjob jobs`). Two ways a secret gets in:
    a SCIM service that quotes the refused bearer token in its 401 detail (in_url=False), and
    a BaseAddress (itself a secret) carrying credentials, http://admin:password@host/scim
    (in_url=True; requests then sends them as Basic auth instead of the bearer token, and the
    address is in every SCIM error message). validateCredentials masks the same message
    (engine.service.api._errors.connector_error); logs and status do not.

    Was: the token / the password in the log line and in the stored status.
    Should: every saved secret value masked wherever a connector's message is shown."""
    before = structlog.get_config()
    token, password = "tok-SECRET-4711", "pw-SECRET-0815"
    try:
        configure_logging("INFO", json=json_logs, force=True)
        engine = SyncEngine(tmp_path / "s.db", ManualClock())
        try:
            engine.set_secrets(
                None,
                {
                    "SourceBaseAddress": f"http://admin:{password}@{echoing_scim}/scim"
                    if in_url
                    else f"http://{echoing_scim}/scim",
                    "SourceSecretToken": token,
                    "Url": "ldap://127.0.0.1:1",
                    "UserName": "cn=admin,dc=example,dc=org",
                    "Password": "ldap-pw",
                    "BaseDn": "dc=example,dc=org",
                },
            )
            job_id = engine.create_job("scimToLdap").id or ""
            engine.start(job_id)
            engine.run_cycle(job_id)
            status = to_graph(engine.get_job(job_id))["status"]
        finally:
            engine.close()
        err = capsys.readouterr().err
        assert "cycle_failed" in err
        shown = json.dumps(status)
        assert "401" in shown or "refused" in shown  # the failure is there, its secrets not
        for secret in (password,) if in_url else (token,):
            assert secret not in err, f"{secret} in the log"
            assert secret not in shown, f"{secret} in the job status"
    finally:
        structlog.configure(**before)


@pytest.mark.parametrize(("status", "users_before"), [(503, 75), (429, 150)])
def test_a_daemon_stopped_while_scim_answers_retry_after_resumes_without_loss_or_doubles(
    status: int,
    users_before: int,
    slapd_source: Slapd,
    make_scim_server: Callable[[str], ScimServer],
    daemon: Start,
) -> None:
    """ldapToScim through `syncjob serve`; once part of the initial sync is in SCIM, the
    target answers 503/429 with a long Retry-After; the daemon is SIGTERMed while it waits,
    must exit promptly, and once started again (faults gone) bring every user exactly once
    and the groups complete."""
    tree = source_tree(slapd_source, f"adv2-retry-stop-{status}")
    seed(tree, 300, groups=3, members=100)
    scim = make_scim_server("scim")
    proxy = FaultProxy(scim.url)
    try:
        process, api = daemon("serve-1")
        secrets = ldap_to_scim_secrets(tree, scim)
        secrets["BaseAddress"] = proxy.url
        app, job = api.create_job(secrets, "PT2S")
        wait_until(lambda: total(scim, "Users") >= users_before, 60, "sync under way", every=0.05)
        proxy.fail(status, times=10_000, retry_after="40")
        seen = proxy.seen
        wait_until(lambda: proxy.seen >= seen + 1, 30, "a 503 answered", every=0.05)
        CLOCK.sleep(1)  # the cycle is in its Retry-After wait now
        stopping = CLOCK.monotonic()
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(20)
        assert CLOCK.monotonic() - stopping < 15, "the shutdown waited out the Retry-After"
        proxy.clear()
        process, api = daemon("serve-2")
        wait_until(lambda: converged(tree, scim), 90, "the sync completed after the restart")
        names, groups = scim_picture(scim)
        assert len(names) == len(set(names)) == 300
        assert all(len(m) == 100 for m in groups.values()), {k: len(v) for k, v in groups.items()}
        job_status = api.job(app, job)["status"]
        assert job_status["code"] == "Active", job_status
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(20)
    finally:
        proxy.stop()


_BAD_TARGET = {
    "SourceUrl": "ldap://127.0.0.1:1",
    "SourceUserName": "cn=admin,dc=example,dc=org",
    "SourcePassword": "ldap-pw",
    "SourceBaseDn": "dc=example,dc=org",
    "BaseAddress": "ftp://admin:hunter2-SECRET@127.0.0.1:1/scim",  # no http(s): unbuildable
    "SecretToken": "tok",
}


@pytest.fixture
def unbuildable_api(tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    """An in-process API over an ldapToScim job started with a BaseAddress (a secret, here
    carrying a password) its SCIM connector cannot be built from."""
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    with TestClient(
        create_app(engine, [TOKEN]), headers=AUTH, raise_server_exceptions=False
    ) as client:
        v = "/v1.0"
        app = client.post(f"{v}/servicePrincipals", json={"displayName": "x"}).json()["id"]
        base = f"{v}/servicePrincipals/{app}/synchronization"
        job = client.post(f"{base}/jobs", json={"templateId": "ldapToScim"}).json()["id"]
        pairs = [{"key": k, "value": val} for k, val in _BAD_TARGET.items()]
        assert 204 == client.put(f"{base}/secrets", json={"value": pairs}).status_code
        assert 204 == client.post(f"{base}/jobs/{job}/start").status_code
        yield client, base, job
    engine.close()


def test_an_unbuildable_jobs_status_does_not_show_its_secrets(
    unbuildable_api: tuple[TestClient, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The unbuildable cycle (Execution._unbuildable in engine/jobs) fails with "cannot build
    the job's connectors: invalid SCIM base address 'ftp://admin:hunter2-SECRET@...'": that message,
    the secret BaseAddress verbatim, is the cycle_failed log line and the job's status
    (lastExecution.error and quarantine.error) that GET job returns.

    Was: GET job shows hunter2-SECRET. Should: saved secret values masked (*****)."""
    client, base, job = unbuildable_api
    engine: SyncEngine = client.app.state.engine  # type: ignore[attr-defined]
    engine.run_cycle(job)
    body = client.get(f"{base}/jobs/{job}").json()
    assert "Failed" == body["status"]["lastExecution"]["state"]
    assert "hunter2-SECRET" not in json.dumps(body)
    assert "hunter2-SECRET" not in capsys.readouterr().err


@pytest.mark.parametrize("sent", [False, True])
def test_validate_credentials_masks_a_secret_the_connector_cannot_be_built_from(
    sent: bool, unbuildable_api: tuple[TestClient, str, str]
) -> None:
    """validateCredentials promises "any sent or saved secret masked in the message" but
    masks only a ConnectorError; a connector that cannot be built is the engine's
    ConfigurationError (engine.jobs._connections.build), a 400 whose message quotes the
    BaseAddress.

    Was: 400 "cannot build the job's connectors: invalid SCIM base address
    'ftp://admin:hunter2-SECRET@...'". Should: the secret masked."""
    client, base, job = unbuildable_api
    body: dict[str, Any] = {"useSavedCredentials": not sent, "credentials": []}
    if sent:
        body["credentials"] = [{"key": k, "value": v} for k, v in _BAD_TARGET.items()]
    response = client.post(f"{base}/jobs/{job}/validateCredentials", json=body)
    assert 400 == response.status_code, response.text
    assert "hunter2-SECRET" not in response.text


def test_provision_on_demand_of_an_unbuildable_job_masks_its_secrets(
    unbuildable_api: tuple[TestClient, str, str],
) -> None:
    """provisionOnDemand builds the connectors too (Connections.for_row, engine/jobs): same
    ConfigurationError, same unmasked BaseAddress in its 400."""
    client, base, job = unbuildable_api
    body = {
        "parameters": [
            {
                "ruleId": "ldapToScim",
                "subjects": [{"objectId": "uid=x,dc=example,dc=org", "objectTypeName": "User"}],
            }
        ]
    }
    response = client.post(f"{base}/jobs/{job}/provisionOnDemand", json=body)
    assert response.status_code in (400, 409), response.text
    assert "hunter2-SECRET" not in response.text


class _InterleavingStore(SqliteStateStore):
    """Runs ``before_update`` (once) just before the next update_job: what another thread
    (the daemon's runner) may do between two of the API thread's store calls."""

    before_update: list[Callable[[], object]]

    def update_job(self, job_id: str, change: Callable[[JobRow], JobRow]) -> JobRow | None:
        while getattr(self, "before_update", None):
            self.before_update.pop(0)()
        return super().update_job(job_id, change)


def test_a_cycle_starting_between_the_schema_puts_reset_and_save_keeps_the_old_mapping(
    tmp_path: Path,
) -> None:
    """update_schema resets the watermarks (revoking the lease) and only then saves the new
    schema, in two store calls. A cycle the runner starts in between reads the job row with
    the OLD schema, gets a fresh lease, does the full read the reset asked for with the old
    mappings, and commits its watermarks; the new schema is saved after. The next cycles read
    deltas only: the new mapping is never applied to the objects already synchronized.

    Was: displayName stays "Ann" (old mapping) after any number of cycles.
    Should: "ann-new" (reset and save as one step, or the reset after the save, or the
    watermarks tied to the schema version they were read with)."""
    clock = ManualClock()
    store = _InterleavingStore(tmp_path / "s.db")
    source, target = MemoryDirectory(), MemoryDirectory()
    engine = SyncEngine(store, clock, random=random.Random(5))
    try:
        job_id = engine.create_job("memoryToMemory", source, target).id or ""
        engine.start(job_id)
        source.put("User", "u1", {"userName": "ann", "displayName": "Ann"})
        engine.run_cycle(job_id)
        assert "Ann" == next(iter(target.list("User").values())).get("displayName")
        new_schema = _with_display_name_function(engine, job_id)
        store.before_update = [lambda: engine.run_cycle(job_id)]
        engine.update_schema(job_id, new_schema)
        engine.run_cycle(job_id)
        engine.run_cycle(job_id)
        users = list(target.list("User").values())
        assert 1 == len(users)
        assert "ann-new" == users[0].get("displayName")
    finally:
        engine.close()


class _SecretsInterleavingStore(SqliteStateStore):
    """Runs ``after_get_secrets`` (once) right after the next get_secrets: another request
    saving secrets between the masked PUT's read and its write."""

    after_get_secrets: list[Callable[[], object]]

    def get_secrets(self, application_id: str) -> dict[str, str]:
        found = super().get_secrets(application_id)
        while getattr(self, "after_get_secrets", None):
            self.after_get_secrets.pop(0)()
        return found


def test_a_masked_secrets_put_does_not_undo_a_password_saved_meanwhile(tmp_path: Path) -> None:
    """PUT secrets with the mask for Password (keep it) and a new UserName reads the stored
    secrets, then saves them (engine.service.api._routes.put_secrets): two steps. Another PUT that
    changes the password in between is undone: the masked PUT writes back the password it read.

    Was: Password is "old-pw" again. Should: "new-pw" (the mask resolved in the same atomic
    step as the save). The other PUT runs on its own thread, as a second request does."""
    store = _SecretsInterleavingStore(tmp_path / "s.db")
    engine = SyncEngine(store, ManualClock())
    with TestClient(create_app(engine, [TOKEN]), headers=AUTH) as client:
        app = client.post("/v1.0/servicePrincipals", json={"displayName": "x"}).json()["id"]
        url = f"/v1.0/servicePrincipals/{app}/synchronization/secrets"

        def put(pairs: dict[str, str]) -> None:
            body = {"value": [{"key": k, "value": v} for k, v in pairs.items()]}
            assert 204 == client.put(url, json=body).status_code

        put({"Url": "ldap://old", "Password": "old-pw"})
        other = threading.Thread(
            target=engine.set_secrets, args=(app, {"Url": "ldap://old", "Password": "new-pw"})
        )

        def another_request() -> None:  # a second PUT, on its own thread, arrives now
            other.start()
            other.join(0.3)  # it waits for the masked PUT (or it is done: both orders are fine)

        store.after_get_secrets = [another_request]
        put({"Url": "ldap://old", "UserName": "cn=new", "Password": "*****"})  # (a new Url
        # would need the password sent with it: engine.secret_bindings)
        other.join(10)
    secrets = engine.store.get_secrets(app)
    engine.close()
    # one PUT after the other, in either order; never the password read before the other PUT
    assert secrets["Password"] == "new-pw"
    assert secrets.get("UserName") in {"cn=new", None}


def test_syncjob_run_once_beside_a_daemon_running_the_job_refuses_cleanly(
    slapd_source: Slapd,
    make_scim_server: Callable[[str], ScimServer],
    daemon: Start,
    tmp_path: Path,
) -> None:
    """`syncjob run --once` on the state file of a daemon whose runner is in the job's cycle
    (slowed by a SCIM target that takes its time): the daemon's hold on the state file refuses
    it, no second cycle runs and nothing is doubled; no "database is locked"."""
    tree = source_tree(slapd_source, "adv2-run-once")
    seed(tree, 80, groups=2, members=40)
    scim = make_scim_server("scim")
    proxy = FaultProxy(scim.url)
    try:
        process, api = daemon("serve")
        secrets = ldap_to_scim_secrets(tree, scim)
        secrets["BaseAddress"] = proxy.url
        proxy.delay(0.05, times=120)
        app, job = api.create_job(secrets, "PT2S")
        wait_until(lambda: total(scim, "Users") >= 10, 60, "the cycle under way", every=0.05)
        ran = subprocess.run(
            [sys.executable, "-m", "engine", "run", job, "--once"]
            + ["--state", str(tmp_path / "state.db")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = ran.stdout + ran.stderr
        assert "database is locked" not in output, output[-2000:]
        assert "Traceback" not in output, output[-2000:]
        # refused at its start by the daemon's hold on the state file (the job's lease would
        # refuse it next, "elsewhere"), naming the daemon
        assert ran.returncode != 0, output[-2000:]
        assert "syncjob serve" in output and "runs the jobs of" in output, output[-2000:]
        wait_until(lambda: converged(tree, scim), 90, "the daemon's sync complete")
        names, _ = scim_picture(scim)
        assert len(names) == len(set(names)) == 80
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(20)
    finally:
        proxy.stop()


class _JobReadInterleavingStore(SqliteStateStore):
    """Runs ``after_get_job`` (once) right after the next get_job."""

    after_get_job: list[Callable[[], object]]

    def get_job(self, job_id: str) -> JobRow | None:
        found = super().get_job(job_id)
        while getattr(self, "after_get_job", None):
            self.after_get_job.pop(0)()
        return found


def test_a_schema_put_that_reverts_a_concurrent_change_is_not_dropped(tmp_path: Path) -> None:
    """Two schema PUTs: A changes a mapping, B (a GET-then-PUT of the original, an undo)
    arrives while A is saved. update_schema decides "unchanged, nothing to do" from the row
    it read before A's save (outside the atomic update_job), answers 204 and writes nothing:
    the last PUT, B, is lost and A's mapping stays.

    Was: the schema is A's. Should: B's (the last PUT wins, as it did before the early
    return; compare against the row inside the atomic update)."""
    store = _JobReadInterleavingStore(tmp_path / "s.db")
    engine = SyncEngine(store, ManualClock())
    try:
        job_id = engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory()).id
        assert job_id is not None
        original = to_graph(engine.get_schema(job_id))
        changed = _with_display_name_function(engine, job_id)
        store.after_get_job = [lambda: engine.update_schema(job_id, changed)]  # A
        engine.update_schema(job_id, original)  # B, the later PUT
        now = to_graph(engine.get_schema(job_id))
        now.pop("version", None)
        original.pop("version", None)
        assert original == now
    finally:
        engine.close()
