"""Change-to-target lag through ``syncjob serve``: an LDAP write until the SCIM server has it.

    python bench/bench_daemon_lag.py [--changes 100] [--interval PT1S] [--users 200]

Prints figures; asserts nothing (BENCHMARKS.md keeps the latest). The bench starts a real
slapd (users loaded with slapadd) and a real scim2-server on 127.0.0.1, and ``syncjob serve``
as a subprocess; it creates an ldapToScim job through the HTTP API with the given schedule
interval (accesslog deltas), sets its secrets and starts it, as a deployment would. After the
initial sync it modifies ``--changes`` users' ``title`` in LDAP, one write at a time, each a
unique value, spaced by a random 0..interval so they fall across cycles. A change's lag runs
from the return of its LDAP modify to the moment the SCIM server logged the PATCH carrying its
value (the server appends each answered request to its request log, read here every 5 ms: no
extra request on the server, unlike polling GET /Users/{id}); each value is then checked with
a GET. What the lag is made of: the wait for the job's next run (the interval after the last
cycle ended), the runner waking when the job falls due, and the cycle itself.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._calibrate import python_speed
from engine import configure_logging
from engine.model.converter import parse_duration
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import start_daemon
from tests.api.ldap_scim import DaemonApi, ldap_to_scim_secrets, listed, total, wait_until
from tests.ldap.ldap_jobs import PERSON, Tree, person
from tests.ldap.slapd import BASE_DN, Slapd
from tests.processes import terminate
from tests.scim.server import ScimServer

BASE = f"ou=lag,{BASE_DN}"


def ldif(tree: Tree, count: int) -> str:
    lines: list[str] = []
    for dn in (tree.base, tree.people, tree.groups):
        lines += [f"dn: {dn}", "objectClass: organizationalUnit", f"ou: {dn.split(',')[0][3:]}", ""]
    for n in range(count):
        lines += [f"dn: {tree.user_dn(n)}"] + [f"objectClass: {c}" for c in PERSON]
        lines += [f"{k}: {v}" for k, v in person(tree, n, managers=False).items()] + [""]
    return "\n".join(lines) + "\n"


class RequestLogWatch:
    """Reads the SCIM server's request log as it grows and notes when each awaited value first
    appears in it (the time of the read that found it: at most ``every`` late)."""

    def __init__(self, log: Path, every: float = 0.005) -> None:
        self.log, self.every = log, every
        self.awaited: dict[str, float] = {}  # value -> time written
        self.seen: dict[str, float] = {}  # value -> time found
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def expect(self, value: str, written: float) -> None:
        with self._lock:
            self.awaited[value] = written

    def _run(self) -> None:
        with self.log.open("r", encoding="utf-8") as handle:
            handle.seek(0, os.SEEK_END)
            pending = ""
            while not self._stop.is_set():
                chunk = handle.read()
                now = time.perf_counter()
                if chunk:
                    pending += chunk
                    lines, _, pending = pending.rpartition("\n")
                    with self._lock:
                        for value in self.awaited.keys() - self.seen.keys():
                            if value in lines:
                                self.seen[value] = now
                else:
                    self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--interval", default="PT1S", help="the job's schedule (ISO-8601)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    configure_logging("WARNING")
    interval = parse_duration(args.interval).total_seconds()
    spacing = random.Random(args.seed)
    print(f"calibration {python_speed():.1f} M it/s")
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="bench-lag-") as directory:
        root = Path(directory)
        tree = Tree(None, None, BASE)  # type: ignore[arg-type]
        source = Slapd(root / "source", "source", seed_ldif=ldif(tree, args.users))
        scim = ScimServer(root / "scim", "scim")
        daemon = None
        api = None
        try:
            source.start()
            scim.start()
            tree = Tree(source, source, BASE)
            env = {**os.environ, TOKENS_ENV: token}
            daemon, url = start_daemon(root / "state.db", root / "serve.log", env)
            api = DaemonApi(url, token)
            began = time.perf_counter()
            api.create_job(ldap_to_scim_secrets(tree, scim), args.interval)
            wait_until(lambda: total(scim, "Users") >= args.users, 120, "the initial sync", 0.05)
            print(f"initial sync of {args.users} users: {time.perf_counter() - began:.2f} s")
            ids = {u["userName"]: u["id"] for u in listed(scim, "Users")}

            watch = RequestLogWatch(scim.request_log)
            watch.start()
            connection = source.connect()
            values: dict[str, str] = {}
            for i in range(args.changes):
                time.sleep(spacing.uniform(0, interval))
                name = f"u{i % args.users:05d}"
                value = f"lag{i:04d}x{secrets.token_hex(4)}"
                change = {"title": [(ldap3.MODIFY_REPLACE, [value])]}
                if not connection.modify(tree.user_dn(i % args.users), change):
                    raise RuntimeError(f"modify {name}: {connection.result}")
                watch.expect(value, time.perf_counter())
                values[value] = name
            connection.unbind()
            wait_until(lambda: len(watch.seen) == len(values), 60, "every change in SCIM", 0.05)
            watch.stop()
            for value, name in values.items():  # what was logged is what GET shows
                title = scim.request("GET", f"/Users/{ids[name]}").json().get("title")
                assert title == value or values.get(title) == name, (name, title, value)
        finally:
            if api is not None:
                api.close()
            terminate(daemon)
            scim.stop()
            source.stop()
    lags = sorted(watch.seen[v] - watch.awaited[v] for v in values)
    p95 = lags[max(0, round(0.95 * len(lags)) - 1)]
    print(f"change-to-target lag through syncjob serve, schedule {args.interval}, "
          f"{len(lags)} changes: p50 {statistics.median(lags):.3f} s, "
          f"p95 {p95:.3f} s, max {lags[-1]:.3f} s, min {lags[0]:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
