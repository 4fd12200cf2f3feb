"""Adversarial checks of issue #18 point 1 and 7: untrusted reads hold deletes, messages
mask credentials only (real slapd servers where a read is involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigurationError
from engine.masking import credential_values, mask_secrets
from engine.model import KeyValuePair, TaskExecutionResult
from engine.settings import JobSettings
from tests.ldap.ldap_jobs import Tree, count, make_tree
from tests.ldap.slapd import Slapd
from tests.ldap.test_untrusted_reads import delete_users, point_source_at, synced


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:  # noqa: F811
    return make_tree(slapd_source, slapd_target)


def _empty_ou(tree: Tree) -> str:
    empty = f"ou=empty,{tree.base}"
    connection = tree.source.connect()
    try:
        for dn in (empty, f"ou=people,{empty}", f"ou=groups,{empty}"):
            ou = dn.split(",")[0].split("=")[1]
            assert connection.add(dn, ["organizationalUnit"], {"ou": ou}), connection.result
    finally:
        connection.unbind()
    return empty


def test_exactly_half_missing_is_not_held(tree: Tree, tmp_path: Path) -> None:
    """'More than' 50%: two of four gone is at the threshold, and goes through."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    delete_users(tree, 1, 2)
    engine.restart(job_id, None)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    assert count(tree.target, tree.people) == 2
    engine.close()


def test_a_base_dn_in_other_case_still_reads_everyone(tree: Tree, tmp_path: Path) -> None:
    """The same base written in capitals is the same base: nothing is held or deleted."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, tree.base.upper())
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is None
    assert count(tree.target, tree.people) == 4
    engine.close()


def test_a_base_dn_with_stray_spaces_fails_safely(tree: Tree, tmp_path: Path) -> None:
    """Spaces pasted around the base and after its commas: the cycle may fail, but it never
    deprovisions anything."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, f"  {', '.join(tree.base.split(','))} ")
    engine.run_cycle(job_id)
    assert count(tree.target, tree.people) == 4
    assert engine.store.staged_deletes(job_id) == []
    engine.close()


def test_held_shrink_deletes_are_not_applied_by_a_quarantine_only_restart(
    tree: Tree, tmp_path: Path
) -> None:
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, _empty_ou(tree))
    engine.run_cycle(job_id)
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is not None
    assert "saw 0 of the 4" in str(status.quarantine.error)
    assert count(tree.target, tree.people) == 4
    engine.restart(job_id, ["QuarantineState"])  # not ForceDeletes, still the empty base
    engine.run_cycle(job_id)
    assert count(tree.target, tree.people) == 4  # still held
    engine.close()


@pytest.mark.parametrize("value", ["abc", "-1", "100.5", "", "50%"])
def test_a_bad_shrink_threshold_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigurationError, match="SourceShrinkThreshold"):
        JobSettings.parse([KeyValuePair(name="SourceShrinkThreshold", value=value)])


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("100", 100.0), (" 7.5 ", 7.5)])
def test_shrink_threshold_bounds_parse(value: str, expected: float) -> None:
    settings = JobSettings.parse([KeyValuePair(name="SourceShrinkThreshold", value=value)])
    assert settings.source_shrink_threshold == expected


def test_a_ten_character_source_password_is_masked() -> None:
    secrets = {"SourcePassword": "Tr0ub4dor&", "SourceBaseDn": "dc=example,dc=com"}
    text = "bind as cn=admin with Tr0ub4dor& on dc=example,dc=com failed"
    masked = mask_secrets(text, credential_values(secrets))
    assert "Tr0ub4dor&" not in masked and "dc=example,dc=com" in masked


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzeW5jIn0.c2lnbmF0dXJlLXZhbHVl",
        "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ==",
    ],
)
def test_a_token_under_an_unusual_key_is_masked(token: str) -> None:
    masked = mask_secrets(f"401: bearer {token} refused", credential_values({"BearerValue": token}))
    assert token not in masked


def test_held_deletes_stay_held_when_the_same_untrusted_read_repeats(
    tree: Tree, tmp_path: Path
) -> None:
    """Restarting (a full read again) on the still-empty base: the verdict is the same, the
    deletes already staged count towards it, and nothing is deleted."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, _empty_ou(tree))
    engine.run_cycle(job_id)
    for _ in range(2):
        engine.restart(job_id)
        engine.run_cycle(job_id)
        status = engine.get_job(job_id).status
        assert status is not None and status.quarantine is not None
        assert "saw 0 of the 4" in str(status.quarantine.error)
    assert count(tree.target, tree.people) == 4
    engine.close()


def test_a_trusted_full_read_releases_the_hold_and_deletes_only_the_missing(
    tree: Tree, tmp_path: Path
) -> None:
    """The operator fixes the base DN and restarts: the full read sees the directory again,
    the hold ends, and only the user really gone from the source is deprovisioned."""
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, _empty_ou(tree))
    engine.run_cycle(job_id)
    assert count(tree.target, tree.people) == 4
    delete_users(tree, 3)
    point_source_at(engine, job_id, tree, tree.base)
    execution = engine.run_cycle(job_id)
    assert execution.state is TaskExecutionResult.SUCCEEDED, execution
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is None
    assert count(tree.target, tree.people) == 3
    assert engine.store.staged_deletes(job_id) == []
    engine.close()


def test_force_deletes_applies_a_held_shrink(tree: Tree, tmp_path: Path) -> None:
    engine, job_id = synced(tree, tmp_path / "s.db")
    point_source_at(engine, job_id, tree, _empty_ou(tree))
    engine.run_cycle(job_id)
    engine.restart(job_id, ["QuarantineState"])
    engine.run_cycle(job_id)
    assert count(tree.target, tree.people) == 4
    engine.restart(job_id, ["ForceDeletes"])
    engine.run_cycle(job_id)
    assert count(tree.target, tree.people) == 0
    status = engine.get_job(job_id).status
    assert status is not None and status.quarantine is None
    engine.close()
