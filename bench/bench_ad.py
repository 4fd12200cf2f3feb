"""Active Directory (a real Samba AD DC) -> memory, against a raw ldap3 paged search of the
same DC in the same run.

    python bench/bench_ad.py [--rounds 3] [--mode usn|dirsync|timestamp]

Prints figures; asserts nothing (BENCHMARKS.md keeps the latest). The domain is the test
suite's populated one (:mod:`tests.ad.populated`: 2,000 users in OU=Staff, a group of 1,600
of them), provisioned and filled once per run; each round starts a fresh DC copied from it.

- ``raw``: one bare ldap3 paged search (page 1,000) of the users and the groups under the
  domain root, asking for what the engine's source asks for (every user attribute and
  objectGUID): the least any reader of the same data pays.
- ``initial``: the adToScim job's initial cycle (its source built from the template, the SCIM
  target replaced by an in-memory directory), users and groups, in users per second.
- ``incremental``: 100 users modified on the DC, then one cycle (the delta mode's read, the
  mapping, the writes to memory).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine, configure_logging
from engine.templates import builtin_templates
from tests.ad.populated import USERS, populate, user_name
from tests.ad.samba import ADMIN_UPN, BASE_DN, SambaDc, Template, provision_template

USERS_FILTER = "(&(objectClass=user)(objectCategory=person))"
ATTRIBUTES = ["*", "objectGUID"]  # what the engine's LDAP source asks for


def raw_read(dc: SambaDc) -> float:
    connection = dc.connect()
    started = time.perf_counter()
    found = 0
    for search_filter in (USERS_FILTER, "(objectClass=group)"):
        for entry in connection.extend.standard.paged_search(
            BASE_DN, search_filter, attributes=ATTRIBUTES, paged_size=1000, generator=True
        ):
            found += entry.get("type") == "searchResEntry"
    seconds = time.perf_counter() - started
    connection.unbind()
    assert found >= USERS, found
    return seconds


def engine_job(dc: SambaDc, state: Path, mode: str) -> tuple[SyncEngine, str, MemoryDirectory]:
    engine = SyncEngine(state, ManualClock())
    app = engine.create_application("bench").id
    secrets = {"SourceUrl": dc.url, "SourceUserName": ADMIN_UPN,
               "SourcePassword": dc.password.reveal(), "SourceBaseDn": BASE_DN,
               "SourceDeltaMode": mode, "BaseAddress": "http://127.0.0.1:9/unused",
               "SecretToken": "unused"}  # fmt: skip
    engine.set_secrets(app, secrets)
    settings = {"QuarantineTooManyDeletesThreshold": "1000000"}
    job_id = engine.create_job("adToScim", application_id=app, settings=settings).id or ""
    template = builtin_templates()["adToScim"]
    assert template.build_source is not None
    source = template.build_source(secrets, engine.get_schema(job_id))
    target = MemoryDirectory()
    engine.attach(job_id, source, target)
    engine.start(job_id)
    return engine, job_id, target


def round_(template: Template, work: Path, mode: str) -> tuple[float, ...]:
    with SambaDc(work / "dc", template=template) as dc:
        raw = raw_read(dc)
        engine, job_id, target = engine_job(dc, work / "state.db", mode)
        started = time.perf_counter()
        first = engine.run_cycle(job_id)
        initial = time.perf_counter() - started
        assert len(target.list("User")) >= USERS, first  # (the domain's own groups may escrow)
        with dc.connect() as connection:
            for n in range(0, USERS, USERS // 100):
                dn = f"CN={user_name(n)},OU=Staff,{BASE_DN}"
                connection.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, ["Moved on"])]})
        started = time.perf_counter()
        second = engine.run_cycle(job_id)
        incremental = time.perf_counter() - started
        assert second.count_exported == 100, second
        engine.close()
        return raw, initial, incremental


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", default="usn", choices=("usn", "dirsync", "timestamp"))
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-ad-") as directory:
        root = Path(directory)
        started = time.perf_counter()
        template = populate(provision_template(root / "template"), root / "populated")
        print(f"domain: provisioned and populated in {time.perf_counter() - started:.1f} s")
        raws, initials, increments = [], [], []
        for n in range(args.rounds):
            raw, initial, incremental = round_(template, root / f"r{n}", args.mode)
            raws.append(raw)
            initials.append(initial)
            increments.append(incremental)
            print(f"  round {n + 1}: raw paged search {USERS / raw:,.0f} users/s, engine "
                  f"initial {USERS / initial:,.0f} users/s ({raw / initial:.2f}x), 100 changes "
                  f"({args.mode}) {incremental:.3f} s", flush=True)  # fmt: skip
        raw, initial = statistics.median(raws), statistics.median(initials)
        print(f"AD -> memory, {USERS:,} users and a group of 1,600: raw ldap3 paged search "
              f"{USERS / raw:,.0f}/s, engine initial cycle {USERS / initial:,.0f}/s: "
              f"{raw / initial:.2f}x (median of {args.rounds})")  # fmt: skip
        print(
            f"incremental, 100 changes ({args.mode}): {statistics.median(increments):.3f} s "
            "(median)"
        )


if __name__ == "__main__":
    main()
