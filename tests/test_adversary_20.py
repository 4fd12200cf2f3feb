"""Adversary tests for issue #20 (saved secrets bound to where they were saved for, masking,
bounded bodies and expressions). Each was a break found by attacking what #20 added."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import ConfigurationError, ManualClock, SyncEngine, SystemClock
from engine.expressions import _bounds, parse_expression
from engine.limits import MAX_SECRETS
from engine.masking import MASK, mask_secrets
from engine.service.serve import STRONG_TOKEN_BITS, check_token_strength, token_bits
from tests.api.test_secret_bindings import CaptureListener

PASSWORD = "OLD-bind-password-4711"


@pytest.fixture
def listener() -> Iterator[CaptureListener]:
    made = CaptureListener()
    yield made
    made.stop()


def _saved(port: int, **extra: str) -> dict[str, str]:
    """An ldapToScim application's secrets whose source directory is the listener (the
    directory the operator saved, reached over a protected channel)."""
    return {
        "SourceUrl": f"ldap://127.0.0.1:{port}",
        "SourceUserName": "EXAMPLE\\sync",
        "SourcePassword": PASSWORD,
        "SourceBaseDn": "dc=example,dc=org",
        "BaseAddress": "http://127.0.0.1:1/scim",
        "SecretToken": "saved-scim-token-4711",
        **extra,
    }


#: (what the operator saved, what the caller sends alone): each turns the channel's
#: protection off, so the saved password would cross the wire in clear (or to whoever answers)
DOWNGRADES = [
    ({"SourceAuthentication": "ntlm"}, {"SourceAuthentication": "simple"}),
    ({"SourceStartTls": "true"}, {"SourceStartTls": "false"}),
]


@pytest.mark.parametrize(("saved", "sent"), DOWNGRADES)
def test_validate_cannot_downgrade_the_channel_of_a_saved_password(
    tmp_path: Path, listener: CaptureListener, saved: dict[str, str], sent: dict[str, str]
) -> None:
    """Was: validateCredentials with only ``SourceAuthentication=simple`` (saved: ntlm, whose
    bind never sends the password) or ``SourceStartTls=false`` bound with the saved
    SourcePassword in clear: the listener read it. Should: like a changed address, a changed
    switch of how the side connects needs the side's credentials sent with it."""
    with SyncEngine(tmp_path / "s.db", ManualClock()) as engine:
        app = engine.create_application("downgrade").id
        engine.set_secrets(app, _saved(listener.port, **saved))
        job = engine.create_job("ldapToScim", application_id=app).id
        assert job is not None
        with pytest.raises(ConfigurationError, match="SourcePassword"):
            engine.validate_credentials(job, sent)
        with pytest.raises(ConfigurationError, match="SourcePassword"):
            engine.merge_secrets(app, sent, keep=())
    listener.stop()
    assert PASSWORD.encode() not in listener.received


def test_a_put_that_leaves_the_switch_out_is_a_downgrade_too(tmp_path: Path) -> None:
    """A secrets PUT replaces every secret: leaving SourceStartTls out turns StartTLS off,
    so the mask for the password is refused then too; sending the password is accepted."""
    saved = _saved(1, SourceStartTls="yes")
    with SyncEngine(tmp_path / "s.db", ManualClock()) as engine:
        app = engine.create_application("put").id
        engine.set_secrets(app, saved)
        rest = {k: v for k, v in saved.items() if k != "SourceStartTls"}
        with pytest.raises(ConfigurationError, match="SourceStartTls.*SourcePassword"):
            engine.set_secrets(app, {**rest, "SourcePassword": "*****"}, keep=["SourcePassword"])
        engine.set_secrets(app, {**saved, "SourceStartTls": "TRUE", "SourcePassword": "*****"},
                           keep=["SourcePassword"])  # the same meaning: no change  # fmt: skip
        engine.set_secrets(app, {**rest, "SourcePassword": "a-new-password-0815"}, keep=())


#: (secret, a text a library could write with it) that masking let through
QUOTED = [
    # repr of a longer text holding both quotes escapes the secret's ' (repr alone did not)
    ("pa'ss-123", repr({"detail": 'say "no" to pa\'ss-123'})),
    ("pa'ss-123", repr('say "no" to ' + "pa'ss-123")),
    # a bytes repr of the UTF-8 value (ldap3 and sockets quote bytes)
    ("pässwörd-1", repr("pässwörd-1".encode())),
    # an HTML or XML error page
    ("p<a>&ss-1", "<detail>p&lt;a&gt;&amp;ss-1</detail>"),
    # base64 not aligned on the run's start (a character of something else before it)
    ("hunter22secret", "X" + base64.b64encode(b"ab" + b"hunter22secret").decode()),
]


