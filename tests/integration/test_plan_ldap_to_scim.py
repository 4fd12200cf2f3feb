"""Preview, then apply, on ldapToScim between a real slapd and a real SCIM server: a plan's
changes are what the next real cycle writes (creates with references, an update's old ->
new, a delete), the plan sends no request that writes, an apply writes exactly the plan; a
dry-run provisionOnDemand names its subject by DN or uid and writes nothing."""

from __future__ import annotations

from pathlib import Path

import ldap3

from tests.integration.test_ldap_to_scim import scim_job, users
from tests.ldap.ldap_jobs import Tree, seed
from tests.plan_checks import dump, summary, written
from tests.scim.server import ScimServer

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _writes(scim: ScimServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in scim.requests() if r.method in _WRITES]


def test_plan_equals_the_next_cycle_and_apply_writes_it(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    seed(tree, 12, groups=2, members=6)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db")
    scim.clear_requests()
    before = dump(tmp_path / "s.db")
    plan = engine.plan(job_id)
    assert _writes(scim) == [] and dump(tmp_path / "s.db") == before
    assert {c.action for c in plan.changes} == {"create"} and len(plan.changes) == 14
    assert not plan.escrows and not plan.delete_guard.held
    engine.run_cycle(job_id)
    assert summary(plan) == written(engine, job_id)
    created = {c.display_name: c for c in plan.changes}
    assert {a.name: a.new for a in created["User 7"].changes}["title"] == "Engineer"

    connection = tree.source.connect()
    connection.modify(tree.user_dn(7), {"title": [(ldap3.MODIFY_REPLACE, ["Director"])]})
    connection.delete(tree.user_dn(11))  # a leaf: nobody's manager; in group 1
    connection.unbind()
    scim.clear_requests()
    plan = engine.plan(job_id)
    assert _writes(scim) == []
    update = next(c for c in plan.changes if c.display_name == "User 7")
    assert [(a.name, a.old, a.new) for a in update.changes] == [("title", "Engineer", "Director")]
    assert update.target_id == users(scim)["u00007"]["id"]
    assert ("delete", users(scim)["u00011"]["id"]) in {
        (c.action, c.target_id) for c in plan.changes
    }

    execution = engine.apply(job_id, plan)
    assert execution.count_escrowed == 0 and engine.escrows(job_id) == []
    assert summary(plan) == written(engine, job_id)
    found = users(scim)
    assert found["u00007"]["title"] == "Director" and "u00011" not in found
    assert engine.plan(job_id).changes == ()


def test_dry_run_on_demand_by_dn_and_by_uid(tree: Tree, scim: ScimServer, tmp_path: Path) -> None:
    seed(tree, 3)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db")
    scim.clear_requests()
    by_dn = engine.preview_on_demand(job_id, "User", tree.user_dn(2))
    by_uid = engine.preview_on_demand(job_id, "User", "u00002")
    assert [c.action for c in by_dn.changes] == ["create"] and by_dn.changes == by_uid.changes
    assert by_dn.changes[0].display_name == "User 2"
    assert _writes(scim) == [] and users(scim) == {}
    outside = f"uid=u00002,ou=elsewhere,{tree.base}"
    try:
        engine.preview_on_demand(job_id, "User", outside)
    except LookupError as exc:
        assert "DN" in str(exc)
    else:
        raise AssertionError("a DN outside the source's base found an object")
