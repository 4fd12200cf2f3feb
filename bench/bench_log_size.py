"""Benchmark: what the provisioning log costs in the state file. Prints figures; not a test.

    python bench/bench_log_size.py [--quick]

Real cycles (memoryToMemory, SQLite state, entryUUID-shaped anchors, ten mapped attributes)
write real records; the file's used bytes ((page_count - freelist_count) x page_size, after
a WAL checkpoint) are read before and after, so the figure includes the row, its indexes
and the per-job total. Scenarios:
  bytes     bytes per record: Create records (initial cycle, a page of 500 per row), Update
            records from delta cycles of 1, 10 and 100 changes (one row per cycle)
  prune     a log of 120,000 records over a cap of 100,000, in one-change rows and in rows of
            500: the time of each delete of one budget (the longest a checkpoint of another
            cycle waits behind pruning) and the cycles it takes to work the backlog off
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.memory import MemoryDirectory
from engine import ManualClock, SqliteStateStore, SyncEngine, configure_logging
from engine.store.base import Checkpoint, PruneBudget


def person(n: int, department: str = "Sales") -> dict[str, Any]:
    return {
        "userName": f"user{n}@example.org",
        "displayName": f"User Number {n}",
        "mail": f"user{n}@example.org",
        "department": department,
        "active": True,
    }


def used_bytes(store: SqliteStateStore) -> int:
    db = store._db  # a benchmark of the store's own file
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size: int = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def scenario_bytes(users: int, cycles: int, folder: Path) -> None:
    anchors = [str(uuid.UUID(int=n + 1)) for n in range(users)]
    source, target = MemoryDirectory(), MemoryDirectory()
    for n, anchor in enumerate(anchors):
        source.put("User", anchor, person(n))
    clock = ManualClock()
    store = SqliteStateStore(folder / "bytes.db")
    engine = SyncEngine(store, clock)
    job = engine.create_job("memoryToMemory", source, target)
    assert job.id is not None
    engine.start(job.id)
    before = used_bytes(store)
    engine.run_cycle(job.id)
    after = used_bytes(store)
    print(f"initial cycle, {users} objects: {(after - before) / users:.0f} bytes per object")
    print("  (link, its exported values and one Create record, 500 records a row)")
    step = 0
    for changes in (1, 10, 100):
        before, records = used_bytes(store), store.count_logs(job.id)
        for _ in range(cycles):
            step += 1
            clock.advance(timedelta(minutes=2))
            for k in range(changes):
                n = (step * changes + k) % users
                source.put("User", anchors[n], person(n, f"Department {step}"))
            engine.run_cycle(job.id)
        after, added = used_bytes(store), store.count_logs(job.id) - records
        print(
            f"delta cycles of {changes:>3} change(s): {(after - before) / added:.0f} bytes "
            f"per Update record ({added} records)"
        )
    store.close()


def scenario_prune(records: int, per_row: int, cap: int, folder: Path) -> None:
    store = SqliteStateStore(folder / f"prune{per_row}.db")
    clock = ManualClock()
    engine = SyncEngine(store, clock)
    source, target = MemoryDirectory(), MemoryDirectory()
    source.put("User", str(uuid.UUID(int=1)), person(1))
    job = engine.create_job("memoryToMemory", source, target)
    assert job.id is not None
    engine.start(job.id)
    clock.advance(timedelta(minutes=2))
    source.put("User", str(uuid.UUID(int=1)), person(1, "Moved"))
    engine.run_cycle(job.id)
    (record,) = store.provisioning_logs(job.id, limit=1)
    for _ in range(records // per_row):  # as many cycles' checkpoints, without the cycles
        cycle = uuid.uuid4().hex
        store.commit(job.id, Checkpoint(logs=[record._replace(cycle_id=cycle)] * per_row))
    size = used_bytes(store) / 1e6
    print(f"{store.count_logs(job.id)} records, {per_row} a row, {size:.1f} MB; cap {cap}")
    budget = PruneBudget()
    store.prune_budget = PruneBudget(budget.rows, budget.records, 1)  # one delete a call
    timings = []
    while True:
        began = time.perf_counter()
        dropped = store.prune_logs(job.id, clock.now() - timedelta(days=30), cap)
        if not dropped:
            break
        timings.append((time.perf_counter() - began) * 1000)
    print(
        f"  {len(timings)} deletes of at most {budget.rows} rows / {budget.records} records: "
        f"median {statistics.median(timings):.1f} ms, longest {max(timings):.1f} ms; "
        f"worked off in {-(-len(timings) // budget.deletes)} cycles of {budget.deletes} "
        f"deletes; {store.count_logs(job.id)} records left"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as folder:
        scenario_bytes(1000 if quick else 10_000, 20 if quick else 200, Path(folder))
        scale = 10 if quick else 1
        for per_row in (1, 500):
            scenario_prune(120_000 // scale, per_row, 100_000 // scale, Path(folder))


if __name__ == "__main__":
    main()
