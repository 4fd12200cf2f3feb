"""The SCIM 2.0 connector: a source (:class:`ScimSource`) over :class:`ScimClient`.

:mod:`connectors.scim.client` is the one place that talks HTTP and turns its failures into the
engine's errors; :mod:`connectors.scim.paths` is the sans-I/O part (flattening a resource into
the attribute names Entra uses for a SCIM app, and back; filter escaping).
"""

from connectors.scim.client import ScimClient, ScimNotFound, ScimRefused
from connectors.scim.source import ScimSource

__all__ = ["ScimClient", "ScimNotFound", "ScimRefused", "ScimSource"]
