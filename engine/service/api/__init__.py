"""Graph's synchronization API over HTTP: ``create_app(engine, tokens)`` gives an ASGI app.

Every path exists under both ``/beta`` and ``/v1.0``, as Graph serves them; bodies are the
Graph JSON that :func:`engine.model.to_graph` writes and :func:`engine.model.from_graph` reads.
``GET /metrics`` (no version prefix) gives the jobs' statuses as Prometheus text;
``GET /openapi.json`` (no token needed) gives the API's OpenAPI 3.0 document.

What lives here: ``_routes`` (the handlers), ``_audit`` (auditLogs/provisioning), ``_metrics``,
``_openapi``, ``_errors`` (Graph's error body; bearer tokens). It may import ``SyncEngine``
and everything below it; it drives the engine through the facade only (the store's record
types it reads, never the store itself).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette

from engine.jobs import SyncEngine
from engine.service.api._metrics import metrics, metrics_response
from engine.service.api._openapi import openapi
from engine.service.api._routes import create_app as _create_routes_app
from engine.service.api._routes import public_base

__all__ = ["create_app", "metrics_response", "public_base"]


def create_app(
    engine: SyncEngine,
    tokens: Sequence[str],
    *,
    token_digests: Sequence[bytes] = (),
    public_url: str | None = None,
) -> Starlette:
    """The API over ``engine``, ``GET /metrics`` included; a request needs
    ``Authorization: Bearer <one of tokens>``, or a token whose sha256 digest is one of
    ``token_digests``. The bearer check is middleware, so it covers ``/metrics`` too; only
    ``/healthz`` and ``/openapi.json`` are open. Links in answers (``Location``,
    ``@odata.context``, ``@odata.nextLink``) start with ``public_url`` (where clients reach
    the API, e.g. through a TLS proxy), else the address a request came in on, never the
    request's ``Host`` header."""
    app = _create_routes_app(engine, tokens, token_digests=token_digests, public_url=public_url)
    app.add_route("/metrics", metrics, methods=["GET"])
    app.add_route("/openapi.json", openapi, methods=["GET"])
    return app
