"""``syncjob jobs``: a daemon's jobs, or a state file's read-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.model import RestartScope, to_graph
from engine.service.cli._daemon import call_daemon, daemon_options, key_values
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
@click.option("--json", "as_json", is_flag=True, help="A JSON list, for scripts.")
@daemon_options
def jobs_list(as_json: bool, url: str, token: str | None, app: str | None) -> None:
    """Every application's jobs (--app: one application's), one a line: application, job,
    template, state, when the last cycle ended and its result, its counts (imported,
    exported, escrowed) and its error on one line."""

    def action(client: Client) -> None:
        if app:
            apps = [app]
        else:
            apps = [str(a["id"]) for a in client.request("GET", "/servicePrincipals")["value"]]
        found = [
            job_summary(one, job)
            for one in apps
            for job in client.request("GET", client.jobs_path(one))["value"]
        ]
        if as_json:
            click.echo(json.dumps(found, indent=2))
            return
        for job in found:
            click.echo(job_line(job))

    call_daemon(url, token, action)


def job_summary(application: str, job: dict[str, Any]) -> dict[str, Any]:
    """What ``jobs list`` shows of a job (Graph's synchronizationJob JSON)."""
    status = job.get("status") or {}
    last = status.get("lastExecution") or {}
    error = last.get("error") or (status.get("quarantine") or {}).get("error") or None
    if error is not None:
        error = {"code": error.get("code"), "message": error.get("message")}
    return {
        "application": application,
        "id": job.get("id"),
        "templateId": job.get("templateId"),
        "state": status.get("code"),
        "lastCycleEnded": last.get("timeEnded"),
        "lastCycleResult": last.get("state"),
        "imported": last.get("countImported", 0),
        "exported": last.get("countExported", 0),
        "escrowed": last.get("countEscrowed", 0),
        "quarantine": (status.get("quarantine") or {}).get("reason"),
        "error": error,
    }


def job_line(job: dict[str, Any]) -> str:
    """One job on one line, tab-separated; the error's message on one line (white space
    collapsed) and cut to _MESSAGE_WIDTH characters."""
    ended = job["lastCycleEnded"] or "never run"
    result = job["lastCycleResult"] or "-"
    counts = f"imported {job['imported']} exported {job['exported']} escrowed {job['escrowed']}"
    state = job["state"] or ""
    if job["quarantine"]:
        state += f" ({job['quarantine']})"
    fields = [job["application"], job["id"], job["templateId"] or "", state, ended, result, counts]
    if job["error"]:
        message = " ".join(str(job["error"]["message"] or "").split())
        if len(message) > _MESSAGE_WIDTH:
            message = message[: _MESSAGE_WIDTH - 1] + "…"
        fields.append(f"{job['error']['code']}: {message}")
    return "\t".join(fields)


_MESSAGE_WIDTH = 160


@jobs.command("show")
@click.argument("job")
@daemon_options
def jobs_show(job: str, url: str, token: str | None, app: str | None) -> None:
    """Show JOB as Graph JSON (without its schema)."""

    def action(client: Client) -> None:
        found = client.request("GET", f"{client.job_path(app, job)}")
        found.pop("schema", None)
        click.echo(json.dumps(found, indent=2))

    call_daemon(url, token, action)


@jobs.command("create")
@click.argument("template")
@click.option(
    "--interval",
    metavar="DURATION",
    help="The schedule's interval, ISO-8601 (e.g. PT20M).  [default: PT2M]",
)
@daemon_options
def jobs_create(
    template: str, interval: str | None, url: str, token: str | None, app: str | None
) -> None:
    """Create a job from TEMPLATE (e.g. ldapToScim); prints the new job's id."""

    def action(client: Client) -> None:
        body: dict[str, Any] = {"templateId": template}
        if interval is not None:
            body["schedule"] = {"interval": interval}
        made = client.request("POST", client.jobs_path(app), body)
        click.echo(made["id"])

    call_daemon(url, token, action)


@jobs.command("settings")
@click.argument("job")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
@daemon_options
def jobs_settings(
    job: str, pairs: tuple[str, ...], url: str, token: str | None, app: str | None
) -> None:
    """Show JOB's settings (synchronizationJobSettings), or change them: each KEY=VALUE is
    set, KEY= (empty) removes the setting (back to its default); the others are kept."""
    changes = key_values(pairs)  # a name the engine does not know is refused by the daemon

    def action(client: Client) -> None:
        path = f"{client.job_path(app, job)}"
        current = client.request("GET", path).get("synchronizationJobSettings") or []
        settings = {str(p["name"]): str(p.get("value") or "") for p in current}
        if changes:
            for key, value in changes.items():
                if value:
                    settings[key] = value
                else:
                    settings.pop(key, None)
            body = [{"name": k, "value": v} for k, v in settings.items()]
            client.request("PATCH", path, {"synchronizationJobSettings": body})
        for key, value in settings.items():
            click.echo(f"{key}={value}")

    call_daemon(url, token, action)


def _job_action(verb: str, done: str) -> Callable[[str, str, str | None, str | None], None]:
    def command(job: str, url: str, token: str | None, app: str | None) -> None:
        def action(client: Client) -> None:
            client.request("POST", f"{client.job_path(app, job)}/{verb}")
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
        client.request("POST", f"{client.job_path(app, job)}/restart", body)
        click.echo(f"job {job} restarted")

    call_daemon(url, token, action)


@jobs.command("delete")
@click.argument("job")
@daemon_options
def jobs_delete(job: str, url: str, token: str | None, app: str | None) -> None:
    """Delete JOB."""

    def action(client: Client) -> None:
        client.request("DELETE", f"{client.job_path(app, job)}")
        click.echo(f"job {job} deleted")

    call_daemon(url, token, action)
