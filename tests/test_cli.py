"""The syncjob command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine import to_graph
from engine.service.cli import main
from engine.templates import builtin_templates


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


def test_schema_validate_checks_a_file_as_the_engine_would(tmp_path: Path) -> None:
    """A template's schema is valid; an expression that does not parse, an unknown field or a
    file that is not JSON is refused with its place named, exit code 1."""
    good = to_graph(builtin_templates()["ldapToScim"].schema)
    (tmp_path / "good.json").write_text(json.dumps(good))
    runner = CliRunner()
    result = runner.invoke(main, ["schema", "validate", str(tmp_path / "good.json")])
    assert result.exit_code == 0 and "valid (1 rule(s), 2 object mapping(s))" in result.output
    mappings = good["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    mappings[1]["source"] = {"type": "Function", "expression": "Join(, [sn]"}
    (tmp_path / "bad.json").write_text(json.dumps(good))
    result = runner.invoke(main, ["schema", "validate", str(tmp_path / "bad.json")])
    assert result.exit_code == 1 and "attributeMappings[1]" in result.output
    (tmp_path / "odd.json").write_text(json.dumps({"directories": [], "colour": "blue"}))
    result = runner.invoke(main, ["schema", "validate", str(tmp_path / "odd.json")])
    assert result.exit_code == 1 and "colour" in result.output
    (tmp_path / "text.json").write_text("not json")
    result = runner.invoke(main, ["schema", "validate", str(tmp_path / "text.json")])
    assert result.exit_code == 1 and "not JSON" in result.output


def test_python_dash_m_knows_every_command() -> None:
    """``python -m engine`` registers every command before it runs (a command defined
    below the ``__main__`` guard would exist for ``syncjob`` but not for ``-m``)."""
    answer = subprocess.run(
        [sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, check=True
    )
    listed = {
        line.split()[0] for line in answer.stdout.split("Commands:")[1].splitlines() if line.strip()
    }
    assert listed == set(main.commands)
