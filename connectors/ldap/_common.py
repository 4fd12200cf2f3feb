"""What the parts of the LDAP source share: a connection each thread uses under its own lock,
and the reading of the raw (bytes) attribute values the source asks ldap3 for.

Its own module so that the full read (:mod:`connectors.ldap.source`), the delta readers
(:mod:`connectors.ldap._accesslog`, :mod:`connectors.ldap._timestamps`) and the entry
converter (:mod:`connectors.ldap._entries`) depend on it rather than on each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import ldap3

from connectors.base import ObjectError, TransientError
from connectors.ldap.connection import LdapClient, LdapEndpoint

Entry = dict[str, Any]

TIME = "%Y%m%d%H%M%S"
FETCH_BATCH = 250  # equality terms per OR filter: well under any server's size limit


class Channel:
    """One LdapClient used by one thread at a time: the lock is held per operation only."""

    def __init__(self, endpoint: LdapEndpoint) -> None:
        self.client = LdapClient(endpoint)
        self.lock = threading.Lock()

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        scope: str = ldap3.SUBTREE,
        size_limit: int = 0,
        controls: Sequence[Any] = (),
    ) -> list[Entry]:
        with self.lock:
            return self.client.search(
                base, search_filter, attributes, scope=scope, size_limit=size_limit,
                controls=controls,
            )  # fmt: skip

    def search_controls(
        self, base: str, search_filter: str, attributes: Sequence[str], controls: Sequence[Any]
    ) -> tuple[list[Entry], dict[str, Any]]:
        """A subtree search with request controls, and the response's controls by OID."""
        with self.lock:
            return self.client.search_controls(base, search_filter, attributes, controls=controls)

    def pages(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        page_size: int,
        controls: Sequence[Any] = (),
    ) -> Iterator[list[Entry]]:
        """Pages of a paged search. A failure after the first page is transient: the cookie
        did not survive a reconnect, and the caller's watermark says where to start again."""
        pages = self.client.paged_search(
            base, search_filter, attributes, page_size, controls=controls
        )
        first = True
        while True:
            with self.lock:
                try:
                    entries, _ = next(pages)
                except StopIteration:
                    return
                except ObjectError as error:
                    if first:
                        raise
                    raise TransientError(f"paged search interrupted: {error}") from None
            first = False
            yield entries

    def close(self) -> None:
        with self.lock:
            self.client.close()


def values_of(raw: Mapping[str, list[bytes]], name: str) -> list[bytes]:
    """An attribute's values, its name matched case-insensitively: servers spell names as
    their schema does (Samba answers ``modifyTimeStamp`` when asked for modifyTimestamp)."""
    values = raw.get(name)
    if values is None:
        low = name.lower()
        values = next((v for k, v in raw.items() if k.lower() == low), None)
    return values or []


def first_value(raw: Mapping[str, list[bytes]], name: str) -> str | None:
    """The first value of an attribute as text, its name matched case-insensitively."""
    values = values_of(raw, name)
    return values[0].decode("utf-8", "replace") if values else None


def parse_time(raw: str | None) -> datetime | None:
    """The whole seconds of a GeneralizedTime, None when it is not one (or no real date)."""
    if not raw or len(raw) < 14 or not raw[:14].isascii() or not raw[:14].isdigit():
        return None
    try:
        return datetime.strptime(raw[:14], TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def stamp(raw: Mapping[str, list[bytes]]) -> str:
    """An entry's modifyTimestamp as YYYYmmddHHMMSS ("" if none): GeneralizedTime in UTC
    ("Z", as servers write operational timestamps) orders as a string, so no parsing."""
    found = first_value(raw, "modifyTimestamp") or ""
    return found[:14] if len(found) >= 14 and found[:14].isdigit() else ""


def format_time(moment: datetime) -> str:
    """A moment's whole seconds as a GeneralizedTime for filters, with a fraction (``.0Z``):
    Samba answers ``(modifyTimestamp>=…00Z)`` with every entry and ``…00.0Z`` correctly;
    OpenLDAP takes both."""
    return moment.strftime(TIME) + ".0Z"


def server_time(channel: Channel) -> str | None:
    """The root DSE's currentTime (AD has it; OpenLDAP does not) as YYYYmmddHHMMSS."""
    try:
        root = channel.search("", "(objectClass=*)", ["currentTime"], scope=ldap3.BASE)
    except ObjectError:
        return None
    moment = parse_time(first_value(root[0]["raw_attributes"], "currentTime") if root else None)
    return moment.strftime(TIME) if moment else None


def scan_overdue(scanned: str, now: str | None, interval: float) -> bool:
    """Whether a delete scan (a reconciling full read) last made at ``scanned`` is due at
    ``now`` (both server time, YYYYmmddHHMMSS); never when either is unknown."""
    last, current = parse_time(scanned), parse_time(now)
    return (
        last is not None and current is not None and ((current - last).total_seconds() >= interval)
    )