@pytest.mark.parametrize(("secret", "text"), QUOTED)
def test_masking_follows_more_quoted_forms(secret: str, text: str) -> None:
    masked = mask_secrets(text, [secret])
    assert MASK in masked
    assert secret not in masked
    assert masked.count(MASK) == 1, masked


SPLITS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
from engine.expressions import parse_expression
expression = "Coalesce(" + ",".join(['Split([a], ",")'] * 40) + ")"
result = parse_expression(expression, {"a": "ab," * 349_000})
assert "134,217,728 bytes of values in all" in (result.error or ""), result.error
print("bounded")
"""


def test_lists_side_by_side_are_counted_by_their_memory() -> None:
    """Was: 40 Splits of a 1 MiB text into 2-character items, side by side in a Coalesce
    (650 characters of expression), counted as 42 Mi characters built, so allowed, and took
    1 GiB (a MemoryError under a 1 GiB cap). Should: a list counts its items' memory, and
    the evaluation stops at 128 MiB built."""
    done = subprocess.run(
        [sys.executable, "-c", SPLITS],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "bounded" in done.stdout, done.stderr[-2000:]


def test_one_evaluation_is_bounded_in_time_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: thirty PCase calls of a 1 MiB text side by side in a Coalesce (339 characters
    of expression, a tenth of the bytes an evaluation may build) held one object for 13 s.
    Should: an evaluation building large values stops past MAX_EXPRESSION_SECONDS (5 s;
    0.3 s here) with an evaluation error, the object escrowed in a cycle."""
    monkeypatch.setattr(_bounds, "MAX_EXPRESSION_SECONDS", 0.3)
    words = " ".join(f"w{i:05x}" for i in range(150_000))[: 1 << 20]
    clock = SystemClock()
    started = clock.monotonic()
    result = parse_expression("Coalesce(" + ",".join(["PCase([w])"] * 30) + ")", {"w": words})
    assert "has run for more than 0.3 s" in (result.error or ""), result.error
    assert clock.monotonic() - started < 4


def test_a_token_repeating_a_short_text_is_weak() -> None:
    """Was: "abcdefgh" eight times counted as 301 bits and "Passw0rd!" six times as 354:
    accepted. Should: a repetition counts as the text repeated; random tokens still pass."""
    for weak in ("abcdefgh" * 8, "Passw0rd!" * 6, "Passw0rd!" * 6 + "Pa"):
        assert token_bits(weak) < STRONG_TOKEN_BITS, weak
        with pytest.raises(ConfigurationError, match="weak"):
            check_token_strength((weak,))
    check_token_strength((secrets.token_urlsafe(32), secrets.token_hex(16)))


def test_an_application_keeps_a_bounded_number_of_secrets(tmp_path: Path) -> None:
    """Was: a secrets PUT of 60,000 keys (3 MB) was stored; every message that may quote a
    secret was then masked against all of them (seconds each; validateCredentials held
    /healthz 1.6 s masking its error on the event loop). Should: at most MAX_SECRETS (1,000)
    and MAX_SECRETS_SIZE characters by PUT or PATCH, a 400 naming the limit; the route masks
    off the loop."""
    many = {f"Password{i}": f"value-{i:05d}" for i in range(MAX_SECRETS + 1)}
    with SyncEngine(tmp_path / "s.db", ManualClock()) as engine:
        app = engine.create_application("many").id
        with pytest.raises(ConfigurationError, match="at most 1,000 secrets"):
            engine.set_secrets(app, many)
        engine.set_secrets(app, dict(list(many.items())[:MAX_SECRETS]))
        with pytest.raises(ConfigurationError, match="at most 1,000 secrets"):
            engine.merge_secrets(app, {"OneMore": "x"}, keep=())
        assert len(engine.masked_secrets(app)) == MAX_SECRETS
        # one 3.9 MB password, a new one each PUT: masking cached each one's forms (~9 MB
        # each, 256 of them kept): now the application's secrets hold 256 Ki characters
        with pytest.raises(ConfigurationError, match="at most 262,144 characters"):
            engine.set_secrets(app, {"Password": "p" * 300_000})
