"""``syncjob jobs``: a daemon's jobs, or a state file's read-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from engine.model import RestartScope, to_graph
from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client
from engine.store.inspect import StateFileError, read_jobs


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
