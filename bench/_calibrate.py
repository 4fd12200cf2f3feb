"""A fixed pure-Python workload, timed: how fast this machine is right now.

This machine's speed drifts by about +-30% between runs (the host, not our process), so each
benchmark prints this figure beside its own to make runs comparable.
"""

from __future__ import annotations

import statistics
import time


def python_speed() -> float:
    """Millions of simple loop iterations per second (median of 5)."""
    rates = []
    for _ in range(5):
        began = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        rates.append(1.0 / (time.perf_counter() - began))
    return statistics.median(rates)
