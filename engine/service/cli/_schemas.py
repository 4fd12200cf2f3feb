"""``syncjob expr`` and ``schema``: expressions and schemas checked offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.errors import SyncJobError
from engine.expressions import parse_expression
from engine.mapping import compile_schema
from engine.model import SynchronizationSchema, from_graph
from engine.service.cli._root import main
from engine.validation import validate_schema


@main.command()
@click.argument("expression")
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input attribute; repeat a name for a multi-valued attribute.",
)
@click.option("--json", "as_json", is_flag=True, help="Print Graph's parseExpressionResponse.")
def expr(expression: str, attributes: tuple[str, ...], as_json: bool) -> None:
    """Parse and evaluate an attribute-mapping expression, as Graph's parseExpression does."""
    inputs: dict[str, list[str]] = {}
    for item in attributes:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--attr")
        inputs.setdefault(name, []).append(value)
    flat = {k: (v[0] if len(v) == 1 else v) for k, v in inputs.items()}
    result = parse_expression(expression, flat)
    if as_json:
        click.echo(json.dumps(result.to_graph(), indent=2))
    elif result.error is not None:
        stage = "parse error" if not result.parsing_succeeded else "evaluation error"
        click.echo(f"{stage}: {result.error}", err=True)
    else:
        values = result.evaluation_result or []
        click.echo(values[0] if len(values) == 1 else json.dumps(values))
    if result.error is not None:
        raise SystemExit(1)


@main.group()
def schema() -> None:
    """Synchronization schemas (Graph's synchronizationSchema JSON)."""


@schema.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def schema_validate(file: Path) -> None:
    """Check a schema file as the engine checks one before storing it: Graph's JSON shape,
    names, keys, every expression parsed and every mapping compiled. Exit 1 on the first
    problem, named by its place in the file."""
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
        parsed = from_graph(body, SynchronizationSchema)
        validate_schema(parsed)
        compile_schema(parsed, regex_seconds=1.0)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: not JSON: {exc}") from None
    except SyncJobError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    rules = len(parsed.synchronization_rules)
    mappings = sum(len(r.object_mappings) for r in parsed.synchronization_rules)
    click.echo(f"{file}: valid ({rules} rule(s), {mappings} object mapping(s))")
