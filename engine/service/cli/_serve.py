"""``syncjob serve``: the daemon."""

from __future__ import annotations

import os
from pathlib import Path

import click

from engine.errors import ConfigurationError
from engine.service.cli._root import main
from engine.service.serve import load_config
from engine.service.serve import serve as run_server
from engine.service.state_lock import StateInUse, StateLockUnavailable


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
    help="TOML file: host, port, state, tokens, workers, log_format, public_url.",
)
@click.option("--workers", type=click.IntRange(1, 64), help="Cycles run at once.  [default: 2]")
@click.option("--log-format", type=click.Choice(["console", "json"]), help="[default: console]")
@click.option(
    "--allow-weak-tokens",
    is_flag=True,
    default=None,
    help="Accept API tokens of less than 128 bits (tests, never production).",
)
@click.option(
    "--public-url",
    help="URL clients reach the API at (e.g. behind a TLS proxy), for the links in answers.  "
    "[default: the address a request came in on]",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    state: Path | None,
    config_path: Path | None,
    workers: int | None,
    log_format: str | None,
    allow_weak_tokens: bool | None,
    public_url: str | None,
) -> None:
    """Serve Graph's synchronization API and run due jobs' cycles, until SIGTERM.

    Bearer tokens: the config file's ``tokens`` and SYNCJOB_API_TOKENS (comma-separated), each
    of at least 128 bits; with none, the first start generates one and prints it once to
    stderr. On stderr too: where it
    listens, the state file and its jobs at the start, a line at the stop. A state file
    another daemon (or a run --once) uses is refused at the start (exit 1).
    """
    overrides = {
        "host": host,
        "port": port,
        "state": state,
        "workers": workers,
        "log_format": log_format,
        "allow_weak_tokens": allow_weak_tokens,
        "public_url": public_url,
    }
    try:
        config = load_config(config_path, overrides, os.environ)
        run_server(config, log_level=ctx.obj["log_level"])
    except ConfigurationError as exc:
        click.echo(f"syncjob serve: {exc}", err=True)
        raise SystemExit(2) from None
    except (StateInUse, StateLockUnavailable) as exc:
        click.echo(f"syncjob serve: {exc}", err=True)
        raise SystemExit(1) from None
