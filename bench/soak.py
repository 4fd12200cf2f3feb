"""A soak of ``syncjob serve`` with three real jobs: are its figures flat over time?

    python bench/soak.py [--minutes 30] [--quick] [--users 200] [--rate 3]

Issue #21 point 6. The bench starts on 127.0.0.1 a source slapd (accesslog), a target slapd,
a SCIM target and a SCIM source, and ``syncjob serve`` as a subprocess with three jobs on
PT1S: ldapToScim and ldapToLdap from the source slapd's base, scimToLdap from the SCIM source
into another base of the target slapd. It writes a steady trickle of ``--rate`` title changes
a second spread over the two sources, and every minute prints: per-job cycles in that minute,
the median cycle duration (``/metrics`` last_cycle_duration, sampled at each new cycle), the
source slapd's CPU per cycle of the two jobs reading it, the daemon's RSS and descriptors, and
the state file's size (+WAL). At the end: minute 5 (or the first) against the last, and an
exactness check (every target holds its source's users with the same titles). A figure that
grows from minute 5 on is the finding; the bench asserts nothing but exactness.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_daemon_lag import ldif
from engine import configure_logging
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import start_daemon
from tests.api.ldap_scim import DaemonApi, listed, total, wait_until
from tests.ldap.ldap_jobs import Tree, add_containers, count, entries
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd
from tests.processes import terminate
from tests.scim.server import ScimServer

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE = re.compile(r"^(syncjob_job_\w+)\{([^}]*)\}\s+(\S+)$")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def state_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.parent.glob(state.name + "*") if p.is_file())


def job_metrics(api: DaemonApi, jobs: dict[str, str]) -> dict[str, dict[str, float]]:
    """job name -> {family: value} from /metrics (labels matched by the job's id)."""
    found: dict[str, dict[str, float]] = {name: {} for name in jobs}
    for line in api.metrics().splitlines():
        match = SAMPLE.match(line)
        if match is None or "code=" in match.group(2):
            continue
        for name, job in jobs.items():
            if job in match.group(2):
                found[name][match.group(1)] = float(match.group(3))
    return found


class Sampler:
    """Polls /metrics every 0.25 s; at each new cycle of a job notes its duration."""

    def __init__(self, api: DaemonApi, jobs: dict[str, str]) -> None:
        self.api, self.jobs = api, jobs
        self.cycles: dict[str, int] = dict.fromkeys(jobs, 0)
        self.durations: list[float] = []  # since the last take()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            figures = job_metrics(self.api, self.jobs)
            with self._lock:
                for name, values in figures.items():
                    cycles = int(values.get("syncjob_job_cycles_total", 0))
                    if cycles > self.cycles[name]:
                        self.durations.append(values["syncjob_job_last_cycle_duration_seconds"])
                        self.cycles[name] = cycles
            self._stop.wait(0.25)

    def take(self) -> tuple[dict[str, int], list[float]]:
        with self._lock:
            durations, self.durations = self.durations, []
            return dict(self.cycles), durations

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Trickle:
    """``rate`` title changes a second, alternating between the LDAP and the SCIM source."""

    def __init__(self, tree: Tree, scim: ScimServer, ids: list[str], users: int, rate: float):
        self.tree, self.scim, self.ids, self.users, self.rate = tree, scim, ids, users, rate
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        connection = self.tree.source.connect()
        began = time.monotonic()
        try:
            while not self._stop.is_set():
                n = self.written
                value = f"t{n}x{secrets.token_hex(3)}"
                if n % 2 == 0:
                    change = {"title": [(ldap3.MODIFY_REPLACE, [value])]}
                    dn = self.tree.user_dn((n // 2) % self.users)
                    if not connection.modify(dn, change):
                        raise RuntimeError(f"modify {dn}: {connection.result}")
                else:
                    user = self.ids[(n // 2) % len(self.ids)]
                    operation = {"op": "replace", "path": "title", "value": value}
                    body = {"schemas": [PATCH], "Operations": [operation]}
                    response = self.scim.request("PATCH", f"/Users/{user}", body)
                    if response.status_code not in (200, 204):
                        raise RuntimeError(f"PATCH {user}: {response.status_code}")
                self.written += 1
                self._stop.wait(max(0.0, began + self.written / self.rate - time.monotonic()))
        except BaseException as error:
            self.error = error
        finally:
            connection.unbind()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def titles_ldap(server: Slapd, base: str) -> dict[str, str | None]:
    found = entries(server, f"ou=people,{base}", "(objectClass=inetOrgPerson)", ["uid", "title"])
    return {v["uid"][0]: (v.get("title") or [None])[0] for v in found.values()}


def titles_scim(scim: ScimServer) -> dict[str, str | None]:
    return {u["userName"]: u.get("title") for u in listed(scim, "Users")}


def create_job(api: DaemonApi, template: str, secrets_: dict[str, str], interval: str) -> str:
    app = api.call("POST", "/servicePrincipals", 201, {"displayName": template})["id"]
    body: dict[str, Any] = {"templateId": template, "schedule": {"interval": interval}}
    job = api.call("POST", f"/servicePrincipals/{app}/synchronization/jobs", 201, body)["id"]
    pairs = [{"key": k, "value": v} for k, v in secrets_.items()]
    api.call("PUT", f"/servicePrincipals/{app}/synchronization/secrets", 204, {"value": pairs})
    api.call("POST", f"/servicePrincipals/{app}/synchronization/jobs/{job}/start", 204)
    return str(job)


Row = dict[str, Any]


def line(row: Row) -> str:
    cycles = " ".join(f"{k}={v}" for k, v in row["cycles"].items())
    return (f"min {row['minute']:>3}  cycles {cycles}  median cycle {row['median']*1000:7.1f} ms"
            f"  slapd cpu/cycle {row['cpu']*1000:6.2f} ms  rss {row['rss']/1024:6.1f} MiB"
            f"  fds {row['fds']:>3}  state {row['state']/1024:8.1f} KiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 minutes")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=float, default=3.0, help="source changes a second")
    parser.add_argument("--interval", default="PT1S")
    args = parser.parse_args()
    minutes = 2 if args.quick else args.minutes
    configure_logging("WARNING")
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as directory:
        root = Path(directory)
        base, back = f"ou=soak,{BASE_DN}", f"ou=back,{BASE_DN}"
        seed = ldif(Tree(None, None, base), args.users)  # type: ignore[arg-type]
        source = Slapd(root / "source", "source", seed_ldif=seed)
        target = Slapd(root / "target", "target")
        scim_target = ScimServer(root / "scim-target", "scim-target")
        scim_source = ScimServer(root / "scim-source", "scim-source")
        daemon = api = sampler = trickle = None
        state = root / "state.db"
        rows: list[Row] = []
        try:
            for server in (source, target, scim_target, scim_source):
                server.start()
            tree = Tree(source, target, base)
            add_containers(target, tree)
            add_containers(target, Tree(target, target, back))
            names = {"familyName": "F", "givenName": "G"}
            ids = [scim_source.create("Users", {"userName": f"s{n:05d}", "name": names,
                                                "title": "Engineer"})["id"]
                   for n in range(args.users)]  # fmt: skip
            daemon, url = start_daemon(state, root / "serve.log", {**os.environ, TOKENS_ENV: token})
            api = DaemonApi(url, token)
            ldap_scim = {"SourceUrl": source.url, "SourceUserName": ROOT_DN,
                         "SourcePassword": source.password.reveal(), "SourceBaseDn": base,
                         "SourceDeltaMode": "accesslog", "BaseAddress": scim_target.url,
                         "SecretToken": scim_target.token.reveal()}  # fmt: skip
            scim_ldap = {"SourceBaseAddress": scim_source.url,
                         "SourceSecretToken": scim_source.token.reveal(), "Url": target.url,
                         "UserName": ROOT_DN, "Password": target.password.reveal(),
                         "BaseDn": back}  # fmt: skip
            jobs = {
                "ldapToScim": create_job(api, "ldapToScim", ldap_scim, args.interval),
                "ldapToLdap": create_job(api, "ldapToLdap",
                                         tree.secrets(SourceDeltaMode="accesslog"), args.interval),
                "scimToLdap": create_job(api, "scimToLdap", scim_ldap, args.interval),
            }  # fmt: skip
            wait_until(lambda: total(scim_target, "Users") >= args.users
                       and count(target, f"ou=people,{base}") >= args.users
                       and count(target, f"ou=people,{back}") >= args.users,
                       300, "the initial syncs", 0.5)  # fmt: skip
            print(f"initial syncs done; {minutes} minutes of {args.rate}/s changes, "
                  f"jobs on {args.interval}, {args.users} users a source", flush=True)  # fmt: skip
            sampler = Sampler(api, jobs)
            sampler.start()
            trickle = Trickle(tree, scim_source, ids, args.users, args.rate)
            trickle.start()
            assert source.pid is not None and daemon.pid is not None
            before_cycles, _ = sampler.take()
            before_cpu = cpu_seconds(source.pid)
            start = time.monotonic()
            for minute in range(1, minutes + 1):
                time.sleep(max(0.0, start + 60 * minute - time.monotonic()))
                cycles, durations = sampler.take()
                cpu = cpu_seconds(source.pid)
                per = {k: cycles[k] - before_cycles[k] for k in cycles}
                reading = per["ldapToScim"] + per["ldapToLdap"]
                rows.append({
                    "minute": minute, "cycles": per,
                    "median": statistics.median(durations) if durations else 0.0,
                    "cpu": (cpu - before_cpu) / max(1, reading),
                    "rss": rss_kib(daemon.pid), "fds": len(os.listdir(f"/proc/{daemon.pid}/fd")),
                    "state": state_bytes(state),
                })  # fmt: skip
                print(line(rows[-1]), flush=True)
                before_cycles, before_cpu = cycles, cpu
                if trickle.error is not None:
                    raise trickle.error
            trickle.stop()
            written = trickle.written

            # exactness: let the jobs catch up, then every target equals its source
            def exact() -> bool:
                ldap_src = titles_ldap(source, base)
                same = titles_scim(scim_target) == ldap_src == titles_ldap(target, base)
                return same and titles_ldap(target, back) == titles_scim(scim_source)

            waited = wait_until(exact, 120, "every target equal to its source", 1.0)
            print(f"exact: {written} changes written; every target equals its source "
                  f"({args.users} users each, titles too), {waited:.1f} s after")  # fmt: skip
        finally:
            for each in (trickle, sampler):
                if each is not None:
                    each.stop()
            if api is not None:
                api.close()
            terminate(daemon)
            for server in (scim_source, scim_target, target, source):
                server.stop()
    if rows:
        first = rows[4] if len(rows) > 5 else rows[0]  # minute 5, or the first of a short run
        print(f"minute {first['minute']} against minute {rows[-1]['minute']}:")
        print("  " + line(first))
        print("  " + line(rows[-1]))


if __name__ == "__main__":
    main()
