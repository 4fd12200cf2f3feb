"""``syncjob logs``: a job's provisioning records, with the people they concern by name.

Every filter becomes a clause of the daemon's ``$filter`` (engine.service.api._audit_filter),
so the daemon reads no further into the log than the page needs; a value the log cannot hold
(an action or status Graph does not have) is refused here, listing the ones it can.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from engine.clock import SystemClock
from engine.model import parse_duration
from engine.model.converter import format_datetime
from engine.service.cli._daemon import call_daemon, daemon_options, quoted
from engine.service.cli._root import main
from engine.service.client import Client

#: what the engine writes (engine.cycle), which is Graph's provisioningAction without
#: unknownFutureValue, and Graph's provisioningResult
ACTIONS = ("Create", "Update", "Delete", "Disable", "StagedDelete", "Other")
STATUSES = ("success", "failure", "skipped", "warning")
SHOWN_PROPERTIES = 6  # changed attributes a line shows (--json shows them all)
_SHORT_DURATION = re.compile(r"(\d{1,9})\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: the identity properties ``--user`` looks in (text, compared without case)
USER_PROPERTIES = (
    "sourceIdentity/displayName",
    "targetIdentity/displayName",
    "sourceIdentity/id",
    "sourceIdentity/details/identifier",
    "targetIdentity/id",
)


class Moment(click.ParamType[datetime, Any]):
    """A point in time: an ISO 8601 date-time (UTC when it names no zone), or a duration
    meaning that long ago (``90m``, ``1h``, ``2d``, ``PT1H``, ``P1D``)."""

    name = "moment"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        short = _SHORT_DURATION.fullmatch(text)
        try:
            if short is not None:
                ago = timedelta(**{_UNITS[short[2].lower()]: int(short[1])})
                return SystemClock().now() - ago
            if text[:1].upper() == "P":
                return SystemClock().now() - parse_duration(text.upper())
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except (ValueError, OverflowError) as exc:
            self.fail(f"{text!r} is neither a date-time nor a duration ({exc})", param, ctx)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _filter(job: str, options: dict[str, Any]) -> str:
    clauses = [f"jobId eq {quoted(job)}"]
    action, status, user = options["action"], options["status"], options["user"]
    if action:
        clauses.append(f"provisioningAction eq {quoted(action[:1].lower() + action[1:])}")
    if status:
        clauses.append(f"provisioningStatusInfo/status eq {quoted(status.lower())}")
    if options["since"] is not None:
        clauses.append(f"activityDateTime ge {format_datetime(options['since'])}")
    if options["until"] is not None:
        clauses.append(f"activityDateTime le {format_datetime(options['until'])}")
    if user:
        anyone = " or ".join(f"contains({p}, {quoted(user)})" for p in USER_PROPERTIES)
        clauses.append(f"({anyone})")
    return " and ".join(clauses)


def _who(identity: dict[str, Any] | None) -> str:
    """``Ada Lovelace (uid=ada,ou=people,...)``: the name, then the identifier or the id."""
    identity = identity or {}
    details = identity.get("details") or {}
    name = identity.get("displayName")
    known = details.get("identifier")
    if not known or known == name:  # a group matched by its name: its id tells more
        known = identity.get("id") or ""
    return f"{name} ({known})" if name and known else str(name or known)


def _changes(properties: list[dict[str, Any]]) -> str:
    shown = []
    for p in properties[:SHOWN_PROPERTIES]:
        old, new = p.get("oldValue"), p.get("newValue")
        if old is None and new is None:
            shown.append(str(p.get("displayName")))
        elif old is None:
            shown.append(f"{p.get('displayName')}: {new}")
        else:
            shown.append(f"{p.get('displayName')}: {old} → {'(none)' if new is None else new}")
    more = len(properties) - len(shown)
    return "[" + "; ".join(shown) + (f"; +{more} more" if more > 0 else "") + "]"


def line(record: dict[str, Any]) -> str:
    """One record as a tab-separated line: time, action, status, who, changes, error."""
    info = record.get("provisioningStatusInfo") or {}
    error = info.get("errorInformation") or {}
    source, target = record.get("sourceIdentity"), record.get("targetIdentity")
    text = (
        f"{record.get('activityDateTime')}\t{record.get('provisioningAction')}\t"
        f"{info.get('status')}\t{_who(source)} -> {_who(target)}"
    )
    if record.get("modifiedProperties"):
        text += f"\t{_changes(record['modifiedProperties'])}"
    if error.get("reason"):
        text += f"\t{error.get('errorCode') or ''}: {error['reason']}"
    return text


@main.command()
@click.argument("job")
@click.option(
    "--user",
    help="Only records of this person or object: part of a display name, the source's id "
    "(anchor), DN, uid or userName, or the target's id; without case.",
)
@click.option("--since", type=Moment(), help="From this time: ISO 8601, or a duration ago (1h).")
@click.option("--until", type=Moment(), help="Up to this time: ISO 8601, or a duration ago.")
@click.option(
    "--action",
    type=click.Choice(ACTIONS, case_sensitive=False),
    help="Only this provisioningAction.",
)
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only this status."
)
@click.option(
    "--top", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest N records."
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as Graph JSON.")
@daemon_options
def logs(
    job: str,
    user: str | None,
    since: datetime | None,
    until: datetime | None,
    action: str | None,
    status: str | None,
    top: int,
    as_json: bool,
    url: str,
    token: str | None,
    app: str | None,
) -> None:
    """JOB's provisioning logs (GET /beta/auditLogs/provisioning), newest first: who each
    record concerns, by name, and the attributes it changed, old → new (secrets masked)."""
    options = {"action": action, "status": status, "user": user, "since": since, "until": until}
    params = {"$filter": _filter(job, options), "$top": str(top)}

    def run(client: Client) -> None:
        found = client.request("GET", "/auditLogs/provisioning", params=params, version="beta")
        records = found["value"]
        if as_json:
            click.echo(json.dumps(records, indent=2, ensure_ascii=False))
            return
        for record in records:
            click.echo(line(record))
        if not records:
            click.echo(f"no provisioning records for job {job}", err=True)

    call_daemon(url, token, run)
