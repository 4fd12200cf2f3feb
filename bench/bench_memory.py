"""Benchmark: memory -> memory through the SQLite store. Prints figures; not a test.

    python bench/bench_memory.py [--quick]

Scenarios (each in its own process, so peak RSS is its own):
  initial      initial cycle of 100k users x 10 attributes, memory directories, SQLite state
  incremental  100 changes after an initial cycle, over 10k / 100k / 1M-object directories
  stream       1M-object initial cycle from a generated source into a discarding target:
               the engine's own memory (it streams pages, never loading a directory)
  baseline     raw cost of the same writes without the engine: MemoryDirectory.create for
               every object, and SQLite inserts of the same link rows, for the ratio
  fanout       the incremental cycle after deleting a user who manages 1,000 others and
               belongs to 100 groups (of 50 members), in a 10k-user directory: every report
               and group is evaluated again and updated in that cycle (reverse index)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _calibrate import python_speed

from connectors.base import Attributes, Capability, Change, Page
from connectors.memory import MemoryDirectory
from engine import ManualClock, SqliteStateStore, SyncEngine, configure_logging

ROUNDS = 5  # repetitions; the median is reported (this machine's speed varies by +-30%)
#: incremental cycles measured per directory size (median): a cycle that happens to meet a
#: WAL checkpoint or a full garbage collection costs several times the others
INCREMENTAL_CYCLES = 15
ATTRIBUTES = (
    "displayName",
    "givenName",
    "surname",
    "mail",
    "department",
    "jobTitle",
    "employeeId",
    "mobilePhone",
    "city",
)


def person(n: int) -> dict[str, Any]:
    return {
        "userName": f"user{n}@example.org",
        "displayName": f"User Number {n}",
        "givenName": f"Given{n % 977}",
        "surname": f"Surname{n % 1009}",
        "mail": f"user{n}@example.org",
        "department": ("Sales", "Ops", "R&D", "Finance")[n % 4],
        "jobTitle": ("Engineer", "Manager", "Analyst")[n % 3],
        "employeeId": str(1_000_000 + n),
        "mobilePhone": f"+1 555 {n:07d}",
        "city": ("Paris", "Oslo", "Lima", "Kyoto")[n % 4],
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_on(path: Path, source: Any, target: Any, page_size: int = 500) -> tuple[SyncEngine, str]:
    engine = SyncEngine(SqliteStateStore(path), ManualClock())
    job = engine.create_job("memoryToMemory", source, target, settings={"PageSize": str(page_size)})
    assert job.id is not None
    engine.start(job.id)
    return engine, job.id


def scenario_initial(count: int, folder: Path) -> dict[str, Any]:
    source, target = MemoryDirectory(), MemoryDirectory()
    for n in range(count):
        source.put("User", f"a{n:08d}", person(n))
    engine, job_id = engine_on(folder / "initial.db", source, target)
    speed = python_speed()
    began = time.perf_counter()
    run = engine.run_cycle(job_id)
    seconds = time.perf_counter() - began
    speed = (speed + python_speed()) / 2  # the host's speed around this very run
    assert run.count_exported == count == len(target.list("User"))
    return {
        "objects": count,
        "seconds": round(seconds, 2),
        "calibration": round(speed, 1),
        "objects_per_s": round(count / seconds),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def scenario_incremental(count: int, changes: int, folder: Path) -> dict[str, Any]:
    source, target = MemoryDirectory(), MemoryDirectory()
    for n in range(count):
        source.put("User", f"a{n:08d}", person(n))
    engine, job_id = engine_on(folder / f"incremental{count}.db", source, target)
    setup = time.perf_counter()
    engine.run_cycle(job_id)
    setup = time.perf_counter() - setup
    step = max(count // changes, 1)
    timings = []
    for round_number in range(INCREMENTAL_CYCLES):
        for n in range(round_number, count, step)[:changes]:
            source.put("User", f"a{n:08d}", {**person(n), "department": f"Moved{round_number}"})
        began = time.perf_counter()
        run = engine.run_cycle(job_id)
        timings.append(time.perf_counter() - began)
        assert run.count_exported == changes, run
    return {
        "objects": count,
        "changes": changes,
        "incremental_ms": round(statistics.median(timings) * 1000, 1),
        "initial_setup_s": round(setup, 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }


class GeneratedSource:
    """A source that makes its objects on the fly: nothing is held in memory."""

    capabilities = frozenset({Capability.DELTA})

    def __init__(self, count: int) -> None:
        self.count = count

    def object_types(self) -> Sequence[str]:
        return ["User", "Group"]

    def validate(self) -> None:
        pass

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        return None

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        count = self.count if object_type == "User" else 0
        start = 0 if watermark in (None, "done") else int(watermark.split(":")[1])
        if watermark == "done" or start >= count:
            yield Page((), "done")
            return
        for first in range(start, count, page_size):
            last = min(first + page_size, count)
            changes = [Change("upsert", f"a{n:08d}", person(n)) for n in range(first, last)]
            yield Page(changes, "done" if last >= count else f"f:{last}")


class DiscardingTarget:
    """A target that accepts every write and keeps nothing."""

    capabilities = frozenset({Capability.DELETE, Capability.SOFT_DELETE})

    def __init__(self) -> None:
        self.created = 0

    def validate(self) -> None:
        pass

    def find(self, object_type: str, attribute: str, value: object) -> str | None:
        return None

    def create(self, object_type: str, attributes: Attributes) -> str:
        self.created += 1
        return f"t{self.created}"

    def update(self, object_type: str, ref: str, delta: Attributes) -> None:
        pass

    def delete(self, object_type: str, ref: str, *, soft: bool) -> None:
        pass


def scenario_stream(count: int, folder: Path) -> dict[str, Any]:
    target = DiscardingTarget()
    engine, job_id = engine_on(folder / "stream.db", GeneratedSource(count), target)
    began = time.perf_counter()
    run = engine.run_cycle(job_id)
    seconds = time.perf_counter() - began
    assert run.count_exported == count == target.created
    return {
        "objects": count,
        "seconds": round(seconds, 1),
        "objects_per_s": round(count / seconds),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def scenario_baseline(count: int, folder: Path) -> dict[str, Any]:
    """The raw work the engine must do anyway: target writes and link rows, no engine."""
    people = [person(n) for n in range(count)]
    target = MemoryDirectory()
    began = time.perf_counter()
    refs = [target.create("User", p) for p in people]
    writes = time.perf_counter() - began
    db = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE links (job_id TEXT, mapping TEXT, anchor TEXT, target_ref TEXT, "
        "exported TEXT, PRIMARY KEY (job_id, mapping, anchor)) WITHOUT ROWID"
    )
    began = time.perf_counter()
    for first in range(0, count, 500):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO links VALUES ('j', 'm', ?, ?, ?)",
            [
                (f"a{n:08d}", refs[n], json.dumps(people[n], sort_keys=True))
                for n in range(first, min(first + 500, count))
            ],
        )
        db.execute("COMMIT")
    rows = time.perf_counter() - began
    return {
        "objects": count,
        "memory_creates_per_s": round(count / writes),
        "sqlite_link_rows_per_s": round(count / rows),
        "both_per_s": round(count / (writes + rows)),
    }


def scenario_fanout(count: int, reports: int, groups: int, folder: Path) -> dict[str, Any]:
    source, target = MemoryDirectory(), MemoryDirectory()
    source.put("User", "boss", person(count))
    for n in range(count):
        source.put(
            "User", f"a{n:08d}", {**person(n), **({"manager": "boss"} if n < reports else {})}
        )
    for g in range(groups):
        members = ["boss", *(f"a{n:08d}" for n in range(g * 50, g * 50 + 49))]
        source.put("Group", f"g{g:04d}", {"displayName": f"Group {g}", "members": members})
    engine, job_id = engine_on(folder / "fanout.db", source, target)
    engine.run_cycle(job_id)
    source.remove("User", "boss")
    began = time.perf_counter()
    run = engine.run_cycle(job_id)
    seconds = time.perf_counter() - began
    assert run.count_exported == reports + groups + 1, run  # + the delete itself
    assert not any("manager" in u for u in target.list("User").values())
    return {
        "objects": count,
        "reports": reports,
        "groups": groups,
        "incremental_ms": round(seconds * 1000, 1),
        "exported": run.count_exported,
    }


def run_child(name: str, args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child(name: str, args: list[str]) -> None:
    configure_logging("ERROR", force=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        if name == "initial":
            result = scenario_initial(int(args[0]), path)
        elif name == "incremental":
            result = scenario_incremental(int(args[0]), int(args[1]), path)
        elif name == "stream":
            result = scenario_stream(int(args[0]), path)
        elif name == "fanout":
            result = scenario_fanout(int(args[0]), int(args[1]), int(args[2]), path)
        else:
            result = scenario_baseline(int(args[0]), path)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], options.child[1:])
        return
    big = 100_000 if options.quick else 1_000_000
    initial = 20_000 if options.quick else 100_000
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"calibration: {python_speed():.1f} M loop iterations/s (machine speed now)")
    base = run_child("baseline", [str(initial)])
    print(
        f"baseline  {initial:>9,} objects: "
        f"MemoryDirectory.create {base['memory_creates_per_s']:,}/s, "
        f"SQLite link rows {base['sqlite_link_rows_per_s']:,}/s, both {base['both_per_s']:,}/s"
    )
    runs = [run_child("initial", [str(initial)]) for _ in range(ROUNDS)]
    rates = sorted(r["objects_per_s"] for r in runs)
    median = statistics.median(rates)
    print(
        f"initial   {initial:>9,} objects: median {median:,.0f} objects/s "
        f"(range {rates[0]:,}-{rates[-1]:,} over {ROUNDS} runs; "
        f"{median / base['both_per_s']:.2f}x of raw writes+rows), "
        f"peak RSS {max(r['peak_rss_mb'] for r in runs)} MB"
    )
    pairs = ", ".join(f"{r['objects_per_s']:,} at {r['calibration']}" for r in runs)
    print(f"          each run, objects/s at calibration (M loops/s): {pairs}")
    for size in (10_000, 100_000, big):
        inc = run_child("incremental", [str(size), "100"])
        print(
            f"incremental 100 changes over {size:>9,} objects: median {inc['incremental_ms']} ms "
            f"(initial setup {inc['initial_setup_s']} s, peak RSS {inc['peak_rss_mb']} MB)"
        )
    fan = run_child("fanout", ["10000", "1000", "100"])
    print(
        f"fanout    delete a user who manages {fan['reports']:,} of {fan['objects']:,} and is "
        f"in {fan['groups']} groups: {fan['incremental_ms']} ms, {fan['exported']} exports"
    )
    stream = run_child("stream", [str(big)])
    print(
        f"stream    {big:>9,} objects, generated source -> discarding target: "
        f"{stream['seconds']} s, {stream['objects_per_s']:,} objects/s, "
        f"peak RSS {stream['peak_rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
