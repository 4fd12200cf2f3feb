"""One synchronization cycle and its parts: the I/O layer between the pure core and a job.

What lives here: ``_cycle`` (a cycle: settle intents, pages in windows, reconciliation, escrow
retries, references, deletes; provision on demand), ``_context`` (the cycle's context,
counters and progress report), ``_objects`` (plan, then write, a batch), ``_references``,
``_concurrent`` (overlapping target writes), ``_deletes`` (staged deletes and the threshold),
``_recovery`` (write-ahead intents a crash left), ``_restore`` (an operator takes back a staged
delete), ``_status`` (what a finished cycle does to
Graph's status; pure).

What it may import: the pure core (``engine.mapping``, ``engine.model``, ``engine.settings``,
...), ``engine.store`` and ``connectors.base``; never ``engine.jobs`` or ``engine.service``.
"""

from engine.cycle._context import Counters, CycleContext, CycleOutcome, CycleProgress
from engine.cycle._cycle import provision_one, run
from engine.cycle._restore import Restored, restore_one
from engine.cycle._status import after_cycle, execution_of

__all__ = [
    "Counters",
    "CycleContext",
    "CycleOutcome",
    "CycleProgress",
    "Restored",
    "after_cycle",
    "execution_of",
    "provision_one",
    "restore_one",
    "run",
]
