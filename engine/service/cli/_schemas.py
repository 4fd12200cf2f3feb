"""``syncjob expr`` and ``schema``: expressions and schemas checked offline."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from engine.errors import SyncJobError
from engine.expressions import parse_expression
from engine.mapping import compile_schema
from engine.model import SynchronizationSchema, from_graph
from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client, DaemonError
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
    _, parsed = checked_schema(file)
    rules = len(parsed.synchronization_rules)
    mappings = sum(len(r.object_mappings) for r in parsed.synchronization_rules)
    click.echo(f"{file}: valid ({rules} rule(s), {mappings} object mapping(s))")


def checked_schema(file: Path) -> tuple[dict[str, Any], SynchronizationSchema]:
    """The file's JSON and the schema it holds, checked as the engine checks one before
    storing it; a problem is a ClickException (exit 1) naming the file and the place."""
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
        parsed = from_graph(body, SynchronizationSchema)
        validate_schema(parsed)
        compile_schema(parsed, regex_seconds=1.0)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: not JSON: {exc}") from None
    except SyncJobError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    return body, parsed


def _fetch(client: Client, path: str) -> dict[str, Any]:
    """The schema at ``path`` as the daemon has it, without the OData annotations (a file
    to edit)."""
    found = client.request("GET", path) or {}
    return {k: v for k, v in found.items() if not k.startswith("@odata")}


@schema.command("get")
@click.argument("job")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write it to this file instead of standard output.",
)
@daemon_options
def schema_get(job: str, out: Path | None, url: str, token: str | None, app: str | None) -> None:
    """JOB's synchronizationSchema as JSON (what `schema put` takes back)."""

    def action(client: Client) -> None:
        path = f"{client.job_path(app, job)}/schema"
        text = json.dumps(_fetch(client, path), indent=2) + "\n"
        if out is None:
            click.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            click.echo(f"wrote {out}", err=True)

    call_daemon(url, token, action)


@schema.command("put")
@click.argument("job")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@daemon_options
def schema_put(job: str, file: Path, url: str, token: str | None, app: str | None) -> None:
    """Check FILE as `schema validate` does, then replace JOB's schema with it (a changed
    schema makes the next cycle a full read, as in Entra)."""
    body, _ = checked_schema(file)

    def action(client: Client) -> None:
        path = f"{client.job_path(app, job)}/schema"
        client.request("PUT", path, body)
        click.echo(_saved(job, _fetch(client, path)))

    call_daemon(url, token, action)


@schema.command("edit")
@click.argument("job")
@daemon_options
def schema_edit(job: str, url: str, token: str | None, app: str | None) -> None:
    """Open JOB's schema in $EDITOR; once saved and closed, check it as `schema validate`
    does and put it. An invalid edit is refused with the problem, and the edited file is
    kept (its path is printed) so the work is not lost."""

    def action(client: Client) -> None:
        where = f"{client.job_path(app, job)}/schema"
        before = json.dumps(_fetch(client, where), indent=2) + "\n"
        fd, name = tempfile.mkstemp(prefix=f"syncjob-schema-{_safe(job)}-", suffix=".json")
        path = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(before)
        click.edit(filename=str(path))
        if path.read_text(encoding="utf-8") == before:
            path.unlink()
            click.echo("no change")
            return
        try:
            body, _ = checked_schema(path)
        except click.ClickException as exc:
            click.echo(f"syncjob schema edit: {exc.message}", err=True)
            click.echo(f"nothing saved; the edited schema is kept in {path}", err=True)
            raise SystemExit(1) from None
        try:
            client.request("PUT", where, body)
        except DaemonError:
            click.echo(f"nothing saved; the edited schema is kept in {path}", err=True)
            raise
        path.unlink()
        click.echo(_saved(job, _fetch(client, where)))

    call_daemon(url, token, action)


def _saved(job: str, schema: dict[str, Any]) -> str:
    version = schema.get("version")
    return f"schema of {job} saved" + (f" (version {version})" if version else "")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:60]
