"""One access log line per request, at INFO, as a structlog event ``request`` of the logger
``syncjob.access``: method, path, status, duration_ms and client (its address).

The path is logged without its query string (a ``$filter`` names people; a ``$skiptoken`` is
a cursor) and as the client sent it, percent-encoded, so no decoded newline can forge a log
line; no header is logged, the ``Authorization`` bearer token least of all. It is the
outermost layer, so refusals (401, 413, 404) are logged too. uvicorn's own access log is off
in ``syncjob serve``: it would log the query.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: what the client gets if it raises

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            structlog.get_logger("syncjob.access").info(
                "request",
                method=scope["method"],
                path=_path(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                client=_client(scope),
            )


def _path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.partition(b"?")[0].decode("ascii", "backslashreplace")
    return str(scope["path"]).encode("unicode_escape").decode("ascii")


def _client(scope: Scope) -> str | None:
    client: Any = scope.get("client")
    return str(client[0]) if client else None
