"""Deltas of an Active Directory source from DirSync (``delta_mode="dirsync"``).

The DirSync control (1.2.840.113556.1.4.841), rooted at the naming context that holds the
type's base, returns the objects changed since an opaque cookie (with only their changed
attributes) and the cookie after them; the watermark is ``d:<cookie, base64>``. A delete
comes as the tombstone (``isDeleted: TRUE``) and a group's member changes as values
(``member;range=1-1`` added, ``member;range=0-0`` removed: the incremental-values flag, so
that one new member of a large group is not the whole list). The Change the engine takes is
an object's whole state, so the reader uses what DirSync says only to know which objects
changed, and the source reads them as they are now (:mod:`connectors.ldap._ad`); the engine
then sends a target one member value, not the list, by comparing with what it exported.

One DirSync answer (Samba answers everything in one; Windows in parts of about MaxBytes,
saying "more data") is split into pages of the engine's size in objectGUID order; a page
inside an answer has the watermark ``d:<cookie before>|<cookie after>|<last objectGUID>``.
Resuming from it asks DirSync from the cookie before again and skips the objectGUIDs up to
the last one: what changed again since then is after the cookie after, which the read
continues from, so nothing is skipped (some is read twice, which is harmless).

A full read starts its delta with :meth:`DirSyncReader.start`: a DirSync with a filter that
matches nothing, run to its end (AD walks the changes and returns none), taken before the
anchor scan. DirSync needs the "Replicating Directory Changes" right on the naming context
(Domain Admins have it); without it the error says so and names the ``usn`` mode.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator

from ldap3.protocol.microsoft import dir_sync_control

from connectors.base import ConnectorError, Page, WatermarkExpired
from connectors.ldap._ad import Resolve, guid_of
from connectors.ldap._common import Channel
from connectors.ldap._entries import ReadState
from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapObjectError

DIRSYNC = "1.2.840.113556.1.4.841"
_NOTHING = "(&(objectClass=*)(!(objectClass=*)))"
_EVERYTHING = "(objectClass=*)"
#: bytes of one DirSync answer Windows aims at (Samba answers everything at once)
MAX_BYTES = 1 << 20
#: DirSync's calls at most before the reader gives up on "more data" that never ends
_MAX_CALLS = 100_000


class DirSyncReader:
    """Reads DirSync on ``channel`` (the source's read connection) from the naming context
    ``naming_context(type)`` and turns what changed into changes through ``resolve``."""

    def __init__(
        self,
        channel: Channel,
        resolve: Resolve,
        naming_context: Callable[[LdapObjectType], str],
        *,
        bind_dn: str | None,
        where: str = "",
        usn_hint: str = "use delta_mode='usn'",
    ) -> None:
        self._channel = channel
        self._resolve = resolve
        self._naming_context = naming_context
        self.bind_dn = bind_dn
        self.where = where.strip()
        #: how to do without DirSync, in the words of whoever configured the source
        self.usn_hint = usn_hint

    def start(self, kind: LdapObjectType, channel: Channel | None = None) -> str:
        """The watermark of "now": DirSync's cookie after every change made so far."""
        channel = channel or self._channel
        context = self._naming_context(kind)
        cookie = b""
        for _ in range(_MAX_CALLS):
            _, cookie, more = self._dirsync(channel, context, _NOTHING, cookie)
            if not more:
                return "d:" + _text(cookie)
        raise ConnectorError(f"DirSync on {context} said 'more data' {_MAX_CALLS} times")

    def read(self, kind: LdapObjectType, mark: str, page_size: int) -> Iterator[Page]:
        """What changed after the watermark's cookie, in pages of at most ``page_size``."""
        cookie, resume_after, last = _load(mark)
        context = self._naming_context(kind)
        state = ReadState()
        shown = ""
        for _ in range(_MAX_CALLS):
            entries, after, more = self._dirsync(self._channel, context, _EVERYTHING, cookie)
            anchors = sorted({a for a in map(guid_of, entries) if a is not None})
            if resume_after is not None:  # the answer a page of which was handled already
                anchors = [a for a in anchors if a > last]
                after, more, resume_after = resume_after, True, None
            for index in range(0, len(anchors), page_size):
                chunk = anchors[index : index + page_size]
                changes = self._resolve(kind, chunk, state)
                inside = index + page_size < len(anchors)
                shown = "d:" + (
                    f"{_text(cookie)}|{_text(after)}|{chunk[-1]}" if inside else _text(after)
                )
                yield Page(changes, shown)
            cookie = after
            if not more:
                break
        else:
            raise ConnectorError(f"DirSync on {context} said 'more data' {_MAX_CALLS} times")
        final = "d:" + _text(cookie)
        if shown != final:
            yield Page((), final)

    def _dirsync(
        self, channel: Channel, context: str, search_filter: str, cookie: bytes
    ) -> tuple[list[dict[str, object]], bytes, bool]:
        control = dir_sync_control(
            criticality=True, object_security=False, ancestors_first=False,
            public_data_only=False, incremental_values=True, max_length=MAX_BYTES,
            cookie=cookie or None,
        )  # fmt: skip
        try:
            entries, answered = channel.search_controls(context, search_filter, ["*"], [control])
        except LdapObjectError as error:
            raise self._refused(error, context, bool(cookie)) from None
        value = (answered.get(DIRSYNC) or {}).get("value") or {}
        next_cookie = value.get("cookie")
        if not isinstance(next_cookie, bytes):
            raise ConnectorError(
                f"{self._who()}DirSync on {context} answered without its control: the server "
                f"does not do DirSync (is it Active Directory?); {self.usn_hint}"
            )
        return entries, next_cookie, bool(value.get("more_results"))

    def _refused(self, error: LdapObjectError, context: str, had_cookie: bool) -> Exception:
        who = self.bind_dn or "the anonymous user"
        if error.code == 50:  # insufficientAccessRights
            return ConnectorError(
                f"{self._who()}DirSync on {context} was refused to {who}: DirSync needs the "
                "'Replicating Directory Changes' right on the naming context (Domain Admins "
                f"have it). Grant it, or read changes by uSNChanged instead: {self.usn_hint} "
                f"({error})"
            )
        if error.code == 12 and not had_cookie:  # unavailableCriticalExtension
            return ConnectorError(
                f"{self._who()}the server does not do DirSync (is it Active Directory?): "
                f"{self.usn_hint} ({error})"
            )
        if had_cookie:  # a cookie of another domain, one the DC no longer takes, or one
            # cut short (Samba answers that with LDAP 12, as if it did not do DirSync: it did
            # when the cookie was made, and start() without one says so if it no longer does)
            return WatermarkExpired(
                f"DirSync refused the watermark's cookie ({error}): reading everything again"
            )
        return error

    def _who(self) -> str:
        return f"{self.where}: " if self.where else ""


def _text(cookie: bytes) -> str:
    return base64.b64encode(cookie).decode("ascii")


def check(mark: str) -> None:
    """WatermarkExpired unless ``mark`` (without its ``d:``) is a DirSync watermark."""
    _load(mark)


def _load(mark: str) -> tuple[bytes, bytes | None, str]:
    """(cookie to ask from, the cookie after that answer or None, last objectGUID handled)."""
    parts = mark.split("|")
    try:
        if len(parts) == 1:
            return base64.b64decode(parts[0], validate=True), None, ""
        if len(parts) == 3 and parts[2]:
            before, after = (base64.b64decode(p, validate=True) for p in parts[:2])
            return before, after, parts[2]
    except (binascii.Error, ValueError):
        pass
    raise WatermarkExpired(f"not a DirSync watermark: {mark[:60]!r}")
