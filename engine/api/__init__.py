"""Graph's synchronization API over HTTP: ``create_app(engine, tokens)`` gives an ASGI app.

Every path exists under both ``/beta`` and ``/v1.0``, as Graph serves them; bodies are the
Graph JSON that :func:`engine.model.to_graph` writes and :func:`engine.model.from_graph` reads.
"""

from engine.api._routes import create_app

__all__ = ["create_app"]
