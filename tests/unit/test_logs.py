"""engine.logs: an exception's traceback never prints its frames' local variables (a frame
may hold a job's secrets), in either format."""

from __future__ import annotations

import pytest
import structlog

from engine.logs import configure_logging


@pytest.mark.parametrize("json", [False, True])
def test_tracebacks_leave_local_variables_out(
    json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    before = structlog.get_config()
    try:
        configure_logging("INFO", json=json, force=True)
        secrets = {"SourcePassword": "hunter2-not-in-logs"}  # noqa: F841 (a local to leak)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            structlog.get_logger("syncjob.test").exception("job_run_failed", job_id="j")
        err = capsys.readouterr().err
        assert "job_run_failed" in err and "RuntimeError: boom" in err
        assert "hunter2-not-in-logs" not in err
    finally:
        structlog.configure(**before)
