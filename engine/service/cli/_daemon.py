"""What every command that talks to a running daemon shares: its options and error exits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from engine.service.client import (
    APP_ENV,
    DEFAULT_URL,
    TOKEN_ENV,
    URL_ENV,
    Client,
    DaemonError,
    Unreachable,
)

F = TypeVar("F", bound=Callable[..., Any])


def daemon_options(fn: F) -> F:
    """--url, --token and --app, for the commands that talk to a running daemon."""
    fn = click.option(
        "--app",
        envvar=APP_ENV,
        show_envvar=True,
        help="The servicePrincipal's id.  [default: the one holding JOB; else the first one, "
        "created if there is none]",
    )(fn)
    return daemon_url_options(fn)


def daemon_url_options(fn: F) -> F:
    """--url and --token: where the daemon is and how to be let in."""
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


def key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE arguments as a dict; a malformed one is a usage error naming its position
    only (its text may hold a secret)."""
    values: dict[str, str] = {}
    for n, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"argument {n} is not KEY=VALUE", param_hint="KEY=VALUE")
        values[key] = value
    return values


def quoted(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"
