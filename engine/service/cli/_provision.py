"""``syncjob provision``: one subject provisioned now (Graph's provisionOnDemand)."""

from __future__ import annotations

import json
from typing import Any

import click

from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._plan import describe
from engine.service.cli._root import main
from engine.service.client import Client, DaemonError


@main.command()
@click.argument("job")
@click.argument("subject")
@click.option(
    "--type",
    "object_type",
    default="User",
    show_default=True,
    help="The subject's object type in the source directory.",
)
@click.option("--rule", help="The schema's rule id.  [default: the first that maps --type]")
@click.option(
    "--dry-run", is_flag=True, help="Say what would be written, write nothing (dryRun: true)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
@daemon_options
def provision(
    job: str,
    subject: str,
    object_type: str,
    rule: str | None,
    dry_run: bool,
    as_json: bool,
    url: str,
    token: str | None,
    app: str | None,
) -> None:
    """Provision SUBJECT of JOB's source now (provisionOnDemand), out of the schedule.

    SUBJECT is sent as given (an anchor, or what the daemon resolves: a uid, DN or
    userName). Prints the result, the action and the attributes written; a failed or
    refused provisioning exits 1.
    """

    def action(client: Client) -> None:
        path = f"{client.job_path(app, job)}"
        rule_id = rule or _rule_for(client.request("GET", f"{path}/schema"), object_type)
        body: dict[str, Any] = {
            "parameters": [
                {
                    "ruleId": rule_id,
                    "subjects": [{"objectId": subject, "objectTypeName": object_type}],
                }
            ]
        }
        if dry_run:
            body["dryRun"] = True
        answer = client.request("POST", f"{path}/provisionOnDemand", body) or {}
        result, record = _decoded(answer.get("key")), _decoded(answer.get("value"))
        if as_json:
            click.echo(json.dumps({"result": result, "record": record}, indent=2))
        else:
            _show(result, record)
        if result.get("result") == "Failure":
            raise SystemExit(1)

    call_daemon(url, token, action)


def _rule_for(schema: dict[str, Any], object_type: str) -> str:
    """The id of the schema's first rule with an object mapping from ``object_type``."""
    for rule in schema.get("synchronizationRules") or []:
        for mapping in rule.get("objectMappings") or []:
            if str(mapping.get("sourceObjectName") or "").lower() == object_type.lower():
                return str(rule.get("id"))
    raise DaemonError("NoRule", f"the job's schema has no rule mapping {object_type!r} objects")


def _decoded(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": value}


def _show(result: dict[str, Any], record: dict[str, Any]) -> None:
    outcome = result.get("result") or "Unknown"
    if "changes" in record and "deleteGuard" in record:  # a dry run: the one-object plan
        click.echo(f"{outcome}: what provisioning it would write")
        for line in describe(record):
            click.echo(f"  {line}")
        return
    if not record:
        click.echo(f"{outcome}: no provisioning record (not in the source, or out of scope)")
        return
    action = record.get("action") or "-"
    source = (record.get("sourceIdentity") or {}).get("id") or "-"
    target = (record.get("targetIdentity") or {}).get("id") or "-"
    click.echo(f"{outcome}: {action} {source} -> {target}")
    names = [p.get("displayName") for p in record.get("modifiedProperties") or []]
    if names:
        click.echo(f"attributes: {', '.join(str(n) for n in names)}")
    details = result.get("details") or {}
    status = record.get("statusInfo") or {}
    code = details.get("errorCode") or status.get("errorCode")
    message = details.get("errorMessage") or status.get("reason")
    if code or message:
        click.echo(f"{code}: {message}", err=True)
