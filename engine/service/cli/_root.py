"""The ``syncjob`` command group; each command lives in the module for its subject."""

from __future__ import annotations

import click

from engine.logs import configure_logging


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
