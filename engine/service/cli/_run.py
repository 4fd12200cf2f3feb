"""``syncjob run --once``: one cycle in the foreground, without a daemon."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from engine.cycle import CycleProgress
from engine.errors import ConnectorError, SyncJobError
from engine.jobs import SyncEngine
from engine.lifecycle import is_runnable
from engine.model import TaskExecutionResult
from engine.service.cli._root import main
from engine.service.progress_bar import ProgressBar
from engine.service.state_lock import hold_for_run


@main.command("run")
@click.argument("job")
@click.option(
    "--state",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The SQLite state file that holds JOB (refused while a daemon serves it).",
)
@click.option("--once", is_flag=True, required=True, help="Run one cycle, then exit.")
@click.option("--start", "start_job", is_flag=True, help="Start JOB first if it is not started.")
def run_job(job: str, state: Path, once: bool, start_job: bool) -> None:
    """Run one cycle of a template-built JOB in the foreground, without a daemon.

    The source and target come from the template and the application's saved secrets. A
    progress bar follows the page checkpoints (a line per checkpoint when the output is not
    a terminal), then the cycle's counts are printed; a failed cycle exits 1. Ctrl-C stops
    the cycle at its next checkpoint, says how far it got and exits 130; the next run
    resumes it. A state file a daemon serves is refused at the start (exit 1).
    """
    out = sys.stdout
    bar = ProgressBar(out, redraw=out.isatty())
    interrupted = threading.Event()
    reports: list[CycleProgress] = []

    def progress(report: CycleProgress) -> None:
        reports[:] = [report]
        bar(report)

    def on_interrupt(signum: int, frame: object) -> None:
        interrupted.set()  # a second Ctrl-C is the default's: the state file is crash-safe
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with hold_for_run(state), SyncEngine(state) as engine:
            status = engine.get_job(job).status
            if start_job and status is not None and not is_runnable(status.code):
                engine.start(job)
            execution = engine.run_cycle(job, stop=interrupted.is_set, progress=progress)
    except (SyncJobError, ConnectorError) as exc:
        bar.close()
        click.echo(f"syncjob run: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    result = execution.state.value if execution.state else "Unknown"
    counts = (
        f"imported {execution.count_imported}, exported {execution.count_exported}, "
        f"escrowed {execution.count_escrowed}"
    )
    if interrupted.is_set():
        click.echo(f"interrupted: {_how_far(reports[0] if reports else None)}; {counts}")
        click.echo("the cycle stopped at a checkpoint; the next run resumes it")
        raise SystemExit(INTERRUPTED)
    click.echo(f"{result}: {counts}")
    if execution.state == TaskExecutionResult.FAILED:
        error = execution.error
        click.echo(f"syncjob run: the cycle failed: {error.message if error else ''}", err=True)
        raise SystemExit(1)


#: the exit status of a command a SIGINT stopped, as shells report it (128 + 2)
INTERRUPTED = 130


def _how_far(report: CycleProgress | None) -> str:
    """Where the stopped cycle got to, from its last checkpoint's report."""
    if report is None:
        return "no page was checkpointed"
    of = f" of {report.total:,}" if report.total else ""
    return (
        f"{report.pages:,} page(s) checkpointed, the last of {report.object_type or 'objects'} "
        f"at {report.done:,}{of}"
    )
