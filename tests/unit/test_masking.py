"""engine.masking: what a directory's error quotes of a secret never reaches a status or a log."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import TransientError
from engine.masking import MASK, credential_values, mask_secrets, masked_error

SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=6, max_size=30)


@given(before=st.text(max_size=40), after=st.text(max_size=40), secret=SECRET)
def test_a_quoted_secret_is_masked(before: str, after: str, secret: str) -> None:
    assert secret not in mask_secrets(f"{before}{secret}{after}", [secret, "True"])


def test_urls_lose_their_user_and_password_and_switches_stay_readable() -> None:
    text = "cannot reach http://admin:pw@scim.example/v2 (HardDeletesEnabled is True)"
    assert mask_secrets(text, ["True", "False", "x"]) == (
        f"cannot reach http://{MASK}@scim.example/v2 (HardDeletesEnabled is True)"
    )


def test_a_masked_error_keeps_its_class_and_fields() -> None:
    error = TransientError("401: Bearer tok-123456 refused", retry_after=3.0)
    masked = masked_error(error, ["tok-123456"])
    assert isinstance(masked, TransientError) and masked.retry_after == 3.0
    assert str(masked) == f"401: Bearer {MASK} refused"
    assert masked_error(error, ["not-in-it"]) is error


def test_only_credentials_are_masked_in_messages() -> None:
    """Passwords, tokens and client secrets are masked; the base DN, URL, user name and
    modes an operator needs to find a mistake are shown (issue #18, point 7)."""
    secrets = {
        "SourceUrl": "ldap://127.0.0.1:389",
        "SourceUserName": "cn=sync,dc=example,dc=org",
        "SourcePassword": "pw",
        "SourceBaseDn": "ou=peple,dc=example,dc=org",
        "SourceDeltaMode": "accesslog",
        "BaseAddress": "https://app.example/scim/v2",
        "SecretToken": "abc",
        "ClientSecret": "def",
        "Note": "Zm9vYmFyYmF6cXV4cXV1eHF1dXg0Mg",  # looks like a token: masked anyway
    }
    assert sorted(credential_values(secrets)) == [
        "Zm9vYmFyYmF6cXV4cXV1eHF1dXg0Mg",
        "abc",
        "def",
        "pw",
    ]
    text = "bind as cn=sync,dc=example,dc=org to ldap://127.0.0.1:389 (ou=peple,...): abc"
    assert mask_secrets(text, credential_values(secrets)) == text.replace("abc", MASK)
