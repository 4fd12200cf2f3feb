"""The service around the engine: what runs it as a daemon and what people type.

What lives here: ``runner`` (a scheduling thread and a bounded pool of cycle workers),
``serve`` (``syncjob serve``: settings, tokens, uvicorn and the Runner), ``api/`` (Graph's
synchronization API over HTTP), ``cli`` (the ``syncjob`` command), ``client`` (the CLI's HTTP
client of a daemon), ``progress_bar`` (``run --once``'s bar) and ``state_lock`` (one daemon
per state file).

What it may import: ``engine.jobs`` (``SyncEngine``) and everything below it. Nothing in the
engine imports this package.
"""
