"""``syncjob validate`` and ``discover``: a job's directories, checked and read."""

from __future__ import annotations

import click

from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client


@main.command()
@click.argument("job")
@daemon_options
def validate(job: str, url: str, token: str | None, app: str | None) -> None:
    """Check JOB's saved credentials against its source and target (validateCredentials)."""

    def run(client: Client) -> None:
        path = f"{client.job_path(app, job)}/validateCredentials"
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
        path = f"{client.job_path(app, job)}/schema/directories/{directory}/discover"
        found = client.request("POST", path) or {}
        for obj in found.get("objects") or []:
            click.echo(f"{obj.get('name')}\t{len(obj.get('attributes') or [])} attributes")
        click.echo(f"version {found.get('version')}, discovered {found.get('discoveryDateTime')}")

    call_daemon(url, token, run)
