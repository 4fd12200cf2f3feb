"""A running cycle's progress: the reports ``run_cycle(progress=...)`` gets, the job status
Graph clients poll, the lag ``pending_changes`` (and /metrics) shows, and the CLI's bar."""

from __future__ import annotations

import io
from typing import Any

from engine import CycleProgress
from engine.service.progress_bar import ProgressBar, render
from tests.conftest import fill


def test_reports_count_up_to_the_total_a_full_read_announced(make_job: Any) -> None:
    engine, job_id, _, _ = make_job(users=1234, settings={"PageSize": "100"})
    reports: list[CycleProgress] = []
    engine.run_cycle(job_id, progress=reports.append)
    assert [r.object_type for r in reports] == ["User"] * 13 + ["Group"]  # a checkpoint each
    groups = reports.pop()
    assert (groups.read, groups.done, groups.pages) == (0, 0, 14)
    assert {r.total for r in reports} == {1234}
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert reports[-1].done == reports[-1].read == 1234
    assert reports[-1].exported == 1234 and reports[-1].escrowed == 0
    assert [r.pages for r in reports] == list(range(1, 14))
    assert reports[-1].waiting == 0
    assert engine.live_progress(job_id) is None  # the cycle is over


def test_status_and_lag_while_the_cycle_runs(make_job: Any) -> None:
    """What a Graph client and /metrics see mid-cycle: pages done of pages estimated, and
    the changes announced but not exported yet."""
    engine, job_id, _, _ = make_job(users=1000, settings={"PageSize": "100"})
    seen: list[tuple[int, int, int | None, int | None]] = []

    def look(report: CycleProgress) -> None:
        status = engine.get_job(job_id).status
        assert status is not None and len(status.progress) == 1
        shown = status.progress[0]
        listed = next(j for j in engine.list_jobs() if j.id == job_id).status
        assert listed is not None and listed.progress == status.progress
        seen.append(
            (report.done, engine.pending_changes(job_id), shown.completed_units, shown.total_units)
        )

    engine.run_cycle(job_id, progress=look)
    assert seen[0] == (100, 900, 1, 10)
    assert seen[4] == (500, 500, 5, 10)
    assert seen[-2] == (1000, 0, 10, 10)
    assert seen[-1] == (0, 0, 11, 11)  # the groups' (empty) read
    after = engine.get_job(job_id).status
    assert after is not None and after.progress[0].completed_units == 11
    assert engine.pending_changes(job_id) == 0


def test_a_delta_read_reports_what_it_read_without_a_total(make_job: Any) -> None:
    engine, job_id, source, _ = make_job(users=10)
    engine.run_cycle(job_id)
    fill(source, 5, start=100)
    reports: list[CycleProgress] = []
    engine.run_cycle(job_id, progress=reports.append)
    users = reports[0]
    assert users.object_type == "User" and users.total is None
    assert users.done == users.read == 5 and users.waiting == 0


def test_the_bar_draws_a_share_when_the_total_is_known() -> None:
    report = CycleProgress(
        "User", read=500, done=250, total=1000, pages=1, exported=240, escrowed=2
    )
    line = render(report, width=10)
    assert line == "User  [##--------] 250/1,000  25%  exported 240  escrowed 2"
    unknown = CycleProgress("Group", read=7, done=7, total=None, pages=1, exported=7, escrowed=0)
    assert render(unknown) == "Group  7 read  exported 7  escrowed 0"


def test_the_bar_redraws_on_a_terminal_and_prints_lines_elsewhere() -> None:
    first = CycleProgress("User", read=10, done=10, total=20, pages=1, exported=10, escrowed=0)
    last = CycleProgress("User", read=20, done=20, total=20, pages=2, exported=20, escrowed=0)
    terminal = io.StringIO()
    bar = ProgressBar(terminal, redraw=True)
    bar(first)
    bar(last)
    bar.close()
    assert terminal.getvalue().count("\r") == 2 and terminal.getvalue().endswith("\n")
    assert terminal.getvalue().count("\n") == 1
    piped = io.StringIO()
    bar = ProgressBar(piped, redraw=False)
    bar(first)
    bar(last)
    bar.close()
    assert "\r" not in piped.getvalue()
    assert piped.getvalue().splitlines() == [render(first), render(last)]
