"""The ``syncjob`` command line."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from connectors.base import Scalar, as_list
from connectors.memory import MemoryDirectory
from engine.errors import ConfigurationError, ConnectorError, SyncJobError
from engine.expressions import parse_expression
from engine.jobs import SyncEngine
from engine.lifecycle import is_runnable
from engine.logs import configure_logging
from engine.mapping import compile_schema
from engine.model import (
    RestartScope,
    SynchronizationSchema,
    TaskExecutionResult,
    from_graph,
    to_graph,
)
from engine.service.client import DEFAULT_URL, TOKEN_ENV, URL_ENV, Client, DaemonError, Unreachable
from engine.service.progress_bar import ProgressBar
from engine.service.serve import load_config
from engine.service.serve import serve as run_server
from engine.store.inspect import StateFileError, read_jobs
from engine.validation import validate_schema

DEPARTMENTS = ("Engineering", "Sales", "Finance", "Support", "Research")


def demo_directory(users: int, seed: int = 7) -> MemoryDirectory:
    """A source with ``users`` people and one group per department."""
    rng = random.Random(seed)
    source = MemoryDirectory()
    members: dict[str, list[Scalar]] = {name: [] for name in DEPARTMENTS}
    for n in range(users):
        given = rng.choice(["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances"])
        surname = rng.choice(["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth"])
        source.put(
            "User",
            f"src-{n:06d}",
            {
                "userName": f"{given}.{surname}.{n}@example.org".lower(),
                "displayName": f"{given} {surname}",
                "givenName": given,
                "surname": surname,
                "mail": f"{given}.{surname}.{n}@example.org".lower(),
                "department": (department := rng.choice(DEPARTMENTS)),
                "employeeId": str(100000 + n),
                # references hold source anchors; the engine maps them to target ids
                "manager": f"src-{n // 10 * 10:06d}" if n % 10 else None,
            },
        )
        members[department].append(f"src-{n:06d}")
    for name in DEPARTMENTS:
        source.put("Group", f"grp-{name.lower()}", {"displayName": name, "members": members[name]})
    return source


@click.group()
@click.version_option(package_name="syncjob", prog_name="syncjob")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """syncjob: directory synchronization jobs with Microsoft Graph's job model."""
    configure_logging(log_level, force=True)
    ctx.obj = {"log_level": log_level}


@main.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port.  [default: 8080]")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite state file, created with mode 0600.  [default: ./syncjob.db]",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file: host, port, state, tokens, workers, log_format.",
)
@click.option("--workers", type=click.IntRange(1, 64), help="Cycles run at once.  [default: 2]")
@click.option("--log-format", type=click.Choice(["console", "json"]), help="[default: console]")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    state: Path | None,
    config_path: Path | None,
    workers: int | None,
    log_format: str | None,
) -> None:
    """Serve Graph's synchronization API and run due jobs' cycles, until SIGTERM.

    Bearer tokens: the config file's ``tokens`` and SYNCJOB_API_TOKENS (comma-separated); with
    none, the first start generates one and prints it once to stderr.
    """
    overrides = {
        "host": host,
        "port": port,
        "state": state,
        "workers": workers,
        "log_format": log_format,
    }
    try:
        config = load_config(config_path, overrides, os.environ)
        run_server(config, log_level=ctx.obj["log_level"])
    except ConfigurationError as exc:
        click.echo(f"syncjob serve: {exc}", err=True)
        raise SystemExit(2) from None


