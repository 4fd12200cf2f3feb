"""LDAP string syntax, without I/O: filters (RFC 4515), DNs (RFC 4514), accesslog ``reqMod``.

Everything the LDAP connector sends or parses as text goes through here, so that a value
taken from a source directory can never change the meaning of a filter or a DN (an
injection), and so that these rules are tested against the RFCs' own examples without a
server. Nothing in this module opens a connection or imports ldap3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

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
_BYTE_ESCAPES = tuple(f"\\{byte:02x}" for byte in range(256))


def escape_filter_value(value: str | bytes) -> str:
    """Escape an assertion value for an RFC 4515 filter string.

    ``bytes`` (binary attributes, such as an objectGUID) become ``\\xx`` for every byte: a
    binary value is not text, and any byte left as itself can be misread on the way (ldap3
    strips whitespace around an assertion value, so a GUID starting or ending with 0x20
    matched nothing). ``str`` values are escaped character by character, and a first or last
    character that is whitespace is escaped too, for the same reason (its UTF-8 bytes, so a
    no-break space as ``\\c2\\a0``). Escapes use lower-case hex, as RFC 4515's own examples
    mostly do.
    """
    if isinstance(value, bytes):
        return "".join(_BYTE_ESCAPES[byte] for byte in value)
    parts: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _FILTER_ESCAPED or (index in (0, last) and char.isspace()):
            parts.extend(_BYTE_ESCAPES[byte] for byte in char.encode("utf-8"))
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


# ---------------------------------------------------------------------------------- DNs

# RFC 4514 §2.4: these are escaped anywhere in a value; "=" is not required by the RFC but is
# escaped as well, as many servers do, so that no value can look like a second AVA.
_RDN_SPECIALS = frozenset(',+"\\<>;=')
# What may follow a backslash as itself (RFC 4514 §3 "escaped" / "special").
_DN_ESCAPABLE = frozenset(' "#+,;<=>\\')
_HEX = frozenset("0123456789abcdefABCDEF")


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for an RDN string (RFC 4514 §2.4).

    ``, + " \\ < > ; =`` are escaped with a backslash anywhere, a leading space or ``#`` and a
    trailing space at the ends (a parser would otherwise drop the space, or read ``#`` as a
    hex-encoded BER value), and NUL as ``\\00``. A DN is built from source values (a name, an
    employee id), so a ``,`` in one must never become a new level of the tree.
    """
    parts: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char == "\x00":
            parts.append("\\00")
        elif (
            char in _RDN_SPECIALS
            or (index == 0 and char in " #")
            or (index == last and char == " ")
        ):
            parts.append("\\" + char)
        else:
            parts.append(char)
    return "".join(parts)


def _check_attribute_type(attribute: str) -> str:
    """An RDN's attribute type: a name or numeric OID, without options (RFC 4514 §3)."""
    if not _ATTRIBUTE_TYPE_RE.fullmatch(attribute):
        raise ValueError(f"not an LDAP attribute type: {attribute!r}")
    return attribute


def rdn(attribute: str, value: str) -> str:
    """The single-valued RDN ``attribute=value``, the attribute checked and the value escaped."""
    return f"{_check_attribute_type(attribute)}={escape_rdn_value(value)}"


def child_dn(rdn: str, parent_dn: str) -> str:
    """The DN of the entry named ``rdn`` (already built by :func:`rdn`) under ``parent_dn``.

    An empty parent is the root: the child's DN is then its RDN alone.
    """
    if not rdn:
        raise ValueError("an RDN cannot be empty")
    return f"{rdn},{parent_dn}" if parent_dn else rdn


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """Split a DN into its RDNs' ``(attribute, value)`` pairs, leaf first, values unescaped.

    Honours ``\\`` + special character and ``\\XX`` hex escapes (consecutive ones form UTF-8
    sequences, as in ``Lu\\C4\\8Di\\C4\\87``); unescaped spaces around types and values are
    dropped (RFC 2253 leniency; an escaped one is kept). The empty DN is ``[]``. Refused with
    ValueError, rather than guessed at: multi-valued RDNs (``+``), values in hex BER form
    (``#04...``), a bad attribute type, a bad escape, and escapes that are not UTF-8; the
    connector names entries with single-valued string RDNs only.
    """
    pairs: list[tuple[str, str]] = []
    if not dn.strip(" "):
        return pairs
    index = 0
    length = len(dn)
    while True:
        equals = dn.find("=", index)
        if equals < 0:
            raise ValueError(f"RDN without '=' in DN {dn!r}")
        attribute = _check_attribute_type(dn[index:equals].strip(" "))
        index = equals + 1
        while index < length and dn[index] == " ":
            index += 1
        if index < length and dn[index] == "#":
            raise ValueError(f"hex-encoded (BER) RDN values are not supported: {dn!r}")
        # The value as (bytes, escaped) tokens, so unescaped edge spaces can be dropped.
        tokens: list[tuple[bytes, bool]] = []
        while index < length and dn[index] not in ",+":
            char = dn[index]
            if char != "\\":
                tokens.append((char.encode("utf-8", "surrogatepass"), False))
                index += 1
                continue
            pair = dn[index + 1 : index + 3]
            if len(pair) == 2 and set(pair) <= _HEX:
                tokens.append((bytes([int(pair, 16)]), True))
                index += 3
            elif index + 1 < length and dn[index + 1] in _DN_ESCAPABLE:
                tokens.append((dn[index + 1].encode("utf-8"), True))
                index += 2
            else:
                raise ValueError(f"bad escape at position {index} in DN {dn!r}")
        if index < length and dn[index] == "+":
            raise ValueError(f"multi-valued RDNs are not supported: {dn!r}")
        while tokens and tokens[-1] == (b" ", False):
            tokens.pop()
        try:
            value = b"".join(token for token, _ in tokens).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"escaped bytes in DN {dn!r} are not UTF-8") from error
        pairs.append((attribute, value))
        if index >= length:
            return pairs
        index += 1  # past the ","


