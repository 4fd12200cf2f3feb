"""Benchmark: LdapTarget.find with and without its index, on a throwaway slapd. Not a test.

    PYTHONPATH=. python bench/bench_ldap_find.py [N]    (it uses the tests' slapd fixture)

Prints finds/s for N existing entries (each found once), and objects/s for the initial-cycle
shape (a find that misses, then a create) over N new entries, with find_cache_seconds 0
(every find a live search) and 60 (one paged search per type and attribute).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.ldap.ldap_objects import make_container, make_target
from tests.ldap.slapd import Slapd


def person(uid: str) -> dict[str, object]:
    return {"uid": uid, "cn": uid, "sn": "Bench"}


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as directory, Slapd(Path(directory) / "b", "bench") as s:
        existing = make_container(s)
        loader = make_target(s, existing, find_cache_seconds=0)
        for k in range(n):
            loader.create("User", person(f"u{k}"))
        loader.close()
        for seconds in (0.0, 60.0):
            target = make_target(s, existing, find_cache_seconds=seconds)
            start = time.perf_counter()
            for k in range(n):
                assert target.find("User", "uid", f"U{k}") is not None
            elapsed = time.perf_counter() - start
            print(f"find, cache {seconds:>4}s: {n / elapsed:8.0f} finds/s "
                  f"({target.client.operations['search']} searches)")  # fmt: skip
            target.close()
            target = make_target(s, make_container(s), find_cache_seconds=seconds)
            start = time.perf_counter()
            for k in range(n):
                if target.find("User", "uid", f"v{k}") is None:
                    target.create("User", person(f"v{k}"))
            elapsed = time.perf_counter() - start
            print(f"find+create, cache {seconds:>4}s: {n / elapsed:8.0f} objects/s")
            target.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