@main.command()
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("demo-state/syncjob.sqlite"),
    show_default=True,
    help="SQLite state file (created if missing).",
)
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
def demo(state: Path, users: int) -> None:
    """Run the demo job: memory source -> memory target, SQLite state."""
    state.parent.mkdir(parents=True, exist_ok=True)
    source, target = demo_directory(users), MemoryDirectory()
    with SyncEngine(state) as engine:
        for old in engine.list_jobs():  # earlier demo runs: their in-memory directories are gone
            if old.template_id == "memoryToMemory" and old.id:
                engine.delete_job(old.id)
        job = engine.create_job("memoryToMemory", source, target, schedule="PT40M")
        assert job.id is not None
        engine.start(job.id)
        click.echo(f"job {job.id} started (state in {state})")
        first = engine.run_cycle(job.id)
        click.echo(
            f"initial cycle: imported {first.count_imported}, "
            f"exported {first.count_exported}, escrowed {first.count_escrowed}"
        )
        source.put(
            "User",
            "src-000000",
            {**(source.get("User", "src-000000") or {}), "department": "Management"},
        )
        source.remove("User", "src-000001")
        for anchor, group in source.list("Group").items():  # the source drops the membership
            kept = [m for m in as_list(group.get("members")) if m != "src-000001"]
            if len(kept) < len(as_list(group.get("members"))):
                source.put("Group", anchor, {**group, "members": kept})
        second = engine.run_cycle(job.id)
        click.echo(
            f"incremental cycle: imported {second.count_imported}, exported {second.count_exported}"
        )
        for record in engine.provisioning_logs(job.id, second.activity_identifier):
            click.echo(
                f"  {record.action:<7} {record.anchor} -> {record.target_ref} "
                f"[{', '.join(record.attributes)}] {record.status}"
            )
        status = engine.get_job(job.id).status
        assert status is not None
        managed = sum(1 for user in target.list("User").values() if user.get("manager"))
        members = sum(len(as_list(group.get("members"))) for group in target.list("Group").values())
        click.echo(
            f"status: {status.code.value}; target holds {len(target.list('User'))} users "
            f"({managed} with a manager), {len(target.list('Group'))} groups "
            f"({members} memberships)"
        )


@main.group(invoke_without_command=True)
@click.option(
    "--state",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SQLite state file: list its jobs as Graph JSON (opened read-only, no daemon).",
)
@click.pass_context
def jobs(ctx: click.Context, state: Path | None) -> None:
    """Jobs: of a running daemon (the subcommands), or of a state file (--state)."""
    if ctx.invoked_subcommand is not None:
        return
    if state is None:
        click.echo(ctx.get_help())
        raise SystemExit(2)
    try:
        found = read_jobs(state)
    except StateFileError as exc:
        click.echo(f"syncjob jobs: {exc}", err=True)
        raise SystemExit(1) from None
    value = [to_graph(job) for job in found]
    for job in value:
        job.pop("schema", None)
    click.echo(json.dumps({"value": value}, indent=2))


F = TypeVar("F", bound=Callable[..., Any])


def daemon_options(fn: F) -> F:
    """--url, --token and --app, for the commands that talk to a running daemon."""
    fn = click.option(
        "--app",
        help="The servicePrincipal's id.  [default: the first one, created if there is none]",
    )(fn)
    fn = click.option(
        "--token",
        envvar=TOKEN_ENV,
        show_envvar=True,
        help="The API's bearer token (never printed).",
    )(fn)
    return click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="The daemon's base URL.",
    )(fn)


def call_daemon(url: str, token: str | None, action: Callable[[Client], None]) -> None:
    """Run ``action``; the daemon's refusal is "code: message" (exit 1), no answer exit 2."""
    client = Client(url, token)
    try:
        action(client)
    except DaemonError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    except Unreachable as exc:
        click.echo(f"syncjob: {exc}", err=True)
        raise SystemExit(2) from None
    finally:
        client.close()


@jobs.command("list")
@daemon_options
def jobs_list(url: str, token: str | None, app: str | None) -> None:
    """List the application's jobs: id, template and status, one a line."""

    def action(client: Client) -> None:
        for job in client.request("GET", client.jobs_path(app))["value"]:
            code = (job.get("status") or {}).get("code", "")
            click.echo(f"{job['id']}\t{job.get('templateId') or ''}\t{code}")

    call_daemon(url, token, action)


