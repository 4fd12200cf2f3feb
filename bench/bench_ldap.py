"""LDAP -> LDAP on real slapd servers, against bare ldap3 writes measured in the same run.

    python bench/bench_ldap.py [--users 10000] [--group-members 50000] [--rounds 3] [--quick]

Prints figures; asserts nothing (BENCHMARKS.md keeps the latest). Three scenarios:

- ``initial``: N users in a source slapd (loaded with slapadd); the raw baseline adds the same
  target entries with one bare ldap3 connection into an empty slapd; the engine's initial
  ldapToLdap cycle writes them into another empty slapd. Rounds alternate, fresh servers each.
- ``incremental``: 100 users modified in the source after the initial cycle; one cycle.
- ``group``: one group of M members (M users provisioned first); one member added in the
  source; the incremental cycle's time, the LDAP modifies the target saw for the group (from
  its accesslog) and the bytes the state store wrote (its WAL) for that change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import ManualClock, SyncEngine, configure_logging
from tests.ldap.ldap_jobs import PERSON, Tree, add_containers, person
from tests.ldap.ldap_objects import modify_records
from tests.ldap.slapd import BASE_DN, Slapd

BASE = f"ou=bench,{BASE_DN}"


def ldif(entries: list[tuple[str, list[str], dict[str, Any]]]) -> str:
    lines: list[str] = []
    for dn, classes, values in entries:
        lines.append(f"dn: {dn}")
        lines += [f"objectClass: {c}" for c in classes]
        for name, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{name}: {item}")
        lines.append("")
    return "\n".join(lines) + "\n"


def tree_entries(tree: Tree) -> list[tuple[str, list[str], dict[str, Any]]]:
    return [(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]})
            for dn in (tree.base, tree.people, tree.groups)]  # fmt: skip


def users(tree: Tree, count: int, start: int = 0) -> list[tuple[str, list[str], dict[str, Any]]]:
    return [(tree.user_dn(n), PERSON, person(tree, n)) for n in range(start, start + count)]


def server(root: Path, name: str, seed: str = "") -> Slapd:
    return Slapd(root / name, name, seed_ldif=seed).start()


CONCURRENCY = 1  # ExportConcurrency of the engine's jobs (--concurrency)


def job(tree: Tree, state: Path) -> tuple[SyncEngine, str]:
    engine = SyncEngine(state, ManualClock())
    app = engine.create_application("bench").id
    engine.set_secrets(app, tree.secrets())
    settings = {
        "QuarantineTooManyDeletesThreshold": "1000000",
        "ExportConcurrency": str(CONCURRENCY),
    }
    job_id = engine.create_job("ldapToLdap", settings=settings, application_id=app).id
    assert job_id is not None
    engine.start(job_id)
    return engine, job_id


def raw_adds(target: Slapd, entries: list[tuple[str, list[str], dict[str, Any]]]) -> float:
    """Seconds for bare ldap3 adds of ``entries`` (the containers first, untimed)."""
    connection = ldap3.Connection(
        ldap3.Server(target.url, get_info=ldap3.NONE),
        user=f"cn=admin,{BASE_DN}",
        password=target.password.reveal(),
        auto_bind=True,
    )
    head, body = entries[:3], entries[3:]
    for dn, classes, values in head:
        connection.add(dn, classes, values)
    started = time.perf_counter()
    for dn, classes, values in body:
        connection.add(dn, classes, values)
    seconds = time.perf_counter() - started
    assert connection.result["result"] == 0, connection.result
    connection.unbind()
    return seconds


def initial(root: Path, count: int, rounds: int) -> None:
    raw_rates, engine_rates, increments = [], [], []
    for round_ in range(rounds):
        work = root / f"r{round_}"
        probe = Tree(None, None, BASE)  # type: ignore[arg-type]
        entries = tree_entries(probe) + users(probe, count)
        source = server(work, "source", ldif(entries))
        raw, target = server(work, "raw"), server(work, "target")
        try:
            tree = Tree(source, target, BASE)
            raw_rates.append(count / raw_adds(raw, entries))
            add_containers(target, tree)
            engine, job_id = job(tree, work / "state.db")
            started = time.perf_counter()
            execution = engine.run_cycle(job_id)
            seconds = time.perf_counter() - started
            assert execution.count_exported >= count and execution.count_escrowed == 0, execution
            engine_rates.append(count / seconds)
            connection = source.connect()
            for n in range(0, count, max(1, count // 100))[:100]:
                connection.modify(tree.user_dn(n), {"title": [(ldap3.MODIFY_REPLACE, ["New"])]})
            connection.unbind()
            started = time.perf_counter()
            execution = engine.run_cycle(job_id)
            increments.append(time.perf_counter() - started)
            assert execution.count_exported == 100, execution
            engine.close()
            print(f"  round {round_ + 1}: raw {raw_rates[-1]:,.0f}/s, engine "
                  f"{engine_rates[-1]:,.0f}/s ({engine_rates[-1] / raw_rates[-1]:.2f}x), "
                  f"100 changes {increments[-1]:.3f} s", flush=True)  # fmt: skip
        finally:
            for s in (source, raw, target):
                s.stop()
    raw_rate, engine_rate = statistics.median(raw_rates), statistics.median(engine_rates)
    print(f"initial, {count:,} users: raw ldap3 adds {raw_rate:,.0f}/s, engine {engine_rate:,.0f}"
          f"/s: {engine_rate / raw_rate:.2f}x (median of {rounds})")  # fmt: skip
    print(f"incremental, 100 changes: {statistics.median(increments):.3f} s (median)")


def wal_bytes(state: Path) -> int:
    wal = Path(f"{state}-wal")
    return wal.stat().st_size if wal.exists() else 0


def group(root: Path, members: int) -> None:
    probe = Tree(None, None, BASE)  # type: ignore[arg-type]
    group_dn = probe.group_dn(0)
    people = users(probe, members + 3)
    entries = tree_entries(probe) + people + [
        (group_dn, ["groupOfNames"], {"cn": "g000", "member": [e[0] for e in people[:members]]})
    ]  # fmt: skip
    source = server(root, "group-source", ldif(entries))
    target = server(root, "group-target")
    try:
        tree = Tree(source, target, BASE)
        add_containers(target, tree)
        state = root / "group.db"
        engine, job_id = job(tree, state)
        started = time.perf_counter()
        first = engine.run_cycle(job_id)
        seconds = time.perf_counter() - started
        print(f"group: initial cycle, {members + 3:,} users and a group of {members:,}: "
              f"{seconds:.1f} s, {first.count_exported:,} exported")  # fmt: skip
        for n, when in enumerate(("the same process", "the same process", "a new process")):
            if when == "a new process":  # a restarted daemon: every cache is cold
                engine.close()
                engine = SyncEngine(state, ManualClock())
            before = len(modify_records(target, group_dn))
            # truncate the WAL through the engine's own connection (another connection's
            # checkpoint would count as a write by someone else and drop the store's caches)
            engine.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
            wal_before = wal_bytes(state)
            connection = source.connect()
            connection.modify(
                group_dn, {"member": [(ldap3.MODIFY_ADD, [tree.user_dn(members + n)])]}
            )
            connection.unbind()
            started = time.perf_counter()
            execution = engine.run_cycle(job_id)
            seconds = time.perf_counter() - started
            records = modify_records(target, group_dn)[before:]
            values = [v for record in records for v in record]
            print(f"group: one member added, {when}: incremental cycle {seconds:.3f} s; the "
                  f"target saw {len(records)} modify of the group carrying {len(values)} "
                  f"value(s); the state store wrote {wal_bytes(state) - wal_before:,} bytes "
                  f"(WAL); exported {execution.count_exported}")  # fmt: skip
        engine.close()
    finally:
        source.stop()
        target.stop()


def split(root: Path, count: int) -> None:
    """Where an initial cycle's time goes: wall time inside LdapClient.call (ldap3 encoding,
    the round trip, decoding) by operation, against the cycle's total; the rest is the
    engine (mapping, state store, intents) and our connector code around ldap3."""
    from connectors.ldap.connection import LdapClient  # noqa: PLC0415

    spent: dict[str, float] = {}
    original = LdapClient.call

    def timed(self: LdapClient, action: str, operation: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, action, operation)
        finally:
            kind = action.split(" ", 1)[0]
            spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - started

    LdapClient.call = timed  # type: ignore[method-assign]
    probe = Tree(None, None, BASE)  # type: ignore[arg-type]
    entries = tree_entries(probe) + users(probe, count)
    source = server(root, "split-source", ldif(entries))
    target = server(root, "split-target")
    try:
        tree = Tree(source, target, BASE)
        add_containers(target, tree)
        engine, job_id = job(tree, root / "split.db")
        started = time.perf_counter()
        engine.run_cycle(job_id)
        total = time.perf_counter() - started
        engine.close()
    finally:
        LdapClient.call = original  # type: ignore[method-assign]
        source.stop()
        target.stop()
    ldap = sum(spent.values())
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(spent.items(), key=lambda i: -i[1]))
    print(f"split, {count:,} users: cycle {total:.2f} s; inside ldap3 calls {ldap:.2f} s "
          f"({ldap / total:.0%}: {parts}); the rest {total - ldap:.2f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--group-members", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 users, a group of 5,000")
    parser.add_argument("--concurrency", type=int, default=1, help="the jobs' ExportConcurrency")
    parser.add_argument("--only", choices=("initial", "group", "split"))
    args = parser.parse_args()
    if args.quick:
        args.users, args.group_members, args.rounds = 2_000, 5_000, 1
    configure_logging("WARNING")
    global CONCURRENCY  # noqa: PLW0603 (a script's option)
    CONCURRENCY = args.concurrency
    print(f"ExportConcurrency {CONCURRENCY}")
    with tempfile.TemporaryDirectory(prefix="bench-ldap-") as directory:
        root = Path(directory)
        if args.only in (None, "initial"):
            initial(root, args.users, args.rounds)
        if args.only in (None, "split"):
            split(root, args.users)
        if args.only in (None, "group"):
            group(root, args.group_members)


if __name__ == "__main__":
    main()
