"""LDAP string syntax, without I/O: filters (RFC 4515), DNs (RFC 4514), accesslog ``reqMod``.

Everything the LDAP connector sends or parses as text goes through here, so that a value
taken from a source directory can never change the meaning of a filter or a DN (an
injection), and so that these rules are tested against the RFCs' own examples without a
server. Nothing in this module opens a connection or imports ldap3.
"""

from __future__ import annotations

import re

# RFC 4512 §1.4/§2.5: an attribute type is a descr (ALPHA then ALPHA / DIGIT / HYPHEN) or a
# numericoid (numbers without leading zeros, dot-separated); a description adds ;options.
_ATTRIBUTE_TYPE = r"(?:[A-Za-z][A-Za-z0-9-]*|(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+)"
_ATTRIBUTE_TYPE_RE = re.compile(_ATTRIBUTE_TYPE)
_ATTRIBUTE_DESCRIPTION_RE = re.compile(_ATTRIBUTE_TYPE + r"(?:;[A-Za-z0-9-]+)*")

# ------------------------------------------------------------------------------ filters

# RFC 4515 §3 requires escaping NUL, "(", ")", "*" and "\". The other C0 controls and DEL are
# allowed raw, but are escaped too: harmless for the server, and a filter that ends up in a
# log line or an error message then cannot carry a newline or a terminal escape.
_FILTER_ESCAPED = frozenset("*()\\\x7f") | frozenset(chr(code) for code in range(0x20))


def escape_filter_value(value: str | bytes) -> str:
    """Escape an assertion value for an RFC 4515 filter string.

    ``str`` values are escaped character by character. ``bytes`` (binary attributes, such as
    an objectGUID) keep their valid UTF-8 runs readable and turn every byte that is not part
    of valid UTF-8 into ``\\XX``, since a filter string is UTF-8 and only an escape can carry
    such a byte. Escapes use lower-case hex, as RFC 4515's own examples mostly do.
    """
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    parts: list[str] = []
    for char in text:
        if char in _FILTER_ESCAPED:
            parts.append(f"\\{ord(char):02x}")
        elif "\udc80" <= char <= "\udcff":  # a byte that was not valid UTF-8
            parts.append(f"\\{ord(char) - 0xDC00:02x}")
        else:
            parts.append(char)
    return "".join(parts)


def check_attribute_description(attribute: str) -> str:
    """Return ``attribute`` if it is an RFC 4512 attribute description, else raise ValueError.

    A name (letters, digits, hyphens, starting with a letter) or a numeric OID, optionally
    with ``;options``. Attribute names come from schemas people edit, and one carrying ``=``,
    ``(`` or ``,`` would change the filter or DN it is put into: refuse it, never escape it.
    """
    if not _ATTRIBUTE_DESCRIPTION_RE.fullmatch(attribute):
        raise ValueError(f"not an LDAP attribute description: {attribute!r}")
    return attribute


def equality_filter(attribute: str, value: str | bytes) -> str:
    """The equality filter ``(attribute=value)``, value escaped, attribute checked.

    This is how the connector finds a target object by its matching value (join before
    create), so the value must match literally: a ``*`` in it is escaped, never a wildcard.
    """
    check_attribute_description(attribute)
    return f"({attribute}={escape_filter_value(value)})"
