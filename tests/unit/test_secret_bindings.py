"""engine.secret_bindings: which saved credentials a changed address needs sent again."""

from __future__ import annotations

import pytest

from engine.secret_bindings import bound_to, is_address, is_credential, unbound_credentials
from engine.templates import builtin_templates

ALL = (
    "SourceUrl SourceUserName SourcePassword SourceVerifyCertificate SourceAuthentication "
    "BaseAddress SecretToken Url Password VerifyCertificate ClientSecret TokenUrl "
    "SourceBaseAddress SourceSecretToken HardDeletesEnabled"
).split()


def test_the_builtin_templates_addresses_are_bound_to_what_they_send_there() -> None:
    """Derived from the templates: every required secret named like an address is a known
    one, and each required credential is bound to its side's address."""
    for template in builtin_templates().values():
        keys = template.required_secrets
        addresses = [k for k in keys if is_address(k)]
        for credential in (k for k in keys if is_credential(k)):
            side = [
                a for a in addresses if a.startswith("Source") == credential.startswith("Source")
            ]
            assert [a for a in side if credential in bound_to(a, keys)] == side, template.id


@pytest.mark.parametrize(
    ("address", "bound"),
    [
        ("BaseAddress", ["ClientSecret", "SecretToken"]),  # not the LDAP target's Password
        ("Url", ["ClientSecret", "Password"]),
        ("SourceUrl", ["SourcePassword"]),  # switches read like credentials, are none
        ("SourceBaseAddress", ["SourceSecretToken"]),
        ("TokenUrl", [k for k in sorted(ALL) if is_credential(k)]),  # unknown: every one
        ("LdapServer", [k for k in sorted(ALL) if is_credential(k)]),
    ],
)
def test_bound_to(address: str, bound: list[str]) -> None:
    assert is_address(address)
    assert bound_to(address, ALL) == bound


def test_only_a_changed_address_needs_its_saved_credentials() -> None:
    stored = {"BaseAddress": "https://scim.example/v2", "SecretToken": "t", "Password": "p"}
    same = {**stored, "BaseAddress": " HTTPS://SCIM.example/v2/ "}
    assert unbound_credentials(stored, same, ["BaseAddress"]) == {}
    moved = {**stored, "BaseAddress": "https://scim.example/v3"}
    assert unbound_credentials(stored, moved, ["BaseAddress"]) == {"BaseAddress": ["SecretToken"]}
    assert unbound_credentials(stored, moved, ["BaseAddress", "SecretToken"]) == {}
    dropped = {"BaseAddress": "https://elsewhere"}  # a PUT without the token: none follows
    assert unbound_credentials(stored, dropped, ["BaseAddress"]) == {}
    new = {"Url": "ldap://x", "Password": "p"}  # an address stored for the first time
    assert unbound_credentials({"Password": "p"}, new, ["Url"]) == {"Url": ["Password"]}
