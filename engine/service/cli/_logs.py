"""``syncjob logs``: a job's provisioning records."""

from __future__ import annotations

import json

import click

from engine.service.cli._daemon import call_daemon, daemon_options, quoted
from engine.service.cli._root import main
from engine.service.client import Client


@main.command()
@click.argument("job")
@click.option("--action", help="Only this provisioningAction (create, update, delete, ...).")
@click.option("--status", help="Only this status (success, failure, skipped, ...).")
@click.option(
    "--top", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest N records."
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as Graph JSON.")
@daemon_options
def logs(
    job: str,
    action: str | None,
    status: str | None,
    top: int,
    as_json: bool,
    url: str,
    token: str | None,
    app: str | None,
) -> None:
    """JOB's provisioning logs (GET /beta/auditLogs/provisioning), newest first."""
    clauses = [f"jobId eq {quoted(job)}"]
    if action:
        clauses.append(f"provisioningAction eq {quoted(action)}")
    if status:
        clauses.append(f"provisioningStatusInfo/status eq {quoted(status)}")
    params = {"$filter": " and ".join(clauses), "$top": str(top)}

    def run(client: Client) -> None:
        found = client.request("GET", "/auditLogs/provisioning", params=params, version="beta")
        records = found["value"]
        if as_json:
            click.echo(json.dumps(records, indent=2))
            return
        for r in records:
            info = r.get("provisioningStatusInfo") or {}
            error = info.get("errorInformation") or {}
            source = (r.get("sourceIdentity") or {}).get("id") or ""
            target = (r.get("targetIdentity") or {}).get("id") or ""
            line = (
                f"{r.get('activityDateTime')}\t{r.get('provisioningAction')}\t"
                f"{info.get('status')}\t{source} -> {target}"
            )
            if error.get("reason"):
                line += f"\t{error.get('errorCode') or ''}: {error['reason']}"
            click.echo(line)
        if not records:
            click.echo(f"no provisioning records for job {job}", err=True)

    call_daemon(url, token, run)
