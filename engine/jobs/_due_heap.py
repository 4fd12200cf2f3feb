"""Job ids ordered by next-due time, for a scheduler that looks at the top, never at all.

A min-heap with lazy removal: changing or dropping a job leaves its old entry in place, marked
stale by the sequence number beside it, and the heap is rebuilt once stale entries outnumber
live ones. A tie in due time goes to the lower ``rank`` (the scheduler's: the job whose last
turn is the oldest), then to the job whose time was set first; setting the same time again
keeps a job's place, so re-reading an unchanged row costs no turn.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import datetime

_Entry = tuple[datetime, int, int, str]  # (due, rank, sequence, job id)


class DueHeap:
    """Next-due times by job id, walked earliest first. Not thread-safe: its owner locks."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._live: dict[str, tuple[datetime, int, int]] = {}  # job id -> its live entry
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def due_of(self, job_id: str) -> datetime | None:
        live = self._live.get(job_id)
        return None if live is None else live[0]

    def set(self, job_id: str, due: datetime, rank: int = 0) -> None:
        live = self._live.get(job_id)
        if live is not None and live[0] == due:
            return
        sequence = next(self._sequence)
        self._live[job_id] = (due, rank, sequence)
        heapq.heappush(self._heap, (due, rank, sequence, job_id))
        self._compact()

    def discard(self, job_id: str) -> None:
        if self._live.pop(job_id, None) is not None:
            self._compact()

    def ordered(self) -> Iterator[tuple[datetime, str]]:
        """Live entries earliest first, reading only as far as the caller goes (a walk of
        the heap's tree by a second, small heap): the top k cost O(k log k), whatever the
        size. The heap must not change while the walk runs."""
        heap = self._heap
        frontier: list[tuple[_Entry, int]] = [(heap[0], 0)] if heap else []
        while frontier:
            entry, index = heapq.heappop(frontier)
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
            due, rank, sequence, job_id = entry
            if self._live.get(job_id) == (due, rank, sequence):
                yield due, job_id

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [(d, r, s, job_id) for job_id, (d, r, s) in self._live.items()]
            heapq.heapify(self._heap)
