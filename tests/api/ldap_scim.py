"""An ldapToScim job run by ``syncjob serve``, driven only through the HTTP API, for the
daemon's end-to-end test and ``bench/bench_daemon_lag.py``: what a deployment does, so that the
test and the benchmark measure the daemon, not an in-process engine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ldap3
import pytest
import requests

from engine import SystemClock
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import start_daemon
from tests.ldap.ldap_jobs import PERSON, Tree, add_containers, entries, modify, person
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd
from tests.processes import terminate
from tests.scim.server import ScimServer

CLOCK = SystemClock()


def source_tree(source: Slapd, name: str) -> Tree:
    """A fresh base with ou=people and ou=groups on the source only (the target is SCIM)."""
    tree = Tree(source, source, f"ou={name},{BASE_DN}")
    add_containers(source, tree)
    return tree


def ldap_picture(tree: Tree) -> tuple[set[str], dict[str, set[str]]]:
    """What SCIM should hold: the users' uids, and each group's cn -> its members' uids
    (members that are no user any more left out: the test slapd has no refint overlay)."""
    people = entries(tree.source, tree.people, "(objectClass=inetOrgPerson)", ["uid"])
    uids = {values["uid"][0] for values in people.values()}
    groups = entries(tree.source, tree.groups, "(objectClass=groupOfNames)", ["cn", "member"])
    picture = {
        values["cn"][0]: {dn.split(",")[0][4:] for dn in values.get("member", [])} & uids
        for values in groups.values()
    }
    return uids, picture


def ldap_to_scim_secrets(tree: Tree, scim: ScimServer, **extra: str) -> dict[str, str]:
    """The application's secrets: the tree's base on the source slapd (accesslog deltas, the
    default), the SCIM server as the target."""
    return {
        "SourceUrl": tree.source.url,
        "SourceUserName": ROOT_DN,
        "SourcePassword": tree.source.password.reveal(),
        "SourceBaseDn": tree.base,
        "SourceDeltaMode": "accesslog",
        "BaseAddress": scim.url,
        "SecretToken": scim.token.reveal(),
        **extra,
    }


class DaemonApi:
    """A client of one daemon (the token only in the session's headers, so no assertion message
    shows it); every call asserts the status the API documents."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, path: str, expect: int, body: Any = None) -> Any:
        response = self.session.request(method, f"{self.url}/v1.0{path}", json=body, timeout=30)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def create_job(
        self, secrets: Mapping[str, str], interval: str, settings: Mapping[str, str] | None = None
    ) -> tuple[str, str]:
        """A servicePrincipal with an ldapToScim job on ``interval`` (ISO-8601), its secrets
        set and the job started: (application id, job id)."""
        app = self.call("POST", "/servicePrincipals", 201, {"displayName": "ldap-to-scim"})["id"]
        body: dict[str, Any] = {"templateId": "ldapToScim", "schedule": {"interval": interval}}
        if settings:
            body["synchronizationJobSettings"] = [
                {"name": k, "value": v} for k, v in settings.items()
            ]
        job = self.call("POST", f"/servicePrincipals/{app}/synchronization/jobs", 201, body)["id"]
        pairs = [{"key": k, "value": v} for k, v in secrets.items()]
        self.call("PUT", f"/servicePrincipals/{app}/synchronization/secrets", 204, {"value": pairs})
        self.call("POST", f"/servicePrincipals/{app}/synchronization/jobs/{job}/start", 204)
        return app, job

    def job(self, app: str, job: str) -> dict[str, Any]:
        found: dict[str, Any] = self.call(
            "GET", f"/servicePrincipals/{app}/synchronization/jobs/{job}", 200
        )
        return found

    def metrics(self) -> str:
        response = self.session.get(f"{self.url}/metrics", timeout=30)
        assert response.status_code == 200, response.text
        return response.text


def listed(scim: ScimServer, kind: str) -> list[dict[str, Any]]:
    """Every resource of ``kind`` (``Users``, ``Groups``), duplicates kept."""
    found: list[dict[str, Any]] = []
    while True:
        params = {"startIndex": len(found) + 1, "count": 1000}
        page = scim.request("GET", f"/{kind}", params=params).json()
        found += page.get("Resources", [])
        if not page.get("Resources") or len(found) >= page["totalResults"]:
            return found


def total(scim: ScimServer, kind: str) -> int:
    """How many ``kind`` the server holds: one small request, cheap enough to poll."""
    page = scim.request("GET", f"/{kind}", params={"count": 1}).json()
    return int(page["totalResults"])


def members(scim: ScimServer, users: list[dict[str, Any]]) -> dict[str, set[str]]:
    """displayName -> its members' userNames (an id no user has stays as the id)."""
    names = {u["id"]: u["userName"] for u in users}
    return {g["displayName"]: {names.get(m["value"], m["value"]) for m in g.get("members") or ()}
            for g in listed(scim, "Groups")}  # fmt: skip


def wait_until(check: Callable[[], bool], seconds: float, what: str, every: float = 0.2) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails with ``what`` at the deadline."""
    started = CLOCK.monotonic()
    while not check():
        assert CLOCK.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        CLOCK.sleep(every)
    return CLOCK.monotonic() - started


TOKEN = "daemon-e2e-token-Xk7pQ2rM9vL4"  # what the daemon fixture's processes accept
Start = Callable[[str], tuple[subprocess.Popen[bytes], DaemonApi]]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Start]:
    """Start ``syncjob serve`` on ``tmp_path/state.db`` (again, after a kill: same state),
    its log in ``tmp_path/<name>.log``; every process and client started is stopped after."""
    started: list[tuple[subprocess.Popen[bytes], DaemonApi]] = []
    env = {**os.environ, TOKENS_ENV: TOKEN}

    def start(name: str) -> tuple[subprocess.Popen[bytes], DaemonApi]:
        process, url = start_daemon(tmp_path / "state.db", tmp_path / f"{name}.log", env)
        started.append((process, DaemonApi(url, TOKEN)))
        return started[-1]

    yield start
    for process, api in started:
        api.close()
        terminate(process)


def scim_picture(scim: ScimServer) -> tuple[list[str], dict[str, set[str]]]:
    """Every userName the server holds (duplicates kept) and each group's members."""
    users = listed(scim, "Users")
    return [u["userName"] for u in users], members(scim, users)


def converged(tree: Tree, scim: ScimServer) -> bool:
    """SCIM holds exactly the LDAP users (each once) and groups."""
    names, groups = scim_picture(scim)
    return (set(names), groups) == ldap_picture(tree) and len(names) == len(set(names))


def add_user(tree: Tree, n: int, group: int | None = None) -> None:
    connection = tree.source.connect()
    try:
        connection.add(tree.user_dn(n), PERSON, person(tree, n))
    finally:
        connection.unbind()
    if group is not None:
        modify(
            tree.source, {tree.group_dn(group): {"member": [(ldap3.MODIFY_ADD, [tree.user_dn(n)])]}}
        )


def delete_user(tree: Tree, n: int) -> None:
    connection = tree.source.connect()
    try:
        connection.delete(tree.user_dn(n))
    finally:
        connection.unbind()


def title_of(scim: ScimServer, user_name: str) -> str | None:
    found = scim.request("GET", "/Users", params={"filter": f'userName eq "{user_name}"'}).json()
    resources = found.get("Resources") or [{}]
    title: str | None = resources[0].get("title")
    return title
