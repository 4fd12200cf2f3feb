"""``syncjob plan JOB`` and ``syncjob apply JOB PLANFILE``: preview a job's next cycle, then
apply exactly that (README "Preview and apply"), through a running daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client

#: a plan runs a whole cycle's reads (the source, and the target for old values)
_TIMEOUT = 600.0


def _shown(value: Any) -> str:
    """Text from the directories, safe on a terminal: a control or format character (a
    newline, an ANSI escape, a right-to-left override) is spelt as its escape, so a value
    cannot forge a line of the plan nor hide one from the person reviewing it."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return _shown(value)


def _named(change: dict[str, Any]) -> str:
    name = change.get("displayName") or change.get("anchor") or change.get("targetId") or ""
    return _shown(f"{change['action']} {change['objectType']} {name}".rstrip())


def describe(plan: dict[str, Any]) -> list[str]:
    """The plan for people: one line per change, then escrows, then the guards' verdict."""
    lines = []
    for change in plan.get("changes") or []:
        attributes = change.get("changes") or []
        if change["action"] == "create":
            shown = ", ".join(f"{_shown(a['name'])} = {_value(a.get('new'))}" for a in attributes)
            lines.append(f"{_named(change)}: {shown}" if shown else _named(change))
        elif change["action"] == "update":
            shown = "; ".join(
                f"{_shown(a['name'])}: {_value(a.get('old'))} → {_value(a.get('new'))}"
                for a in attributes
            )
            lines.append(f"{_named(change)}: {shown}")
        else:
            lines.append(_named(change))
    for escrow in plan.get("escrows") or []:
        what = f"{escrow['sourceObjectType']} {escrow['anchor']}: {escrow['error']}"
        lines.append(f"escrow {_shown(what)}")
    for skip in plan.get("skipped") or []:
        what = f"{skip['sourceObjectType']} {skip['anchor']}: {skip['reason']}"
        lines.append(f"skip {_shown(what)}")
    guard = plan.get("deleteGuard") or {}
    if guard.get("held"):
        lines.append(f"deletes held: {guard.get('deletes')} ({_shown(guard.get('reason'))})")
    else:
        lines.append("deletes: the guards would let them through")
    count = len(plan.get("changes") or [])
    lines.append(f"{count} change{'s' if count != 1 else ''}; plan {plan.get('id')}")
    return lines


@main.command("plan")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also save the plan as JSON in this file (for syncjob apply).",
)
@daemon_options
def plan(
    job: str, as_json: bool, out: Path | None, url: str, token: str | None, app: str | None
) -> None:
    """What JOB's next cycle would write, writing nothing: creates, updates (old → new),
    deletes and disables, escrows, and whether the delete guards would hold the deletes."""

    def action(client: Client) -> None:
        client.timeout = _TIMEOUT
        found = client.request("POST", f"{client.jobs_path(app)}/{job}/plan")
        if out is not None:
            out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        if as_json:
            click.echo(json.dumps(found, indent=2))
        else:
            for line in describe(found):
                click.echo(line)

    call_daemon(url, token, action)


@main.command("apply")
@click.argument("job")
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@daemon_options
def apply(job: str, planfile: Path, url: str, token: str | None, app: str | None) -> None:
    """Run JOB's cycle now if it writes exactly the plan in PLANFILE (syncjob plan --out);
    refused (exit 1), naming what moved, if the source, the target or the job moved since."""
    try:
        sent = json.loads(planfile.read_text(encoding="utf-8"))
    except ValueError:
        click.echo(f"syncjob apply: {planfile} holds no JSON plan", err=True)
        raise SystemExit(2) from None

    def action(client: Client) -> None:
        client.timeout = _TIMEOUT
        done = client.request("POST", f"{client.jobs_path(app)}/{job}/apply", sent)
        click.echo(
            f"applied plan {sent.get('id')}: {done.get('state')}, "
            f"{done.get('countExported', 0)} exported, {done.get('countEscrowed', 0)} escrowed"
        )

    call_daemon(url, token, action)
