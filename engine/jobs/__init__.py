"""Jobs over a state store: ``SyncEngine``, the one public facade, and the parts it delegates
to, one job each.

What lives here: ``_engine`` (the facade), ``_applications`` (applications and their
secrets), ``_commands`` (job and schema commands), ``_connections`` (connectors built from
templates and secrets, cached; validateCredentials; discover), ``_execution`` (leases, running
a cycle, finishing it; provision on demand), ``_scheduling`` with ``_due_heap`` (which job is
due, and when: a heap in memory), ``_figures`` (every job's figures at once, for /metrics),
``_records`` (provisioning logs, escrows, pending changes), ``_restore`` (an operator takes
back a staged delete), ``_rows`` (a job's stored row: read, status, atomic update),
``_mappings`` (compiled mappings, cached per schema), ``_plan`` with ``_plan_targets``,
``_plan_changes``, ``_plan_compare`` and ``_plan_show`` (a plan of the next cycle, and its
apply) and ``_on_demand`` (provision on demand's subject).

What it may import: ``engine.cycle``, ``engine.store``, ``engine.templates`` and the pure
core; never ``engine.service``.
"""

from engine.jobs._engine import DEFAULT_APPLICATION, SyncEngine
from engine.jobs._figures import JobFigures

__all__ = ["DEFAULT_APPLICATION", "JobFigures", "SyncEngine"]
