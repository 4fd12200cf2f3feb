"""The service around the engine: what runs it as a daemon and what people type.

What lives here: ``runner`` (a scheduling thread and a bounded pool of cycle workers),
``serve`` (``syncjob serve``: settings, tokens, uvicorn and the Runner), ``api/`` (Graph's
synchronization API over HTTP), ``cli`` (the ``syncjob`` command), ``client`` (the CLI's HTTP
client of a daemon) and ``progress_bar`` (``run --once``'s bar).

What it may import: ``engine.jobs`` (``SyncEngine``) and everything below it. Nothing in the
engine imports this package.
"""
