"""The server process of :class:`tests.scim.server.ScimServer`: scim2-server's ASGI app under
uvicorn, behind a recorder that appends one JSON line per request to a file.

Run as ``python -m tests.scim.app --fd N --log FILE``; the bearer token is read from the first
line of stdin so that it never shows in a command line or an environment listing. The
listening socket is made and bound by the parent and inherited as ``--fd``, so there is no race
for a free port between choosing it and binding it.

Only the standard library, scim2-server and uvicorn are imported here: the process must start
fast and must not depend on the test tree.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Recorder:
    """ASGI middleware: one JSON line per request (method, path, query, body, status).

    The line is written before the response body is sent, so a client that got its answer
    finds its request in the file. Headers are not recorded (the Authorization header carries
    the token).
    """

    def __init__(self, app: ASGIApp, log: Path) -> None:
        self.app = app
        self.log = log
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Message:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            # recorded before the answer leaves: a client that has its answer (a 204 has no
            # body to wait for) then finds its request in the log
            if message["type"] == "http.response.start":
                self.write(scope, b"".join(chunks), int(message["status"]))
            await send(message)

        await self.app(scope, recording_receive, recording_send)

    def write(self, scope: Scope, raw: bytes, status: int) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        line = json.dumps(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "body": body,
                "status": status,
            }
        )
        with self.lock, self.log.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


def build_app(token: str, log: Path) -> ASGIApp:
    """Users (core + enterprise extension) and Groups, with bearer-token authentication."""
    from scim2_models import ScimProvider, UnauthorizedException  # noqa: PLC0415
    from scim2_server.applications.asgi import ASGIApplication  # noqa: PLC0415
    from scim2_server.memory import AsyncInMemoryStorage  # noqa: PLC0415
    from scim2_server.requests import ScimRequest  # noqa: PLC0415
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME  # noqa: PLC0415
    from scim2_server.utils import (  # noqa: PLC0415
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    config = load_default_service_provider_config()
    config.authentication_schemes = [BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )

    class BearerApplication(ASGIApplication):
        def check_auth(self, request: ScimRequest) -> None:
            scheme, _, given = (request.header("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or given != token:
                raise UnauthorizedException

    return Recorder(BearerApplication(AsyncInMemoryStorage(), provider), log)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    token = sys.stdin.readline().strip()
    sys.stdin.close()
    import uvicorn  # noqa: PLC0415

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, fileno=args.fd)
    config = uvicorn.Config(
        build_app(token, args.log),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