@jobs.command("show")
@click.argument("job")
@daemon_options
def jobs_show(job: str, url: str, token: str | None, app: str | None) -> None:
    """Show JOB as Graph JSON (without its schema)."""

    def action(client: Client) -> None:
        found = client.request("GET", f"{client.jobs_path(app)}/{job}")
        found.pop("schema", None)
        click.echo(json.dumps(found, indent=2))

    call_daemon(url, token, action)


@jobs.command("create")
@click.argument("template")
@daemon_options
def jobs_create(template: str, url: str, token: str | None, app: str | None) -> None:
    """Create a job from TEMPLATE (e.g. memoryToMemory); prints the new job's id."""

    def action(client: Client) -> None:
        made = client.request("POST", client.jobs_path(app), {"templateId": template})
        click.echo(made["id"])

    call_daemon(url, token, action)


def _job_action(verb: str, done: str) -> Callable[[str, str, str | None, str | None], None]:
    def command(job: str, url: str, token: str | None, app: str | None) -> None:
        def action(client: Client) -> None:
            client.request("POST", f"{client.jobs_path(app)}/{job}/{verb}")
            click.echo(f"job {job} {done}")

        call_daemon(url, token, action)

    command.__doc__ = f"{verb.capitalize()} JOB."
    return command


jobs.command("start")(click.argument("job")(daemon_options(_job_action("start", "started"))))
jobs.command("pause")(click.argument("job")(daemon_options(_job_action("pause", "paused"))))


@jobs.command("restart")
@click.argument("job")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in RestartScope]),
    help="What to reset (repeatable), e.g. Watermark, Escrows, Full.",
)
@daemon_options
def jobs_restart(
    job: str, scopes: tuple[str, ...], url: str, token: str | None, app: str | None
) -> None:
    """Restart JOB, resetting what --scope names."""

    def action(client: Client) -> None:
        body = {"criteria": {"resetScope": ", ".join(scopes)}} if scopes else None
        client.request("POST", f"{client.jobs_path(app)}/{job}/restart", body)
        click.echo(f"job {job} restarted")

    call_daemon(url, token, action)


@jobs.command("delete")
@click.argument("job")
@daemon_options
def jobs_delete(job: str, url: str, token: str | None, app: str | None) -> None:
    """Delete JOB."""

    def action(client: Client) -> None:
        client.request("DELETE", f"{client.jobs_path(app)}/{job}")
        click.echo(f"job {job} deleted")

    call_daemon(url, token, action)


@main.group()
def secrets() -> None:
    """The application's secrets on a running daemon (values are never shown)."""


