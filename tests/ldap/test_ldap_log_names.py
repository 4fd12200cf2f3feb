"""The provisioning log of an ldapToLdap job between two real slapd servers names the person:
the display name and DN the source read, not only the entryUUID it is anchored by, and the
old -> new value of what changed (issue 18, point 5)."""

from __future__ import annotations

from pathlib import Path

import ldap3

from tests.ldap.ldap_jobs import Tree, ldap_job, make_tree, modify, seed
from tests.ldap.slapd import Slapd


def test_records_name_the_person_and_show_old_and_new(
    slapd_source: Slapd, slapd_target: Slapd, tmp_path: Path
) -> None:
    tree: Tree = make_tree(slapd_source, slapd_target)
    seed(tree, 2, managers=False)
    engine, job_id = ldap_job(tree, tmp_path / "s.db")
    engine.run_cycle(job_id)
    created = {r.source_name: r for r in engine.provisioning_logs(job_id) if r.action == "Create"}
    ada = created["User 1"]
    assert ada.target_name == "User 1"
    assert (ada.source_key or "").lower() == tree.user_dn(1).lower()
    assert ada.anchor not in ("User 1", tree.user_dn(1))  # the entryUUID, beside the names
    assert (ada.target_ref or "").lower() == tree.user_dn(1).lower()

    modify(
        tree.source,
        {tree.user_dn(1): {"mail": [(ldap3.MODIFY_REPLACE, ["countess@example.org"])]}},
    )
    execution = engine.run_cycle(job_id)
    updated = [
        r
        for r in engine.provisioning_logs(job_id, execution.activity_identifier)
        if r.action == "Update"
    ]
    assert [(r.source_name, r.target_name, r.anchor) for r in updated] == [
        ("User 1", "User 1", ada.anchor)
    ]
    assert updated[0].changes() == [("mail", "u00001@example.org", "countess@example.org")]
    engine.close()
