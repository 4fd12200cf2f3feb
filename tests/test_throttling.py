"""Throttling stalls only what it must (issue #17, point 4): a Retry-After is waited out
without the engine lock, at a back-off gate every export worker shares, so the answers 429
that several workers get in one window cost one window, not one each in a row."""

from __future__ import annotations

import threading
import time
from typing import Any

from connectors.base import Capability, TransientError
from connectors.memory import MemoryDirectory
from engine import SyncEngine, SystemClock
from tests.conftest import fill

RETRY_AFTER = 1.0


class ThrottlingTarget(MemoryDirectory):
    """A remote-like memory target: every create takes 10 ms, and the first create of each
    of the first ``throttled`` users is answered 429 Retry-After: 1 (refused, not applied)."""

    capabilities = MemoryDirectory.capabilities | {Capability.PARALLEL_WRITES}

    def __init__(self, throttled: int) -> None:
        super().__init__()
        self._refused: set[str] = set()
        self._throttled = {f"user{n}@example.org" for n in range(throttled)}
        self._guard = threading.Lock()
        self.answered_429 = 0

    def create(self, object_type: str, attributes: Any) -> str:
        time.sleep(0.01)  # noqa: TID251 - a remote target's round trip, in real time
        name = attributes.get("userName")
        with self._guard:
            if name in self._throttled and name not in self._refused:
                self._refused.add(name)
                self.answered_429 += 1
                raise TransientError("429 Too Many Requests", retry_after=RETRY_AFTER)
        return super().create(object_type, attributes)


def test_throttled_answers_in_one_window_cost_one_window(tmp_path: Any) -> None:
    """Eight 429s with Retry-After: 1 among four workers: about one window of waiting (each
    worker's wait stalled every other before: eight seconds in a row)."""
    source, target = MemoryDirectory(), ThrottlingTarget(throttled=8)
    fill(source, 40)
    engine = SyncEngine(tmp_path / "s.db", SystemClock())
    job = engine.create_job("memoryToMemory", source, target, settings={"ExportConcurrency": "4"})
    assert job.id is not None
    engine.start(job.id)
    began = time.monotonic()
    execution = engine.run_cycle(job.id)
    took = time.monotonic() - began
    engine.close()
    assert execution.count_exported == 40 and len(target.list("User")) == 40
    assert target.answered_429 == 8
    assert took < 4 * RETRY_AFTER, f"{took:.1f} s for 8 answers 429 in one window"
