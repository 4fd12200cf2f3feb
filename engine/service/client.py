"""A small HTTP client of a running ``syncjob serve``, for the ``syncjob jobs``/``secrets``
commands. The bearer token goes into the session's headers only: no message shows it."""

from __future__ import annotations

from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "SYNCJOB_URL"
TOKEN_ENV = "SYNCJOB_TOKEN"
APP_ENV = "SYNCJOB_APP"


class DaemonError(Exception):
    """The daemon refused the request: Graph's ``error.code`` and ``error.message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Unreachable(Exception):
    """No daemon answered at the URL."""


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        version: str = "v1.0",
    ) -> Any:
        """The JSON the daemon answers (None for an empty answer)."""
        try:
            response = self.session.request(
                method,
                f"{self.url}/{version}{path}",
                json=body,
                params=params,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            kind = type(exc).__name__
            raise Unreachable(f"no syncjob daemon answers at {self.url} ({kind})") from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = f"HTTP {response.status_code}", response.text[:200].strip()
            raise DaemonError(code, message)
        return response.json() if response.content else None

    def application(self, app: str | None) -> str:
        """``app``, else the daemon's first application, created if there is none."""
        if app:
            return app
        found = self.request("GET", "/servicePrincipals")["value"]
        if found:
            return str(found[0]["id"])
        return str(self.request("POST", "/servicePrincipals", {"displayName": "syncjob"})["id"])

    def jobs_path(self, app: str | None) -> str:
        return f"/servicePrincipals/{self.application(app)}/synchronization/jobs"

    def job_path(self, app: str | None, job: str) -> str:
        """JOB's path: in ``app``, else in the application that holds it (job ids are unique
        across applications, so a command on a job needs no --app)."""
        if app:
            return f"{self.jobs_path(app)}/{job}"
        for found in self.request("GET", "/servicePrincipals")["value"]:
            jobs = f"/servicePrincipals/{found['id']}/synchronization/jobs"
            if any(j.get("id") == job for j in self.request("GET", jobs)["value"]):
                return f"{jobs}/{job}"
        raise DaemonError("itemNotFound", f"no job {job!r} in any application")
