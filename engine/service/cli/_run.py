"""``syncjob run --once``: one cycle in the foreground, without a daemon."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from engine.errors import ConnectorError, SyncJobError
from engine.jobs import SyncEngine
from engine.lifecycle import is_runnable
from engine.model import TaskExecutionResult
from engine.service.cli._root import main
from engine.service.progress_bar import ProgressBar


@main.command("run")
@click.argument("job")
@click.option(
    "--state",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The SQLite state file that holds JOB (no daemon may run it meanwhile).",
)
@click.option("--once", is_flag=True, required=True, help="Run one cycle, then exit.")
@click.option("--start", "start_job", is_flag=True, help="Start JOB first if it is not started.")
def run_job(job: str, state: Path, once: bool, start_job: bool) -> None:
    """Run one cycle of a template-built JOB in the foreground, without a daemon.

    The source and target come from the template and the application's saved secrets. A
    progress bar follows the page checkpoints (a line per checkpoint when the output is not
    a terminal), then the cycle's counts are printed; a failed cycle exits 1.
    """
    out = sys.stdout
    bar = ProgressBar(out, redraw=out.isatty())
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        interrupted.set()  # a second Ctrl-C is the default's: the state file is crash-safe
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with SyncEngine(state) as engine:
            status = engine.get_job(job).status
            if start_job and status is not None and not is_runnable(status.code):
                engine.start(job)
            execution = engine.run_cycle(job, stop=interrupted.is_set, progress=bar)
    except (SyncJobError, ConnectorError) as exc:
        bar.close()
        click.echo(f"syncjob run: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    if interrupted.is_set():
        click.echo("interrupted: the cycle stopped at a checkpoint; the next run resumes it")
    result = execution.state.value if execution.state else "Unknown"
    click.echo(
        f"{result}: imported {execution.count_imported}, exported {execution.count_exported}, "
        f"escrowed {execution.count_escrowed}"
    )
    if execution.state == TaskExecutionResult.FAILED:
        error = execution.error
        click.echo(f"syncjob run: the cycle failed: {error.message if error else ''}", err=True)
        raise SystemExit(1)
