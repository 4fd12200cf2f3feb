"""Creates through ScimTarget against a raw requests loop, on the same real scim2-server.

    python bench/bench_scim_target.py [--users 1000] [--rounds 3] [--workers 8]

Prints figures; asserts nothing. Per round, a fresh server each: ``raw`` POSTs N users with
one requests.Session, sequentially (the bodies prebuilt); ``target`` calls
``ScimTarget.create`` N times from one thread with the same attributes; ``target xW`` does it
from W threads, as the engine's ExportConcurrency would. The server (pydantic validation
under uvicorn) is the bottleneck, so the two sequential figures should be close.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.scim import ScimTarget
from connectors.scim.paths import ENTERPRISE as ENTERPRISE_USER
from connectors.scim.paths import USER_SCHEMA as CORE_USER
from tests.scim.server import ScimServer


def attributes(n: int) -> dict[str, Any]:
    return {
        "userName": f"user{n:06d}@example.org",
        "active": True,
        "displayName": f"User {n}",
        "name.givenName": "User",
        "name.familyName": f"N{n}",
        'emails[type eq "work"].value': f"user{n:06d}@example.org",
        f"{ENTERPRISE_USER}:department": "R&D",
    }


def raw_body(n: int) -> dict[str, Any]:
    a = attributes(n)
    return {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": a["userName"],
        "active": True,
        "displayName": a["displayName"],
        "name": {"givenName": "User", "familyName": a["name.familyName"]},
        "emails": [{"type": "work", "primary": True, "value": a["userName"]}],
        ENTERPRISE_USER: {"department": "R&D"},
    }


def raw(server: ScimServer, users: int) -> float:
    bodies = [raw_body(n) for n in range(users)]
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {server.token.reveal()}"
        session.headers["Content-Type"] = "application/scim+json"
        start = time.perf_counter()
        for body in bodies:
            response = session.post(server.url + "/Users", json=body, timeout=30)
            if response.status_code != 201:
                raise SystemExit(f"raw POST: {response.status_code}")
        return time.perf_counter() - start


def through_target(server: ScimServer, users: int, workers: int) -> float:
    target = ScimTarget(server.url, server.token.reveal())
    values = [attributes(n) for n in range(users)]
    create: Callable[[dict[str, Any]], str] = lambda a: target.create("User", a)  # noqa: E731
    try:
        start = time.perf_counter()
        if workers == 1:
            for a in values:
                create(a)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(create, values))
        return time.perf_counter() - start
    finally:
        target.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    runs: dict[str, Callable[[ScimServer], float]] = {
        "raw requests loop": lambda s: raw(s, args.users),
        "ScimTarget.create": lambda s: through_target(s, args.users, 1),
        f"ScimTarget.create x{args.workers}": lambda s: through_target(s, args.users, args.workers),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, run in runs.items():
                with ScimServer(Path(tmp) / f"{round_}-{len(times[name])}-{name[:3]}") as server:
                    times[name].append(run(server))
    for name, seconds in times.items():
        best = min(seconds)
        print(
            f"{name:<24} {args.users / best:7.0f} creates/s  "
            f"(best {best:.2f} s, median {statistics.median(seconds):.2f} s, "
            f"{args.rounds} rounds of {args.users})"
        )


if __name__ == "__main__":
    main()