@secrets.command("set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@daemon_options
def secrets_set(pairs: tuple[str, ...], url: str, token: str | None, app: str | None) -> None:
    """Set the application's secrets (replacing them all) from KEY=VALUE pairs."""
    values: dict[str, str] = {}
    for n, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key:  # the argument is not echoed: it may hold a secret
            raise click.BadParameter(f"argument {n} is not KEY=VALUE", param_hint="KEY=VALUE")
        values[key] = value

    def action(client: Client) -> None:
        path = f"/servicePrincipals/{client.application(app)}/synchronization/secrets"
        body = {"value": [{"key": k, "value": v} for k, v in values.items()]}
        client.request("PUT", path, body)
        click.echo(f"set {len(values)} secret(s): {', '.join(values)}")

    call_daemon(url, token, action)


def _quoted(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


@main.command()
@click.argument("job")
@click.option("--action", help="Only this provisioningAction (create, update, delete, ...).")
@click.option("--status", help="Only this status (success, failure, skipped, ...).")
@click.option(
    "--top", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest N records."
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as Graph JSON.")
@daemon_options
def logs(
    job: str,
    action: str | None,
    status: str | None,
    top: int,
    as_json: bool,
    url: str,
    token: str | None,
    app: str | None,
) -> None:
    """JOB's provisioning logs (GET /beta/auditLogs/provisioning), newest first."""
    clauses = [f"jobId eq {_quoted(job)}"]
    if action:
        clauses.append(f"provisioningAction eq {_quoted(action)}")
    if status:
        clauses.append(f"provisioningStatusInfo/status eq {_quoted(status)}")
    params = {"$filter": " and ".join(clauses), "$top": str(top)}

    def run(client: Client) -> None:
        found = client.request("GET", "/auditLogs/provisioning", params=params, version="beta")
        records = found["value"]
        if as_json:
            click.echo(json.dumps(records, indent=2))
            return
        for r in records:
            info = r.get("provisioningStatusInfo") or {}
            error = info.get("errorInformation") or {}
            source = (r.get("sourceIdentity") or {}).get("id") or ""
            target = (r.get("targetIdentity") or {}).get("id") or ""
            line = (
                f"{r.get('activityDateTime')}\t{r.get('provisioningAction')}\t"
                f"{info.get('status')}\t{source} -> {target}"
            )
            if error.get("reason"):
                line += f"\t{error.get('errorCode') or ''}: {error['reason']}"
            click.echo(line)
        if not records:
            click.echo(f"no provisioning records for job {job}", err=True)

    call_daemon(url, token, run)


@main.command()
@click.argument("job")
@daemon_options
def validate(job: str, url: str, token: str | None, app: str | None) -> None:
    """Check JOB's saved credentials against its source and target (validateCredentials)."""

    def run(client: Client) -> None:
        path = f"{client.jobs_path(app)}/{job}/validateCredentials"
        client.request("POST", path, {"useSavedCredentials": True, "credentials": []})
        click.echo("OK")

    call_daemon(url, token, run)


@main.command()
@click.argument("job")
@click.argument("directory")
@daemon_options
def discover(job: str, directory: str, url: str, token: str | None, app: str | None) -> None:
    """Read DIRECTORY's schema from the live directory into JOB's schema (Graph's discover).

    DIRECTORY is a directory definition's id or name in JOB's schema. Discovery only adds
    attributes; the attributes per object type are counted on output.
    """

    def run(client: Client) -> None:
        path = f"{client.jobs_path(app)}/{job}/schema/directories/{directory}/discover"
        found = client.request("POST", path) or {}
        for obj in found.get("objects") or []:
            click.echo(f"{obj.get('name')}\t{len(obj.get('attributes') or [])} attributes")
        click.echo(f"version {found.get('version')}, discovered {found.get('discoveryDateTime')}")

    call_daemon(url, token, run)


@main.command("run")
@click.argument("job")
@click.option(
    "--state",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The SQLite state file that holds JOB (no daemon may run it meanwhile).",
)
@click.option("--once", is_flag=True, required=True, help="Run one cycle, then exit.")
@click.option("--start", "start_job", is_flag=True, help="Start JOB first if it is not started.")
def run_job(job: str, state: Path, once: bool, start_job: bool) -> None:
    """Run one cycle of a template-built JOB in the foreground, without a daemon.

    The source and target come from the template and the application's saved secrets. A
    progress bar follows the page checkpoints (a line per checkpoint when the output is not
    a terminal), then the cycle's counts are printed; a failed cycle exits 1.
    """
    out = sys.stdout
    bar = ProgressBar(out, redraw=out.isatty())
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        interrupted.set()  # a second Ctrl-C is the default's: the state file is crash-safe
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with SyncEngine(state) as engine:
            status = engine.get_job(job).status
            if start_job and status is not None and not is_runnable(status.code):
                engine.start(job)
            execution = engine.run_cycle(job, stop=interrupted.is_set, progress=bar)
    except (SyncJobError, ConnectorError) as exc:
        bar.close()
        click.echo(f"syncjob run: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    if interrupted.is_set():
        click.echo("interrupted: the cycle stopped at a checkpoint; the next run resumes it")
    result = execution.state.value if execution.state else "Unknown"
    click.echo(
        f"{result}: imported {execution.count_imported}, exported {execution.count_exported}, "
        f"escrowed {execution.count_escrowed}"
    )
    if execution.state == TaskExecutionResult.FAILED:
        error = execution.error
        click.echo(f"syncjob run: the cycle failed: {error.message if error else ''}", err=True)
        raise SystemExit(1)


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


if __name__ == "__main__":  # pragma: no cover
    main()
