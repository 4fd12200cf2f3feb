"""A throwaway SCIM 2.0 server for tests: ``ScimServer(workdir).start()`` ... ``.stop()``.

It is the real ``scim2-server`` (its ASGI app over its in-memory storage, Users with the
enterprise extension and Groups, bearer-token authentication) under uvicorn, in a separate
process listening on ``http://127.0.0.1:<free port>/v2`` with HTTP/1.1 keep-alive: a client
meets real sockets, real status codes and the server's own filter and PATCH semantics.

Every request the server answers is appended as a JSON line to ``requests.jsonl`` in the
instance's directory (method, path, query, body, status; never headers), so a test can assert
on what a connector sent: :meth:`ScimServer.requests`, :meth:`ScimServer.clear_requests`.

The bearer token is random per instance, handed to the process on stdin (never on a command
line or in the environment) and shown nowhere: read it with ``token.reveal()``. The process
dies with the test process (PR_SET_PDEATHSIG), so a killed test run leaves no server behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import pytest
import requests

from engine import SystemClock
from tests.ldap.slapd import Secret
from tests.processes import die_with_parent, tail, terminate

_clock = SystemClock()
ROOT = Path(__file__).resolve().parents[2]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def missing_components() -> list[str]:
    """The Python packages this interpreter lacks to run the server (empty when none)."""
    missing = []
    for module, package in (("scim2_server", "scim2-server"), ("uvicorn", "uvicorn")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    return missing


def require_scim_server() -> None:
    """Skip the calling test when scim2-server is missing; with ``CI=true`` fail it instead."""
    missing = missing_components()
    if not missing:
        return
    reason = (
        f"the SCIM test server is not installed (missing: {', '.join(missing)}); "
        "pip install -e '.[dev]' installs it"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@attrs.frozen
class RecordedRequest:
    """One request as the server saw it; ``query`` is the raw (percent-encoded) query string."""

    method: str
    path: str
    query: str
    body: Any
    status: int


class ScimServerError(RuntimeError):
    """The server process could not be started (its output is in the message)."""


class ScimServer:
    """One scim2-server process; ``directory`` is created and removed again by ``stop``."""

    def __init__(self, directory: Path, name: str = "scim") -> None:
        self.name = name
        self.directory = directory
        self.token = Secret(secrets.token_urlsafe(24))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"ScimServer({self.name!r}, {self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        """The base address clients use (what a job's ``BaseAddress`` secret holds)."""
        return f"http://127.0.0.1:{self.port}/v2"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def request_log(self) -> Path:
        return self.directory / "requests.jsonl"

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 20.0) -> ScimServer:
        """Start the process on a socket bound here and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.request_log.touch()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "tests.scim.app",
                     "--fd", str(listener.fileno()), "--log", str(self.request_log)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    pass_fds=(listener.fileno(),),
                    start_new_session=True,  # a Ctrl-C of the test run does not reach it first
                    preexec_fn=die_with_parent,  # noqa: PLW1509 (servers start from one thread)
                )  # fmt: skip
        finally:
            listener.close()  # the child holds its own copy
        self.pid = self.process.pid
        assert self.process.stdin is not None
        self.process.stdin.write(self.token.reveal().encode() + b"\n")
        self.process.stdin.close()
        if not self._wait_ready(timeout):
            self._terminate()
            raise ScimServerError(f"{self.name} did not start; its output:\n{self._tail()}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``; then remove the instance's directory."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._terminate(timeout)
        shutil.rmtree(self.directory, ignore_errors=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> ScimServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin access
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        *,
        authorized: bool = True,
    ) -> requests.Response:
        """One request as an administrator's tool would make it (``path`` below ``url``),
        with the token unless ``authorized`` is False. Raises nothing for error statuses."""
        if self._session is None:
            self._session = requests.Session()
        headers = {"Authorization": f"Bearer {self.token.reveal()}"} if authorized else {}
        if body is not None:
            headers["Content-Type"] = "application/scim+json"
        return self._session.request(
            method,
            self.url + path,
            data=None if body is None else json.dumps(body),
            params=params,
            headers=headers,
            timeout=30,
        )

    def create(self, resource_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``/Users`` or ``/Groups`` (schemas filled in when absent); the created resource."""
        schemas = [GROUP_SCHEMA] if resource_type == "Groups" else [USER_SCHEMA]
        if resource_type == "Users" and any(k.startswith(ENTERPRISE_SCHEMA) for k in body):
            schemas.append(ENTERPRISE_SCHEMA)
        response = self.request("POST", f"/{resource_type}", {"schemas": schemas, **body})
        if response.status_code != 201:
            raise AssertionError(f"POST /{resource_type}: {response.status_code} {response.text}")
        created: dict[str, Any] = response.json()
        return created

    # ------------------------------------------------------------------ recorded requests
    def requests(self) -> list[RecordedRequest]:
        """Every request answered since the start or the last :meth:`clear_requests`."""
        text = self.request_log.read_text(encoding="utf-8")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # a line still being written by a request in flight: not answered yet
        return [RecordedRequest(**json.loads(line)) for line in lines if line.strip()]

    def clear_requests(self) -> None:
        self.request_log.write_text("")

    # ------------------------------------------------------------------ internals
    def _wait_ready(self, timeout: float) -> bool:
        """Until an authorized GET answers 200 (True), or the process exits or times out."""
        assert self.process is not None
        deadline = _clock.monotonic() + timeout
        while _clock.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if self.request("GET", "/ServiceProviderConfig").status_code == 200:
                    self.clear_requests()
                    return True
            except requests.RequestException:
                pass
            _clock.sleep(0.02)
        return False

    def _terminate(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        terminate(process, timeout)

    def _tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)
