"""README "Embedding": the engine is a quiet library. Embedded in a process that configures no
logging, a cycle that escrows an object (a warning) prints nothing; a host that calls
``logging.basicConfig`` gets the engine's records, with the job and cycle in the message and
as the record's attributes. Each case runs in a fresh interpreter: logging is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_PROGRAM = """
import logging, sys
{setup}
from engine import SyncEngine
from engine.clock import ManualClock
from connectors.memory import MemoryDirectory
from datetime import datetime, timezone

source, target = MemoryDirectory(), MemoryDirectory()
for n in range(2):
    source.put("User", f"s{{n:06d}}", {{"userName": f"user{{n}}@example.org",
        "displayName": f"User {{n}}", "mail": f"user{{n}}@example.org", "department": "Sales",
        "active": True}})
target.fail_object("User", "user1@example.org", times=1)
clock = ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
with SyncEngine(sys.argv[1], clock) as engine:
    job = engine.create_job("memoryToMemory", source, target)
    engine.start(job.id)
    run = engine.run_cycle(job.id)
    assert run.count_escrowed == 1, run
    print(job.id, run.activity_identifier)
"""

_RECORDS = """
class Keep(logging.Handler):
    def emit(self, record):
        print(json.dumps({"logger": record.name, "level": record.levelname,
            "message": record.getMessage(), "job_id": getattr(record, "job_id", None),
            "cycle_id": getattr(record, "cycle_id", None),
            "anchor": getattr(record, "anchor", None)}), file=sys.stderr)
import json
logging.basicConfig(level=logging.INFO, handlers=[Keep()])
"""


def _run(tmp_path: Path, setup: str) -> subprocess.CompletedProcess[str]:
    program = _PROGRAM.format(setup=textwrap.dedent(setup))
    return subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "state.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )


def test_an_embedded_engine_prints_nothing(tmp_path: Path) -> None:
    done = _run(tmp_path, "")
    assert 0 == done.returncode, done.stderr
    assert "" == done.stderr  # the escrow's warning included
    assert 2 == len(done.stdout.split()), done.stdout  # only what the program printed itself


@pytest.mark.parametrize("setup", ["logging.basicConfig(level=logging.INFO)", _RECORDS])
def test_a_host_that_configures_logging_gets_the_records(tmp_path: Path, setup: str) -> None:
    done = _run(tmp_path, setup)
    assert 0 == done.returncode, done.stderr
    job_id, cycle_id = done.stdout.split()
    if setup != _RECORDS:  # basicConfig's format: LEVEL:logger:message, the fields in it
        line = next(x for x in done.stderr.splitlines() if "object_escrowed" in x)
        assert line.startswith("WARNING:syncjob.cycle:object_escrowed ")
        assert f"job_id={job_id}" in line and f"cycle_id={cycle_id}" in line
        assert "anchor=s000001" in line
        return
    records = [json.loads(x) for x in done.stderr.splitlines()]
    escrowed = [r for r in records if r["message"].startswith("object_escrowed")]
    assert [("syncjob.cycle", "WARNING", job_id, cycle_id, "s000001")] == [
        (r["logger"], r["level"], r["job_id"], r["cycle_id"], r["anchor"]) for r in escrowed
    ]
    started = [r for r in records if r["message"].startswith("cycle_started")]
    assert [(job_id, cycle_id)] == [(r["job_id"], r["cycle_id"]) for r in started]
