"""A directory that quotes the token it was sent, in whatever form, never gets it into an
error the engine shows (issue #20, point 4). A real SCIM server does not echo credentials,
so a loopback listener plays one that does: the 401's detail carries the Authorization
header raw, as Python and JSON escape it, URL-encoded and in base64."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from connectors.base import CredentialsError
from connectors.scim import ScimTarget
from engine.masking import credential_values, masked_error

TOKEN = 'tok/"quoted"+é\\slash-0123456789'


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        sent = self.headers.get("Authorization", "")
        token = sent.removeprefix("Bearer ")
        detail = " | ".join(
            [
                sent,
                repr(sent),
                json.dumps(sent),
                quote(token, safe=""),
                base64.b64encode(token.encode("latin-1")).decode(),
                "Basic " + base64.b64encode(f"sync:{token}".encode()).decode(),
            ]
        )
        body = json.dumps({"detail": detail}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_quoted_token_is_masked_in_every_form(echo_url: str) -> None:
    target = ScimTarget(echo_url, TOKEN, timeout=5.0)
    try:
        with pytest.raises(CredentialsError) as refused:
            target.validate()
    finally:
        target.close()
    shown = str(masked_error(refused.value, credential_values({"SecretToken": TOKEN})))
    assert "401" in shown
    leaks = [TOKEN, repr(TOKEN)[1:-1], json.dumps(TOKEN)[1:-1], quote(TOKEN, safe="")]
    leaks += [base64.b64encode(TOKEN.encode("latin-1")).decode().rstrip("=")]
    assert not [leak for leak in leaks if leak in shown], shown
    assert "0123456789" not in shown, shown
