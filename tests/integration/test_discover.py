"""SyncEngine.discover on a scimToLdap job: the SCIM source's and the LDAP target's
directories from the real servers, kept on the SQLite state file across engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ManualClock, SyncEngine
from engine.errors import ConfigurationError, NotFoundError
from engine.model import AttributeType
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd
from tests.scim.server import ENTERPRISE_SCHEMA, ScimServer


def test_discover_scim_source_and_ldap_target(
    tmp_path: Path, slapd_target: Slapd, scim_server: ScimServer
) -> None:
    state = tmp_path / "state.db"
    with SyncEngine(state, ManualClock()) as engine:
        app = engine.create_application("discover").id
        job_id = engine.create_job("scimToLdap", application_id=app).id
        assert job_id is not None
        with pytest.raises(ConfigurationError, match="missing secrets"):
            engine.discover(job_id, "ldap-target")
        engine.set_secrets(app, {
            "SourceBaseAddress": scim_server.url, "SourceSecretToken": scim_server.token.reveal(),
            "Url": slapd_target.url, "UserName": ROOT_DN,
            "Password": slapd_target.password.reveal(), "BaseDn": BASE_DN,
        })  # fmt: skip
        before = engine.get_schema(job_id)
        with pytest.raises(NotFoundError, match="nowhere"):
            engine.discover(job_id, "nowhere")
        scim = engine.discover(job_id, "scim-source")
        ldap = engine.discover(job_id, "ldap-target")
    with SyncEngine(state, ManualClock()) as engine:  # stored
        schema = engine.get_schema(job_id)
    assert schema.directories == (scim, ldap)
    assert schema.synchronization_rules == before.synchronization_rules
    assert schema.version == "2"
    users = {o.name: {a.name: a for a in o.attributes} for o in scim.objects}["User"]
    assert users[f"{ENTERPRISE_SCHEMA}:manager"].type is AttributeType.REFERENCE
    people = {o.name: {a.name: a for a in o.attributes} for o in ldap.objects}["User"]
    assert people["jpegPhoto"].type is AttributeType.BINARY
    assert people["manager"].type is AttributeType.REFERENCE
