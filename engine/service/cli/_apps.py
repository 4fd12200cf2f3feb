"""``syncjob apps``: a daemon's applications (Graph's servicePrincipals), which hold jobs and
their secrets."""

from __future__ import annotations

import click

from engine.service.cli._daemon import call_daemon, daemon_url_options
from engine.service.cli._root import main
from engine.service.client import Client


@main.group()
def apps() -> None:
    """Applications on a running daemon: each holds jobs and one set of secrets."""


@apps.command("create")
@click.option("--name", help="The application's display name.")
@daemon_url_options
def apps_create(name: str | None, url: str, token: str | None) -> None:
    """Create an application; prints its id (for --app)."""

    def action(client: Client) -> None:
        body = {"displayName": name} if name is not None else None
        click.echo(client.request("POST", "/servicePrincipals", body)["id"])

    call_daemon(url, token, action)


@apps.command("list")
@daemon_url_options
def apps_list(url: str, token: str | None) -> None:
    """The applications, one a line: id, display name, number of jobs."""

    def action(client: Client) -> None:
        for app in client.request("GET", "/servicePrincipals")["value"]:
            jobs = client.request("GET", client.jobs_path(str(app["id"])))["value"]
            click.echo(f"{app['id']}\t{app.get('displayName') or ''}\t{len(jobs)} job(s)")

    call_daemon(url, token, action)
