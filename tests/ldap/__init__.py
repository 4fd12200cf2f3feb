"""Tests against real OpenLDAP servers: throwaway slapd instances (tests/ldap/slapd.py)."""
