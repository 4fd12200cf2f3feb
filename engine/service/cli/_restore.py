"""``syncjob restore``: take back an object's staged delete (DeleteGracePeriod) in time."""

from __future__ import annotations

import click

from engine.service.cli._daemon import call_daemon, daemon_options
from engine.service.cli._root import main
from engine.service.client import Client


@main.command()
@click.argument("job")
@click.argument("object_id", metavar="OBJECT")
@daemon_options
def restore(job: str, object_id: str, url: str, token: str | None, app: str | None) -> None:
    """Cancel the staged delete of OBJECT (its source anchor, target id, or a matching value
    such as a userName) in JOB, enabling it if the grace period disabled it
    (POST …/jobs/JOB/restore). If the source no longer has the object, it is no longer
    linked: the job leaves it alone until a source object matching it joins it again."""

    def run(client: Client) -> None:
        done = client.request(
            "POST", f"{client.jobs_path(app)}/{job}/restore", {"objectId": object_id}
        )
        enabled = "enabled again" if done["enabled"] else "nothing to enable (it was not disabled)"
        linked = (
            "still linked (the source has it)"
            if done["linked"]
            else "no longer linked (the source lacks it): the job leaves it alone"
        )
        click.echo(
            f"restored {done['objectId']} -> {done['targetObjectId']}: delete cancelled, "
            f"{enabled}, {linked}"
        )

    call_daemon(url, token, run)
