"""The bar ``syncjob run --once`` draws from the engine's :class:`CycleProgress` reports.

On a terminal it redraws one line in place; written to a pipe or a file it prints a line per
checkpoint instead, because carriage returns make a log unreadable.
"""

from __future__ import annotations

import os
from typing import TextIO

from engine.cycle._context import CycleProgress

WIDTH = 30


def render(report: CycleProgress, width: int = WIDTH) -> str:
    """One line: the object type, a bar and a percentage when the source gave a count (a
    full read), else just the count read; then what the cycle exported and escrowed."""
    tail = f"exported {report.exported:,}  escrowed {report.escrowed:,}"
    if report.total:
        share = min(report.done / report.total, 1.0)
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        where = f"[{bar}] {report.done:,}/{report.total:,} {share:4.0%}"
    else:
        where = f"{report.done:,} read"
    return f"{report.object_type or 'objects'}  {where}  {tail}"


class ProgressBar:
    """Callable as ``run_cycle(progress=...)``; :meth:`close` ends the line it drew."""

    def __init__(self, out: TextIO, *, redraw: bool) -> None:
        self.out = out
        self.redraw = redraw
        self._shown = 0  # characters on the current line (redraw mode)
        self.gone = False  # the reader closed the pipe

    def __call__(self, report: CycleProgress) -> None:
        line = render(report)
        if self.redraw:
            padding = " " * max(self._shown - len(line), 0)
            self._write(f"\r{line}{padding}")
            self._shown = len(line)
        else:
            self._write(line + "\n")

    def close(self) -> None:
        if self.redraw and self._shown:
            self._write("\n")
            self._shown = 0

    def _write(self, text: str) -> None:
        """Write, unless the reader went away (``syncjob run … | head``): then the bar goes
        quiet and the output is sent to /dev/null, so the cycle runs to its end regardless."""
        if self.gone:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.gone = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # not a real file: nothing to redirect
                pass
