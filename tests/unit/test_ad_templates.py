"""The Active Directory target templates (scimToAd, ldapToAd): object types from their
schemas, the endpoint's TLS and bind secrets; no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import Capability
from engine import ConfigurationError, ManualClock, SyncEngine
from engine.model import FlowType
from engine.templates import builtin_templates
from engine.templates._ldap import build_target

SECRETS = {
    "Url": "ldaps://192.0.2.10:636",
    "UserName": "EXAMPLE\\sync",
    "Password": "not-a-real-one",
    "BaseDn": "DC=example,DC=org",
    "TlsServerName": "dc1.example.org",
    "Authentication": "NTLM",
}


@pytest.mark.parametrize("template_id", ["scimToAd", "ldapToAd"])
def test_a_job_is_created_from_the_template(template_id: str, tmp_path: Path) -> None:
    engine = SyncEngine(tmp_path / "s.db", ManualClock())
    app = engine.create_application("ad").id
    engine.set_secrets(app, {**SECRETS, "SourceUrl": "ldap://127.0.0.1:1389",
                             "SourceBaseAddress": "http://127.0.0.1:1/scim"})  # fmt: skip
    assert engine.create_job(template_id, application_id=app).id
    engine.close()


@pytest.mark.parametrize("template_id", ["scimToAd", "ldapToAd"])
def test_accounts_are_matched_across_the_domain_and_given_a_random_password_on_create(
    template_id: str,
) -> None:
    template = builtin_templates()[template_id]
    assert template.check_schema is not None
    template.check_schema(template.schema)
    target = build_target(SECRETS, template.schema)
    users, groups = target.types["User"], target.types["Group"]
    assert (users.base_dn, users.match_base, users.account_control) == (
        "CN=Users,DC=example,DC=org", "DC=example,DC=org", True
    )  # fmt: skip
    assert (groups.match_base, groups.account_control) == ("DC=example,DC=org", False)
    assert Capability.SOFT_DELETE in target.capabilities
    assert target.soft_delete_attribute == "accountEnabled"
    endpoint = target.endpoint
    assert (endpoint.tls_server_name, endpoint.authentication) == ("dc1.example.org", "ntlm")
    rule = template.schema.synchronization_rules[0]
    password = next(
        m
        for om in rule.object_mappings
        for m in om.attribute_mappings
        if m.target_attribute_name == "unicodePwd"
    )
    assert password.flow_type is FlowType.OBJECT_ADD_ONLY
    assert "RandomString" in (password.source.expression if password.source else "")


def test_an_unknown_authentication_is_a_configuration_error() -> None:
    schema = builtin_templates()["scimToAd"].schema
    with pytest.raises(ConfigurationError, match="Authentication must be one of simple, ntlm"):
        build_target({**SECRETS, "Authentication": "kerberos"}, schema)
