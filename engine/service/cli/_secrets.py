"""``syncjob secrets``: an application's secrets on a daemon, never echoed."""

from __future__ import annotations

import click

from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client


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
