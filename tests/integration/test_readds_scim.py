"""ldapToScim: a user deleted in a real slapd and re-added under the same DN (issue #17
point 3), into a real SCIM server.

The re-added entry has a new entryUUID (the source's anchor), so it is a new object, and the
SCIM server gives it a new id; the group that still lists its DN in ``member`` and the user
whose ``manager`` names it are not touched in the source (no referential integrity there).
The target must put the re-added user back into that group and back as that user's manager
(the enterprise extension's ``manager.value`` is the new id), also when the re-add comes in a
later cycle than the delete. With slapd's refint overlay on the source the delete took the DN
out of ``member`` and ``manager`` there, so after the re-add SCIM must not list it either.

U (user 1, ``u00001``) is in G (``g001``) with V (``u00002``) and is the manager of R
(``u00003``); see :mod:`tests.ldap.test_readds`, which runs the same steps LDAP -> LDAP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import SyncEngine
from engine.model import TaskExecutionResult
from tests.integration.test_ldap_to_scim import ENTERPRISE, members, scim_job, users
from tests.ldap.ldap_jobs import Tree, make_tree
from tests.ldap.slapd import Slapd, require_slapd
from tests.ldap.test_readds import (
    U,
    delete_user,
    entry_uuid,
    readd_user,
    seed_readd,
    wait_for_refint,
)
from tests.scim.server import ScimServer

NAME_U, NAME_V, NAME_R, GROUP = "u00001", "u00002", "u00003", "g001"


def cycle(engine: SyncEngine, job_id: str) -> None:
    """One cycle, which must succeed with nothing escrowed (see tests.ldap.test_readds)."""
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert execution.count_escrowed == 0, execution


def manager_of(found: dict[str, dict[str, Any]], name: str) -> str | None:
    """The id the enterprise extension names as ``name``'s manager, if any."""
    value: str | None = ((found[name].get(ENTERPRISE) or {}).get("manager") or {}).get("value")
    return value


def delete_then_readd(tree: Tree, scim: ScimServer, state: Path, across: bool) -> None:
    """Cycle; delete U; (cycle, when ``across``); re-add U under its DN; cycle. Checks SCIM
    after the first cycle and after the delete's own cycle."""
    engine, job_id = scim_job(tree, scim, state)
    cycle(engine, job_id)
    found = users(scim)
    assert set(found) == {NAME_U, NAME_V, NAME_R}
    assert members(scim)[GROUP] == {NAME_U, NAME_V}
    old_id = found[NAME_U]["id"]
    assert manager_of(found, NAME_R) == old_id
    before = entry_uuid(tree.source, tree.user_dn(U))
    delete_user(tree, U)
    if across:
        cycle(engine, job_id)
        found = users(scim)
        assert set(found) == {NAME_V, NAME_R}, "U is still in SCIM"
        assert members(scim)[GROUP] == {NAME_V}, "G still lists the deleted U"
        assert manager_of(found, NAME_R) is None, "R's manager still names the deleted U"
    readd_user(tree, U)
    assert entry_uuid(tree.source, tree.user_dn(U)) != before  # a new anchor, the same DN
    cycle(engine, job_id)
    engine.close()
    found = users(scim)
    assert set(found) == {NAME_U, NAME_V, NAME_R}, "U did not come back"
    assert found[NAME_U]["id"] != old_id  # a new SCIM user, not the old one revived


# ------------------------------------------------------------------------ no refint
def test_a_user_readded_in_a_later_cycle_is_back_in_the_group_that_lists_its_dn(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    """Scenario a: G keeps U's DN in the source; SCIM drops U from G with U and lists the
    new U again once U is re-added a cycle later."""
    seed_readd(tree)
    delete_then_readd(tree, scim, tmp_path / "s.db", across=True)
    assert members(scim)[GROUP] == {NAME_U, NAME_V}, "G lacks the re-added U"


def test_a_user_readded_in_a_later_cycle_is_back_as_the_manager_its_reports_name(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    """Scenario b: R's manager keeps U's DN in the source; SCIM clears R's manager with U's
    delete and names the new U's id once U is re-added a cycle later."""
    seed_readd(tree)
    delete_then_readd(tree, scim, tmp_path / "s.db", across=True)
    found = users(scim)
    assert manager_of(found, NAME_R) == found[NAME_U]["id"], "R's manager is not the new U"


def test_a_user_deleted_and_readded_within_one_cycle_keeps_its_group_and_reports(
    tree: Tree, scim: ScimServer, tmp_path: Path
) -> None:
    """Scenario c (a regression test): the delete and the re-add both before one cycle."""
    seed_readd(tree)
    delete_then_readd(tree, scim, tmp_path / "s.db", across=False)
    found = users(scim)
    assert members(scim)[GROUP] == {NAME_U, NAME_V}, "G lacks the re-added U"
    assert manager_of(found, NAME_R) == found[NAME_U]["id"], "R's manager is not the new U"


# ------------------------------------------------------------------------ with refint
def test_with_refint_on_the_source_a_readded_user_is_not_put_back(
    make_slapd: Callable[..., Slapd], slapd_target: Slapd, scim: ScimServer, tmp_path: Path
) -> None:
    """Scenario d: the source's refint overlay removes U's DN from G's member and R's manager
    when U is deleted (modifies the accesslog does not record), so after the re-add, a cycle
    later, G must not list U and R must have no manager in SCIM either."""
    require_slapd("refint")
    tree = make_tree(make_slapd("source-refint", refint=True), slapd_target)
    seed_readd(tree)
    engine, job_id = scim_job(tree, scim, tmp_path / "s.db")
    cycle(engine, job_id)
    found = users(scim)
    assert members(scim)[GROUP] == {NAME_U, NAME_V}
    assert manager_of(found, NAME_R) == found[NAME_U]["id"]
    delete_user(tree, U)
    wait_for_refint(tree)
    cycle(engine, job_id)
    found = users(scim)
    assert set(found) == {NAME_V, NAME_R}
    assert members(scim)[GROUP] == {NAME_V}
    assert manager_of(found, NAME_R) is None
    readd_user(tree, U)
    cycle(engine, job_id)
    engine.close()
    found = users(scim)
    assert set(found) == {NAME_U, NAME_V, NAME_R}
    assert members(scim)[GROUP] == {NAME_V}, "G lists U, which the source does not"
    assert manager_of(found, NAME_R) is None, "R has a manager, which the source has not"
