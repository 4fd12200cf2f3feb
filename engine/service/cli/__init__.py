"""The ``syncjob`` command line (click): ``main`` is the entry point.

What lives here: ``_root`` (the group and its logging option), one module per subject
(``_demo``, ``_serve``, ``_apps``, ``_jobs``, ``_secrets``, ``_logs``, ``_directories``,
``_provision``, ``_plan``, ``_restore``, ``_run``, ``_schemas``), and ``_daemon`` (the
options and exits of every command that calls a daemon).
It may import ``SyncEngine``, the daemon's client and everything below them; commands that
need a daemon talk to it over HTTP only.
"""

from engine.service.cli import (  # noqa: F401  (each registers its commands on main)
    _apps,
    _demo,
    _directories,
    _jobs,
    _logs,
    _plan,
    _provision,
    _restore,
    _run,
    _schemas,
    _secrets,
    _serve,
)
from engine.service.cli._demo import demo_directory
from engine.service.cli._root import main

__all__ = ["demo_directory", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
