"""The syncjob command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main


def test_demo_runs_and_state_lists(tmp_path: Path) -> None:
    """`syncjob demo` syncs the demo directory; `syncjob jobs` lists the job from its state."""
    state = tmp_path / "demo.sqlite"
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--state", str(state), "--users", "50"])
    assert 0 == result.exit_code, result.output
    assert "initial cycle: imported 55, exported 55" in result.output
    assert "incremental cycle: imported 3, exported 3" in result.output
    assert "target holds 49 users (44 with a manager), 5 groups (49 memberships)" in result.output
    listed = runner.invoke(main, ["jobs", "--state", str(state)])
    assert 0 == listed.exit_code, listed.output
    jobs = json.loads(listed.output)["value"]
    assert "Active" == jobs[0]["status"]["code"]
    assert "PT40M" == jobs[0]["schedule"]["interval"]


def test_bad_arguments_are_clear(tmp_path: Path) -> None:
    """A missing state file is a usage error, not a traceback."""
    result = CliRunner().invoke(main, ["jobs", "--state", str(tmp_path / "missing.db")])
    assert 2 == result.exit_code
    assert "does not exist" in result.output


def test_expr_prints_the_result() -> None:
    """`syncjob expr` evaluates an expression against --attr inputs."""
    result = CliRunner().invoke(
        main,
        [
            "expr",
            'Join(" ", [givenName], [sn])',
            "--attr",
            "givenName=Ada",
            "--attr",
            "sn=Lovelace",
        ],
    )
    assert 0 == result.exit_code, result.output
    assert "Ada Lovelace\n" == result.output


def test_expr_multi_valued_and_json() -> None:
    """Repeated --attr makes a multi-valued input; --json prints Graph's response body."""
    result = CliRunner().invoke(main, ["expr", 'Join("|", [p])', "--attr", "p=a", "--attr", "p=b"])
    assert "a|b\n" == result.output
    result = CliRunner().invoke(main, ["expr", "--json", "ToUpper([x])", "--attr", "x=a"])
    body = json.loads(result.output)
    assert body["parsingSucceeded"] and ["A"] == body["evaluationResult"]
    assert "ToUpper" == body["parsedExpression"]["name"]


def test_expr_reports_parse_errors_with_position() -> None:
    """A parse error is printed with its position and exits non-zero."""
    result = CliRunner().invoke(main, ["expr", 'Join(" ", [a] [b])'])
    assert 1 == result.exit_code
    assert "parse error: syntax error at position 15" in result.output
    result = CliRunner().invoke(main, ["expr", "X()", "--attr", "novalue"])
    assert 2 == result.exit_code and "NAME=VALUE" in result.output
