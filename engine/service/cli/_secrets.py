"""``syncjob secrets``: an application's secrets on a daemon, never echoed.

A value on the command line stays in ``ps`` and the shell's history: ``KEY=-`` reads it from
standard input (a hidden prompt on a terminal) and ``KEY=@path`` from a file; one trailing
line break is dropped. ``KEY=@@text`` is the literal value ``@text``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.service.cli._daemon import call_daemon, daemon_options, key_values
from engine.service.cli._root import main
from engine.service.client import Client


@main.group()
def secrets() -> None:
    """The application's secrets on a running daemon (values are never shown)."""


def read_values(pairs: dict[str, str]) -> dict[str, str]:
    """The values of ``KEY=-`` and ``KEY=@path`` read (see the module's docstring); an error
    names the key and the file, never a value."""
    stdin_keys = [k for k, v in pairs.items() if v == "-"]
    if len(stdin_keys) > 1:
        raise click.BadParameter(
            f"only one key can read standard input ({', '.join(stdin_keys)} ask for it)",
            param_hint="KEY=-",
        )
    return {key: _read_value(key, given) for key, given in pairs.items()}


def _read_value(key: str, given: str) -> str:
    if given == "-":
        if sys.stdin.isatty():
            return str(click.prompt(key, hide_input=True, prompt_suffix=": "))
        return _one_line_break_less(sys.stdin.read())
    if given.startswith("@@"):
        return given[1:]
    if not given.startswith("@"):
        return given
    path = Path(given[1:])
    try:
        return _one_line_break_less(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise click.BadParameter(
            f"cannot read {key}'s value from {path}: {reason}", param_hint=f"{key}=@"
        ) from None


def _one_line_break_less(text: str) -> str:
    """What a file or a pipe gave, without the line break an editor or ``echo`` ends it with
    (only one: anything else is the value's, and the daemon refuses a credential with
    whitespace at either end)."""
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[: -len(end)]
    return text


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
    say which keys were added, changed or already had that value; values are never shown.

    KEY=- reads the value from standard input (hidden prompt on a terminal), KEY=@FILE from a
    file, so it stays out of the process list and the shell's history; KEY=@@x means "@x".
    """
    values = read_values(key_values(pairs))

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
