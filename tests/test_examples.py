"""The examples run, so they cannot rot."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_embedded_example_runs() -> None:
    """examples/embedded.py syncs, skips unchanged objects and flows a delta."""
    result = runpy.run_path(str(EXAMPLES / "embedded.py"))["main"]()
    assert {"created": 20, "updated": 1, "target_users": 20, "status": "Active"} == result


def _passes_under_pytest(test_file: Path, expected: int) -> None:
    """``test_file`` run by pytest in a process of its own, as its reader would run it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    assert f"{expected} passed" in done.stdout.splitlines()[-1], done.stdout


def test_unit_test_example_passes() -> None:
    """examples/in_unit_tests.py passes under pytest."""
    _passes_under_pytest(EXAMPLES / "in_unit_tests.py", 2)


def test_connector_example_passes_the_contract() -> None:
    """examples/json_directory passes the whole connector contract through connectors.testing."""
    _passes_under_pytest(EXAMPLES / "json_directory" / "test_json_directory.py", 17)
