"""LDAP -> SCIM on a real slapd and a real SCIM server, against raw POSTs in the same run.

    python bench/bench_scim.py [--users 2000] [--rounds 3] [--concurrency 4]

Prints figures; asserts nothing (BENCHMARKS.md keeps the latest). The raw baseline POSTs the
same users, one at a time on one ``requests.Session``, to a fresh server; the engine's
initial ldapToScim cycle writes them to another fresh server (ExportConcurrency as given).
Then 100 users are modified in LDAP and one incremental cycle runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import ManualClock, SyncEngine, configure_logging
from tests.ldap.ldap_jobs import PERSON, Tree, person
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd
from tests.scim.server import ENTERPRISE_SCHEMA, USER_SCHEMA, ScimServer

BASE = f"ou=bench,{BASE_DN}"


def ldif(tree: Tree, count: int) -> str:
    lines: list[str] = []
    for dn in (tree.base, tree.people, tree.groups):
        lines += [f"dn: {dn}", "objectClass: organizationalUnit", f"ou: {dn.split(',')[0][3:]}", ""]
    for n in range(count):
        lines += [f"dn: {tree.user_dn(n)}"] + [f"objectClass: {c}" for c in PERSON]
        lines += [f"{k}: {v}" for k, v in person(tree, n, managers=False).items()] + [""]
    return "\n".join(lines) + "\n"


def scim_user(n: int) -> dict[str, Any]:
    """What the engine sends for user n (the same attributes, Entra's shape)."""
    name = f"u{n:05d}"
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": name,
        "active": True,
        "displayName": f"User {n}",
        "title": "Engineer",
        "externalId": name,
        "emails": [{"type": "work", "primary": True, "value": f"{name}@example.org"}],
        "name": {
            "givenName": f"Given{n}",
            "familyName": f"Surname{n}",
            "formatted": f"Given{n} Surname{n}",
        },
        ENTERPRISE_SCHEMA: {"employeeNumber": str(n)},
    }


def raw_posts(scim: ScimServer, count: int) -> float:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {scim.token.reveal()}",
               "Content-Type": "application/scim+json"}  # fmt: skip
    started = time.perf_counter()
    for n in range(count):
        response = session.post(f"{scim.url}/Users", data=json.dumps(scim_user(n)),
                                headers=headers, timeout=30)  # fmt: skip
        assert response.status_code == 201, response.text
    seconds = time.perf_counter() - started
    session.close()
    return seconds


def engine_cycles(source: Slapd, scim: ScimServer, state: Path, count: int,
                  concurrency: int) -> tuple[float, float]:  # fmt: skip
    tree = Tree(source, source, BASE)
    engine = SyncEngine(state, ManualClock())
    app = engine.create_application("bench").id
    engine.set_secrets(app, {
        "SourceUrl": source.url, "SourceUserName": ROOT_DN,
        "SourcePassword": source.password.reveal(), "SourceBaseDn": BASE,
        "BaseAddress": scim.url, "SecretToken": scim.token.reveal(),
    })  # fmt: skip
    settings = {"ExportConcurrency": str(concurrency), "QuarantineTooManyDeletesThreshold": "0"}
    job_id = engine.create_job("ldapToScim", settings=settings, application_id=app).id or ""
    engine.start(job_id)
    started = time.perf_counter()
    execution = engine.run_cycle(job_id)
    initial = time.perf_counter() - started
    assert execution.count_exported >= count and execution.count_escrowed == 0, execution
    connection = source.connect()
    for n in range(0, count, max(1, count // 100))[:100]:
        connection.modify(tree.user_dn(n), {"title": [(ldap3.MODIFY_REPLACE, [f"T{time.time()}"])]})
    connection.unbind()
    started = time.perf_counter()
    execution = engine.run_cycle(job_id)
    incremental = time.perf_counter() - started
    assert execution.count_exported == 100, execution
    engine.close()
    return initial, incremental


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    configure_logging("WARNING")
    raw_rates, engine_rates, increments = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-scim-") as directory:
        root = Path(directory)
        probe = Tree(None, None, BASE)  # type: ignore[arg-type]
        source = Slapd(root / "source", "source", seed_ldif=ldif(probe, args.users)).start()
        try:
            for round_ in range(args.rounds):
                with ScimServer(root / f"raw{round_}", "raw") as raw:
                    raw_rates.append(args.users / raw_posts(raw, args.users))
                with ScimServer(root / f"engine{round_}", "engine") as scim:
                    initial, incremental = engine_cycles(
                        source, scim, root / f"s{round_}.db", args.users, args.concurrency
                    )
                engine_rates.append(args.users / initial)
                increments.append(incremental)
                print(f"  round {round_ + 1}: raw POSTs {raw_rates[-1]:,.0f}/s, engine "
                      f"{engine_rates[-1]:,.0f}/s ({engine_rates[-1] / raw_rates[-1]:.2f}x), "
                      f"100 changes {incremental:.3f} s", flush=True)  # fmt: skip
        finally:
            source.stop()
    raw_rate, engine_rate = statistics.median(raw_rates), statistics.median(engine_rates)
    print(f"LDAP -> SCIM, {args.users:,} users, ExportConcurrency {args.concurrency}: raw "
          f"sequential POSTs {raw_rate:,.0f}/s, engine {engine_rate:,.0f}/s: "
          f"{engine_rate / raw_rate:.2f}x; incremental 100 changes "
          f"{statistics.median(increments):.3f} s (medians of {args.rounds})")  # fmt: skip


if __name__ == "__main__":
    main()
