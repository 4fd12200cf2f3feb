"""engine.masking: what a directory's error quotes of a secret never reaches a status or a log."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

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
    plain = TransientError("503: try later", retry_after=3.0)
    assert masked_error(plain, ["not-in-it"]) is plain


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


PRINTABLE_SECRET = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=24
).filter(lambda s: s.strip() == s and s.lower() not in {"true", "false"})


@given(secret=PRINTABLE_SECRET, user=st.sampled_from(["admin", "cn=sync,dc=example", "é"]))
def test_a_secret_is_masked_in_every_form_a_library_quotes_it(secret: str, user: str) -> None:
    """repr and JSON escapes, URL encoding, base64 and Basic auth's user:password (issue
    #20, point 4): none of them lets the value, or a way back to it, through."""
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    quoted = [
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
        basic,
    ]
    for form in quoted:
        masked = mask_secrets(f"{{'Authorization': 'Basic {form}'}} refused: {form}=", [secret])
        assert secret not in masked and form not in masked, form


def test_a_bearer_credential_is_masked_even_when_no_secret_holds_it() -> None:
    """An access token fetched from a TokenUrl is in no secret."""
    text = "headers {'Authorization': 'Bearer eyJhbGciOi.J9x_y-z'}: Bearer authentication failed"
    assert mask_secrets(text, []) == (
        f"headers {{'Authorization': 'Bearer {MASK}'}}: Bearer authentication failed"
    )
