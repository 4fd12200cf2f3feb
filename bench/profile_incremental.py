"""Deterministic cost of an incremental cycle: cProfile calls of one cycle and CPU time of
the others, for the code in TREE (a checkout or a `git archive` of another version).

    python bench/profile_incremental.py TREE [CYCLES]

An initial cycle of 10,000 users through the SQLite store, then CYCLES incremental cycles
of 100 users' ``department`` changed. Call counts do not depend on the host's speed, so two
versions compare on a noisy host; CPU times are printed beside them.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

TREE = sys.argv[1]
sys.path[:0] = [TREE, f"{TREE}/bench"]

import bench_memory  # noqa: E402  (from TREE)

import engine  # noqa: E402
from connectors.memory import MemoryDirectory  # noqa: E402


def main() -> None:
    assert engine.__file__ and engine.__file__.startswith(TREE), engine.__file__
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    source, target = MemoryDirectory(), MemoryDirectory()
    count, changes = 10_000, 100
    for n in range(count):
        source.put("User", f"a{n:08d}", bench_memory.person(n))
    folder = Path(tempfile.mkdtemp())
    sync, job = bench_memory.engine_on(folder / "state.db", source, target)
    sync.run_cycle(job)
    cpu, calls = [], 0
    for r in range(cycles):
        for n in range(r, count, count // changes)[:changes]:
            source.put("User", f"a{n:08d}", {**bench_memory.person(n), "department": f"M{r}"})
        if r == 5:
            profile = cProfile.Profile()
            profile.enable()
            sync.run_cycle(job)
            profile.disable()
            calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
            continue
        began = time.process_time()
        sync.run_cycle(job)
        cpu.append(time.process_time() - began)
    cpu.sort()
    print(
        f"calls={calls} cpu_min_ms={cpu[0] * 1000:.1f} "
        f"cpu_median_ms={cpu[len(cpu) // 2] * 1000:.1f}"
    )


if __name__ == "__main__":
    main()
