"""Connectors: the Source/Target protocols and their implementations."""
