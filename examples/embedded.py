"""Embedding syncjob in a service: SQLite state, a scheduled job, run_pending in your loop.

Run it: ``python examples/embedded.py``. It syncs a small in-memory directory into another,
then shows that an unchanged directory costs no writes and that a change flows as a delta.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine


def main() -> dict[str, object]:
    source, target = MemoryDirectory(), MemoryDirectory()
    for n in range(20):
        source.put(
            "User",
            f"emp-{n}",
            {
                "userName": f"emp{n}@example.org",
                "displayName": f"Employee {n}",
                "department": "Ops",
            },
        )
    clock = ManualClock()  # a daemon would pass nothing and get the system clock
    with (
        tempfile.TemporaryDirectory() as folder,
        SyncEngine(Path(folder) / "state.sqlite", clock) as engine,
    ):
        job = engine.create_job(
            "memoryToMemory", source, target, schedule="PT10M", settings={"PageSize": "5"}
        )
        engine.start(job.id)
        first = engine.run_pending()  # due at once after start
        source.put(
            "User",
            "emp-3",
            {"userName": "emp3@example.org", "displayName": "Employee Three", "department": "Ops"},
        )
        clock.advance(timedelta(minutes=10))
        second = engine.run_pending()
        status = engine.get_job(job.id).status
        assert status is not None
        result = {
            "created": first[0].count_exported,
            "updated": second[0].count_exported,
            "target_users": len(target.list("User")),
            "status": status.code.value,
        }
    print(result)
    return result


if __name__ == "__main__":
    main()
