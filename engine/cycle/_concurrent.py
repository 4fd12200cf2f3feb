"""Concurrent export: a batch's target writes overlap on a bounded pool of threads.

A remote target answers each write after a round trip; one at a time, the engine waits for
every one. With ``ExportConcurrency`` n > 1, n workers take the batch's objects in turn. The
engine's own state (the checkpoint being built, counters, the per-mapping state) stays
single-threaded: every worker holds one lock while it runs engine code and lets go of it only
for the duration of a target call (``_Unlocked``), so what overlaps is exactly the waiting.

What keeps the rules true:

- the batch's intents are durable before any worker starts, and the caller commits the
  checkpoint only after every worker has finished (or the batch failed): a crash in between
  is the crash of a sequential batch, settled the same way (ARCHITECTURE rule 2);
- an object is written by one worker from start to end, so its operations keep their order;
- two objects of one batch that would be matched by the same value (two creates of one user)
  are never in flight together: the second waits for a sequential pass after the pool, where
  it finds the first one's object; an object that refers to an earlier object of the batch
  still being created waits the same way, so its reference resolves as in a sequential page;
- the provisioning log keeps the page's order (records are put back in it after the pool);
- an error that ends the cycle (unreachable, a lost lease, a pause) stops the other workers
  at their next object and is raised once they have stopped;
- a Retry-After is waited out without the lock, and sets a back-off gate that holds every
  worker's next target call until it has passed: one throttled answer costs the batch one
  window, not one window per worker that was in flight (nor every worker stalled behind it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

from connectors.base import Target

T = TypeVar("T")


class _Unlocked:
    """The target as the workers call it: the engine lock is released for the call, and the
    call waits at the back-off gate first (``hold_off``: a Retry-After another worker got)."""

    def __init__(self, target: Target, lock: threading.Lock, hold_off: Callable[[], None]) -> None:
        self._target = target
        self._lock = lock
        self._hold_off = hold_off
        self.capabilities = target.capabilities

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._lock.release()
        try:
            self._hold_off()
            return method(*args, **kwargs)
        finally:
            self._lock.acquire()

    def outside_lock(self, wait: Callable[..., T], *args: Any) -> T:
        """``wait`` (a retry's sleep) without the engine lock: the other workers go on."""
        self._lock.release()
        try:
            return wait(*args)
        finally:
            self._lock.acquire()

    def find(self, *args: Any) -> Any:
        return self._call(self._target.find, *args)

    def create(self, *args: Any) -> Any:
        return self._call(self._target.create, *args)

    def update(self, *args: Any) -> Any:
        return self._call(self._target.update, *args)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._target.delete, *args, **kwargs)

    def validate(self) -> None:
        self._call(self._target.validate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def run(
    holder: Any,
    count: int,
    workers: int,
    write_one: Callable[[int], None],
    claims: Callable[[int], Sequence[Hashable]],
    after: Callable[[int], Sequence[int]],
) -> None:
    """``write_one(i)`` for i in range(count) on ``workers`` threads; ``holder.target`` is the
    target the engine code calls (swapped for the unlocked one meanwhile); ``claims(i)`` are
    the matching keys object i may create under, none of which two workers hold at once;
    ``after(i)`` are earlier objects object i refers to: if one is not written yet, i waits
    for the sequential pass, so it resolves the reference as a sequential page would;
    ``holder.hold_off()`` is the back-off gate every target call waits at."""
    lock = threading.Lock()
    order: Iterator[int] = iter(range(count))
    deferred: list[int] = []
    held: set[Hashable] = set()
    done: set[int] = set()
    failures: list[BaseException] = []

    def work() -> None:
        lock.acquire()
        try:
            for index in order:  # the iterator is shared; advanced only under the lock
                if failures:
                    return
                keys = claims(index)
                if any(key in held for key in keys) or any(j not in done for j in after(index)):
                    deferred.append(index)
                    continue
                held.update(keys)
                try:
                    write_one(index)
                finally:
                    held.difference_update(keys)
                    done.add(index)
        except BaseException as exc:  # ends the cycle: the others stop at their next object
            failures.append(exc)
        finally:
            lock.release()

    original = holder.target
    holder.target = _Unlocked(original, lock, holder.hold_off)
    try:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        holder.target = original
    if failures:
        raise failures[0]
    for index in sorted(deferred):
        write_one(index)
