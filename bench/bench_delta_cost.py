"""What one idle delta read costs the source server, as the log or directory grows.

    python bench/bench_delta_cost.py [--sizes 1000,10000,100000] [--reads 300]
                                     [--scim-sizes 1000,10000] [--scim-reads 20]

Prints figures; asserts nothing (BENCHMARKS.md keeps the latest). A daemon polls each job
every interval whether or not anything changed, so an idle read must cost what the changes
cost (none), not what the log or the directory holds. For each size N:

- ``accesslog``: a slapd whose ``cn=accesslog`` holds N write records spread over the last five
  days (loaded with slapadd: a running server would take days to write them); after a full
  read, ``reads`` idle delta reads; slapd's CPU time per read, read from /proc. Beside it, the
  purge probe the source used before (``(reqStart<=S)``, size limit 1) alone, same count.
- ``timestamp``: N entries under the type's base (slapadd); idle delta reads by
  ``modifyTimestamp`` (no index on it: the test fixture's configuration).
- ``scim`` (``--scim-sizes``): N users in scim2-server; idle delta reads by
  ``meta.lastModified``; the server process's CPU per read.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ldap3

from connectors.base import Source
from connectors.ldap import LdapEndpoint, LdapSource, people
from connectors.scim import ScimSource
from tests.ldap.slapd import ACCESSLOG_DN, BASE_DN, ROOT_DN, Slapd, spread_accesslog
from tests.scim.server import USER_SCHEMA, ScimServer

PEOPLE = f"ou=people,{BASE_DN}"
TICK = os.sysconf("SC_CLK_TCK")
SPAN = timedelta(days=5)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its finished children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def people_ldif(count: int) -> str:
    """``count`` people last modified over the SPAN before a minute ago (slapadd keeps the
    given timestamps): a directory whose writes are spread out, not made in one second."""
    end = datetime.now(UTC) - timedelta(minutes=1)
    step = SPAN / max(count, 1)
    lines: list[str] = []
    for n in range(count):
        stamp = (end - SPAN + step * n).strftime("%Y%m%d%H%M%SZ")
        lines += [
            f"dn: uid=u{n},{PEOPLE}",
            "objectClass: inetOrgPerson",
            f"uid: u{n}",
            f"cn: User {n}",
            f"sn: {n}",
            f"createTimestamp: {stamp}",
            f"modifyTimestamp: {stamp}",
            "",
        ]
    return "\n".join(lines) + "\n"


def idle_reads(source: Source, reads: int, server_pid: int) -> tuple[float, float, float]:
    """(server CPU ms per idle delta read, client wall ms per read, changes per read: those
    a timestamp window repeats) after a full read."""
    watermark = None
    for page in source.read("User", None, 500):
        watermark = page.watermark
    for _ in range(3):  # the mark settles (the accesslog window closes after its overlap)
        for page in source.read("User", watermark, 500):
            watermark = page.watermark
    began_cpu, began, changes = cpu_seconds(server_pid), time.perf_counter(), 0
    for _ in range(reads):
        for page in source.read("User", watermark, 500):
            changes += len(page.changes)
            watermark = page.watermark
    took = time.perf_counter() - began
    cpu = (cpu_seconds(server_pid) - began_cpu) * 1000 / reads
    return cpu, took * 1000 / reads, changes / reads


def old_probe(slapd: Slapd, mark: str, reads: int) -> float:
    """slapd CPU ms per ``(reqStart<=mark)`` probe with size limit 1 (the check replaced); a
    connection of its own with a long timeout (a probe takes seconds on a large log)."""
    assert slapd.pid is not None
    server = ldap3.Server(slapd.url, get_info=ldap3.NONE)
    connection = ldap3.Connection(
        server, ROOT_DN, slapd.password.reveal(), auto_bind=True, receive_timeout=600
    )
    search_filter = f"(&(objectClass=auditWriteObject)(reqStart<={mark}))"
    began = cpu_seconds(slapd.pid)
    for _ in range(reads):
        connection.search(ACCESSLOG_DN, search_filter, attributes=["1.1"], size_limit=1)
    spent = cpu_seconds(slapd.pid) - began
    connection.unbind()
    return spent * 1000 / reads


def ldap_source(slapd: Slapd, mode: str) -> LdapSource:
    endpoint = LdapEndpoint(url=slapd.url, bind_dn=ROOT_DN, password=slapd.password.reveal())
    return LdapSource(endpoint, [people(BASE_DN)], delta_mode=mode, directory_base=BASE_DN)


def idle_ldap(slapd: Slapd, mode: str, reads: int) -> tuple[float, float, float]:
    assert slapd.pid is not None
    source = ldap_source(slapd, mode)
    try:
        return idle_reads(source, reads, slapd.pid)
    finally:
        source.close()


def measure_ldap(root: Path, size: int, reads: int) -> None:
    with Slapd(
        root / f"log{size}",
        "log",
        accesslog_ldif=spread_accesslog(size, datetime.now(UTC) - SPAN, datetime.now(UTC), PEOPLE),
    ) as slapd:
        cpu, wall, _ = idle_ldap(slapd, "accesslog", reads)
        print(
            f"accesslog {size:>7} records over 5 days: idle delta read {cpu:6.3f} ms slapd CPU, "
            f"{wall:6.2f} ms wall",
            flush=True,
        )
        newest = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y%m%d%H%M%S") + ".0Z"
        probe = old_probe(slapd, newest, max(3, reads // 100))
        print(f"          the old (reqStart<=S) purge probe alone: {probe:8.3f} ms slapd CPU")
    with Slapd(root / f"ts{size}", "ts", seed_ldif=people_ldif(size), accesslog=False) as slapd:
        cpu, wall, repeated = idle_ldap(slapd, "timestamp", reads)
        print(
            f"timestamp {size:>7} entries over 5 days:   idle delta read {cpu:6.3f} ms slapd CPU, "
            f"{wall:6.2f} ms wall; {repeated:.0f} entries repeated (the overlap)"
        )


def measure_scim(root: Path, size: int, reads: int) -> None:
    with ScimServer(root / f"scim{size}", "scim") as server:
        assert server.pid is not None
        for n in range(size):
            server.create("Users", {"schemas": [USER_SCHEMA], "userName": f"u{n}@example"})
        source = ScimSource(server.url, server.token.reveal())
        try:
            cpu, wall, repeated = idle_reads(source, reads, server.pid)
        finally:
            source.close()
        print(
            f"scim      {size:>7} users:                 idle delta read {cpu:6.3f} ms server "
            f"CPU, {wall:6.2f} ms wall; {repeated:.0f} users repeated (the overlap)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--scim-sizes", default="1000,10000")
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--scim-reads", type=int, default=20, help="scim2-server is slow")
    args = parser.parse_args()
    runs: list[tuple[Callable[[Path, int, int], None], int, int]] = [
        (measure_ldap, int(n), args.reads) for n in args.sizes.split(",") if n
    ]
    runs += [(measure_scim, int(n), args.scim_reads) for n in args.scim_sizes.split(",") if n]
    print(f"CPU from /proc (resolution {1000 / TICK:.0f} ms); {args.reads} idle delta reads")
    print(f"each for LDAP, {args.scim_reads} for SCIM")
    with tempfile.TemporaryDirectory() as tmp:
        for measure, size, reads in runs:
            measure(Path(tmp), size, reads)


if __name__ == "__main__":
    main()
