"""``syncjob secrets``: an application's secrets on a daemon, never echoed."""

from __future__ import annotations

import click

from engine.service.cli._daemon import call_daemon, daemon_options, key_values
from engine.service.cli._root import main
from engine.service.client import Client


@main.group()
def secrets() -> None:
    """The application's secrets on a running daemon (values are never shown)."""


@secrets.command("set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace every stored secret with these (Graph's PUT): keys not given are removed.",
)
@daemon_options
def secrets_set(
    pairs: tuple[str, ...], replace: bool, url: str, token: str | None, app: str | None
) -> None:
    """Merge KEY=VALUE pairs into the application's stored secrets (the others are kept) and
    say which keys were added, changed or already had that value; values are never shown."""
    values = key_values(pairs)

    def action(client: Client) -> None:
        path = f"/servicePrincipals/{client.application(app)}/synchronization/secrets"
        body = {"value": [{"key": k, "value": v} for k, v in values.items()]}
        if replace:
            client.request("PUT", path, body)
            click.echo(f"replaced the secrets with {len(values)} key(s): {', '.join(values)}")
            return
        merged = client.request("PATCH", path, body) or {}
        for what in ("added", "changed", "unchanged"):
            keys = merged.get(what) or []
            if keys:
                click.echo(f"{what}: {', '.join(keys)}")

    call_daemon(url, token, action)


@secrets.command("list")
@daemon_options
def secrets_list(url: str, token: str | None, app: str | None) -> None:
    """The keys of the application's stored secrets, one a line (values never leave the
    daemon)."""

    def action(client: Client) -> None:
        path = f"/servicePrincipals/{client.application(app)}/synchronization/secrets"
        for pair in client.request("GET", path)["value"]:
            click.echo(pair["key"])

    call_daemon(url, token, action)