# ------------------------------------------------------------------- accesslog reqMod


@attrs.frozen(slots=True)
class ValueChange:
    """What one modify request did to one attribute, folded from its ``reqMod`` lines.

    Read it in this order (:meth:`apply` does): start from ``replace`` when it is set, else
    from nothing when ``clear``, else from the old values minus ``remove``; then add ``add``;
    then add ``increment`` to every (integer) value. A replace folds the adds that follow it
    into ``replace``, so ``add`` and ``remove`` are empty when ``replace`` is set. Values are
    compared exactly: the attribute's matching rule is the server's business, and accesslog
    records the values as the client sent them.
    """

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[str, ...] | None = None
    clear: bool = False
    increment: int = 0

    def apply(self, old: Sequence[str]) -> tuple[str, ...]:
        """The attribute's values after this change, given its values before it.

        Kept values come first, in their old order, then the added ones: LDAP values are a
        set, so the order only has to be deterministic.
        """
        if self.replace is not None:
            values = list(self.replace)
        elif self.clear:
            values = []
        else:
            values = [value for value in old if value not in self.remove]
        values += [value for value in self.add if value not in values]
        if self.increment:
            values = [str(int(value) + self.increment) for value in values]
        return tuple(values)


_REQ_MOD_OPS = frozenset("+-=#")


def _fold(change: ValueChange, op: str, value: str | None, continues_replace: bool) -> ValueChange:
    """``change`` followed by one ``reqMod`` line (see :class:`ValueChange` for the order)."""
    if change.increment and op != "#":
        raise ValueError("a change after an increment of the same attribute cannot be folded")
    if op == "#":
        if value is None:
            raise ValueError("an increment needs a value")
        return attrs.evolve(change, increment=change.increment + int(value))
    if op == "=":
        if value is None:
            return ValueChange(replace=())
        kept = change.replace if continues_replace and change.replace is not None else ()
        return ValueChange(replace=(*kept, value))
    if op == "-" and value is None:
        return ValueChange(clear=True)
    if value is None:
        raise ValueError("an add needs a value")
    if op == "+":
        if change.replace is not None:
            return attrs.evolve(change, replace=(*change.replace, value))
        return attrs.evolve(change, add=(*change.add, value))
    # op == "-" with a value: delete one value.
    if change.replace is not None:
        return attrs.evolve(change, replace=tuple(v for v in change.replace if v != value))
    if value in change.add:
        return attrs.evolve(change, add=tuple(v for v in change.add if v != value))
    if change.clear or value in change.remove:
        return change
    return attrs.evolve(change, remove=(*change.remove, value))


def parse_req_mod(lines: Sequence[str | bytes]) -> dict[str, ValueChange]:
    """Fold an OpenLDAP accesslog ``reqMod`` attribute into one :class:`ValueChange` per attribute.

    Each value is ``attr:+ v`` (add v), ``attr:- v`` (delete v), ``attr:-`` (delete all),
    ``attr:= v`` (replace; one line per new value), ``attr:=`` (replace with nothing) or
    ``attr:# v`` (increment by v), one line per value, in request order; the value is the raw
    text after ``op`` and one space (it may hold ``:`` and newlines; nothing is base64). This
    is the format slapd 2.5.13 wrote here (design/real-components.md, LDAP gotcha 3, and a
    modify of each kind checked against a throwaway slapd). reqMod has OctetString syntax, so
    ldap3 returns ``bytes``: they are decoded as UTF-8 (ValueError if they are not, which a
    binary attribute would need handling elsewhere). A lone ``:`` (an empty attribute) is the
    separator newer slapd versions put between modifications (ITS#6545) and is skipped.

    Lines of the same attribute (case-insensitive, keyed by the first spelling) accumulate
    in order. Consecutive ``attr:=`` lines are the values of one replace, since this format
    cannot tell them from two replaces in a row without the separator. The operational
    attributes slapd adds to every modify (entryCSN, modifiersName, modifyTimestamp) are
    returned like any other: the connector decides what to map. A malformed line raises
    ValueError rather than being skipped, since a skipped line would be a lost change.
    """
    changes: dict[str, ValueChange] = {}
    names: dict[str, str] = {}
    previous: tuple[str, str] | None = None  # (attribute key, op) of the line before
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if line == ":":
            previous = None
            continue
        colon = line.find(":")
        if colon < 0 or colon + 1 >= len(line) or line[colon + 1] not in _REQ_MOD_OPS:
            raise ValueError(f"not a reqMod value: {line!r}")
        attribute = check_attribute_description(line[:colon])
        op = line[colon + 1]
        rest = line[colon + 2 :]
        if rest and not rest.startswith(" "):
            raise ValueError(f"not a reqMod value (no space after the op): {line!r}")
        value = rest[1:] if rest else None
        key = names.setdefault(attribute.lower(), attribute)
        continues_replace = previous == (key, "=")
        changes[key] = _fold(changes.get(key, ValueChange()), op, value, continues_replace)
        previous = (key, op)
    return changes
