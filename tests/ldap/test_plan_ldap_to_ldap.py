"""Preview, then apply, on ldapToLdap between two real slapd servers: a plan's changes are
what the next real cycle writes (users and groups created, applied as planned; an update's
old -> new, a group's members, a delete) and the plan changes neither the target nor the
job's state."""

from __future__ import annotations

from pathlib import Path

import ldap3
import pytest

from tests.ldap.ldap_jobs import Tree, ldap_job, make_tree, modify, picture, seed
from tests.ldap.slapd import Slapd
from tests.plan_checks import dump, summary, written


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    return make_tree(slapd_source, slapd_target)


def test_plan_equals_the_next_cycle(tree: Tree, tmp_path: Path) -> None:
    seed(tree, 10, groups=2, members=5)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    empty = picture(tree.target, tree)
    plan = engine.plan(job_id)
    assert picture(tree.target, tree) == empty
    assert len(plan.changes) == 12 and {c.action for c in plan.changes} == {"create"}
    # applied: a real cycle, through the guard that takes only the planned writes (the
    # groups' members name users created in the same cycle by their placeholders)
    assert engine.apply(job_id, plan).count_escrowed == 0
    assert summary(plan) == written(engine, job_id) and engine.escrows(job_id) == []

    modify(tree.source, {tree.user_dn(4): {"title": [(ldap3.MODIFY_REPLACE, ["Director"])]}})
    modify(tree.source, {tree.group_dn(0): {"member": [(ldap3.MODIFY_ADD, [tree.user_dn(1)])]}})
    connection = tree.source.connect()
    connection.delete(tree.user_dn(9))  # a leaf: nobody's manager
    connection.unbind()
    before, target = dump(tmp_path / "s.db"), picture(tree.target, tree)
    plan = engine.plan(job_id)
    assert dump(tmp_path / "s.db") == before and picture(tree.target, tree) == target
    by_name = {c.display_name: c for c in plan.changes}
    assert [(a.name, a.old, a.new) for a in by_name["User 4"].changes] == [
        ("title", "Engineer", "Director")
    ]
    members = by_name["g000"].changes[0]
    assert members.name == "member" and tree.user_dn(1) not in members.old
    assert tree.user_dn(1) in members.new and len(members.new) == len(members.old) + 1
    assert by_name["User 9"].action in ("delete", "disable") and by_name["User 9"].changes == ()
    engine.run_cycle(job_id)
    assert summary(plan) == written(engine, job_id)
    assert engine.plan(job_id).changes == ()
