"""The SCIM 2.0 connector: a source (:class:`ScimSource`) and a target (:class:`ScimTarget`)
over :class:`ScimClient`.

:mod:`connectors.scim.client` is the one place that talks HTTP and turns its failures into the
engine's errors; :mod:`connectors.scim.paths` is the sans-I/O part (flattening a resource into
the attribute names Entra uses for a SCIM app, and back; filter escaping);
:mod:`connectors.scim.patch` builds what the target sends (POST bodies, PATCH operations,
member chunks); :class:`ScimTarget` writes the engine's changes the way Entra's provisioning
service does, so an app that works with Entra works with it.
"""

from connectors.scim.client import ScimClient, ScimNotFound, ScimRefused
from connectors.scim.source import ScimSource
from connectors.scim.target import ScimTarget

__all__ = ["ScimClient", "ScimNotFound", "ScimRefused", "ScimSource", "ScimTarget"]
