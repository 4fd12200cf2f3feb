"""The SCIM 2.0 connector: :class:`ScimTarget` writes the engine's changes to a SCIM app the
way Entra's provisioning service does (RFC 7643/7644 over HTTPS with a bearer token).
"""
