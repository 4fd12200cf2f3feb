"""The house rules of the code base (issue #16): short classes, packages that say what they
hold and what they may import, one parse of the job's settings per cycle, a version that
`syncjob --version` prints. The import layers themselves are import-linter's contracts in
pyproject.toml (``lint-imports``, run by ./dev test)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.memory import MemoryDirectory
from engine import ManualClock, SyncEngine
from engine.service.cli import main
from engine.settings import JobSettings
from tests.conftest import fill

ROOT = Path(__file__).parents[1]
MAX_CLASS_LINES = 400


def _classes() -> list[tuple[int, str]]:
    found = []
    for package in ("engine", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    found.append((size, f"{path.relative_to(ROOT)}:{node.name}"))
    return found


def test_no_class_is_over_400_lines() -> None:
    """SyncEngine is a facade over parts with one job each; no class grows past a screenful
    of screens again."""
    too_long = [(size, name) for size, name in _classes() if size > MAX_CLASS_LINES]
    assert not too_long, too_long


def test_sync_engine_is_thin() -> None:
    """The facade delegates: no method of SyncEngine is longer than a few lines of its own."""
    source = (ROOT / "engine/jobs/_engine.py").read_text(encoding="utf-8")
    engine_class = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "SyncEngine"
    )
    for node in engine_class.body:
        if isinstance(node, ast.FunctionDef) and node.name not in {"__init__", "run_pending"}:
            body = [n for n in node.body if not isinstance(n, ast.Expr)]  # not the docstring
            assert len(body) <= 2, f"SyncEngine.{node.name} does work of its own"


@pytest.mark.parametrize(
    "package",
    sorted(
        str(p.parent.relative_to(ROOT))
        for p in (ROOT / "engine").rglob("__init__.py")
        if p.parent != ROOT / "engine"
    ),
)
def test_every_engine_package_says_what_it_holds_and_may_import(package: str) -> None:
    """Each package's docstring is its entry in the map: what lives there, what it may import."""
    docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert docstring, package
    assert "may import" in docstring or "imports" in docstring, package


def test_a_cycle_parses_the_job_settings_once(
    clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings are parsed once per cycle and handed down: not again to compile the mappings
    (a new engine on the same store has none compiled) nor to count the linked entries."""
    source, target = MemoryDirectory(), MemoryDirectory()
    fill(source, 5)
    engine = SyncEngine(tmp_path / "state.db", clock)
    job = engine.create_job("memoryToMemory", source, target)
    engine.start(job.id)
    engine.close()
    engine = SyncEngine(tmp_path / "state.db", clock)  # nothing compiled, nothing cached
    engine.attach(job.id, source, target)
    parsed: list[Any] = []
    original = JobSettings.parse.__func__  # type: ignore[attr-defined]

    def counted(cls: type[JobSettings], *args: Any, **kwargs: Any) -> JobSettings:
        parsed.append(args)
        return original(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(JobSettings, "parse", classmethod(counted))
    execution = engine.run_cycle(job.id)
    assert execution.count_exported == 5
    assert len(parsed) == 1
    engine.run_cycle(job.id)
    assert len(parsed) == 2
    engine.close()


def test_version_is_the_packages() -> None:
    """`syncjob --version` prints the version pyproject.toml gives (CHANGELOG.md's newest)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    answer = CliRunner().invoke(main, ["--version"])
    assert answer.exit_code == 0
    assert answer.output.strip() == f"syncjob, version {version}"
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()
    module = subprocess.run(
        [sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, check=True
    )
    assert version in module.stdout


def test_every_public_method_of_sync_engine_says_why() -> None:
    """SyncEngine is the API embedders read: every public method and property has a docstring
    saying what it is for (README "Embedding" is the overview, help() the reference)."""
    missing = [
        name
        for name, member in vars(SyncEngine).items()
        if not name.startswith("_")
        and callable(getattr(member, "fget", member))
        and not (getattr(member, "fget", member).__doc__ or "").strip()
    ]
    assert not missing, f"SyncEngine members without a docstring: {missing}"
