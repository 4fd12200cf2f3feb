"""``syncjob demo``: the embedded default job, memory to memory with SQLite state."""

from __future__ import annotations

import random
from pathlib import Path

import click

from connectors.base import Scalar, as_list
from connectors.memory import MemoryDirectory
from engine.jobs import SyncEngine
from engine.service.cli._root import main

DEPARTMENTS = ("Engineering", "Sales", "Finance", "Support", "Research")


def demo_directory(users: int, seed: int = 7) -> MemoryDirectory:
    """A source with ``users`` people and one group per department."""
    rng = random.Random(seed)
    source = MemoryDirectory()
    members: dict[str, list[Scalar]] = {name: [] for name in DEPARTMENTS}
    for n in range(users):
        given = rng.choice(["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances"])
        surname = rng.choice(["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth"])
        source.put(
            "User",
            f"src-{n:06d}",
            {
                "userName": f"{given}.{surname}.{n}@example.org".lower(),
                "displayName": f"{given} {surname}",
                "givenName": given,
                "surname": surname,
                "mail": f"{given}.{surname}.{n}@example.org".lower(),
                "department": (department := rng.choice(DEPARTMENTS)),
                "employeeId": str(100000 + n),
                # references hold source anchors; the engine maps them to target ids
                "manager": f"src-{n // 10 * 10:06d}" if n % 10 else None,
            },
        )
        members[department].append(f"src-{n:06d}")
    for name in DEPARTMENTS:
        source.put("Group", f"grp-{name.lower()}", {"displayName": name, "members": members[name]})
    return source


@main.command()
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("demo-state/syncjob.sqlite"),
    show_default=True,
    help="SQLite state file (created if missing).",
)
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
def demo(state: Path, users: int) -> None:
    """Run the demo job: memory source -> memory target, SQLite state."""
    state.parent.mkdir(parents=True, exist_ok=True)
    source, target = demo_directory(users), MemoryDirectory()
    with SyncEngine(state) as engine:
        for old in engine.list_jobs():  # earlier demo runs: their in-memory directories are gone
            if old.template_id == "memoryToMemory" and old.id:
                engine.delete_job(old.id)
        job = engine.create_job("memoryToMemory", source, target, schedule="PT40M")
        engine.start(job.id)
        click.echo(f"job {job.id} started (state in {state})")
        first = engine.run_cycle(job.id)
        click.echo(
            f"initial cycle: imported {first.count_imported}, "
            f"exported {first.count_exported}, escrowed {first.count_escrowed}"
        )
        source.put(
            "User",
            "src-000000",
            {**(source.get("User", "src-000000") or {}), "department": "Management"},
        )
        source.remove("User", "src-000001")
        for anchor, group in source.list("Group").items():  # the source drops the membership
            kept = [m for m in as_list(group.get("members")) if m != "src-000001"]
            if len(kept) < len(as_list(group.get("members"))):
                source.put("Group", anchor, {**group, "members": kept})
        second = engine.run_cycle(job.id)
        click.echo(
            f"incremental cycle: imported {second.count_imported}, exported {second.count_exported}"
        )
        for record in engine.provisioning_logs(job.id, second.activity_identifier):
            click.echo(
                f"  {record.action:<7} {record.anchor} -> {record.target_ref} "
                f"[{', '.join(record.attributes)}] {record.status}"
            )
        status = engine.get_job(job.id).status
        assert status is not None
        managed = sum(1 for user in target.list("User").values() if user.get("manager"))
        members = sum(len(as_list(group.get("members"))) for group in target.list("Group").values())
        click.echo(
            f"status: {status.code.value}; target holds {len(target.list('User'))} users "
            f"({managed} with a manager), {len(target.list('Group'))} groups "
            f"({members} memberships)"
        )
