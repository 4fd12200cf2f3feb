"""Deltas of an Active Directory source from uSNChanged (``delta_mode="usn"``).

Every write on a DC gives the object the next update sequence number of that DC; the root
DSE's ``highestCommittedUSN`` is the newest committed one. A delta searches the naming context
for ``(uSNChanged>=N+1)`` with the Show Deleted control (1.2.840.113556.1.4.417), so the
tombstones under ``CN=Deleted Objects`` (which keep their objectGUID) come with the live
objects; the objects found are read as they are now (:mod:`connectors.ldap._ad`), in
uSNChanged order, and a page's watermark is the newest uSNChanged it handled (never past the
``highestCommittedUSN`` read before the search: a write still in flight then may commit
with a lower number than one seen).

USNs are one DC's own: the watermark is ``u:<invocationId>:<USN>``, the invocationId of the
DC's NTDS Settings (``dsServiceName``), which a DC restored from a backup changes too. A
watermark of another DC (a load balancer or a DNS name that moved), or one ahead of the DC,
raises WatermarkExpired: a reconciling full read. A full read starts its delta with
:meth:`UsnReader.start`, read before its anchor scan.

Deletes are seen only by an account that may list ``CN=Deleted Objects`` (Windows allows
that to administrators unless granted). :meth:`UsnReader.require` checks that the container
is visible, which on Windows it is not to other accounts; Samba shows it to any account but
hides the tombstones in it, which no check can tell from an empty container. So until the
account has been shown a tombstone, the watermark also keeps the DC's time of the last full
read (``u:<invocationId>:<USN>:<YYYYmmddHHMMSS>``), and a delta after ``delete_scan_interval``
raises ``WatermarkExpired("delete scan due ...")``: the engine reads everything and
deprovisions what it did not see, as in timestamp mode. Once a delta has returned a
tombstone, the watermark says so (``:*``) and no scan falls due again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import ldap3
from ldap3.protocol.microsoft import show_deleted_control

from connectors.base import ConnectorError, ObjectError, Page, WatermarkExpired
from connectors.ldap._ad import Resolve, guid_of, root_dse
from connectors.ldap._common import Channel, first_value, parse_time, scan_overdue, server_time
from connectors.ldap._entries import ReadState
from connectors.ldap.config import LdapObjectType


class UsnReader:
    """Reads uSNChanged deltas on ``channel`` (the source's read connection)."""

    def __init__(
        self,
        channel: Channel,
        resolve: Resolve,
        naming_context: Callable[[LdapObjectType], str],
        *,
        bind_dn: str | None,
        where: str = "",
        scan_page_size: int = 1000,
        delete_scan_interval: float = 3600.0,
    ) -> None:
        self._channel = channel
        self.delete_scan_interval = delete_scan_interval
        self._resolve = resolve
        self._naming_context = naming_context
        self.bind_dn = bind_dn
        self.where = where.strip()
        self.scan_page_size = scan_page_size

    def start(self, channel: Channel | None = None) -> str:
        """The watermark of "now" on this DC, with its time (a full read starts here)."""
        dc, highest = self._dc(channel or self._channel)
        return f"u:{dc}:{highest}:{server_time(channel or self._channel) or ''}"

    def require(self, kind: LdapObjectType, channel: Channel) -> None:
        """A ConnectorError when the DC cannot give what the mode needs: its USN and identity,
        and a view of the deleted objects."""
        self._dc(channel)
        context = self._naming_context(kind)
        deleted = f"CN=Deleted Objects,{context}"
        try:
            found = channel.search(
                deleted, "(objectClass=*)", ["1.1"], scope=ldap3.BASE,
                controls=[show_deleted_control(criticality=True)],
            )  # fmt: skip
        except ObjectError as error:
            found, reason = [], f" ({error})"
        else:
            reason = ""
        if not found:
            who = self.bind_dn or "the anonymous user"
            raise ConnectorError(
                f"{self._who()}{who} cannot see {deleted} with the Show Deleted control"
                f"{reason}, so the usn delta mode would never see a delete: grant the bind "
                "account List Contents and Read Property on it (dsacls), or bind as an account "
                "that may"
            )

    def read(self, kind: LdapObjectType, mark: str, page_size: int) -> Iterator[Page]:
        dc, since, scanned = parse(mark)
        current, highest = self._dc(self._channel)
        if dc != current:
            raise WatermarkExpired(
                f"the usn watermark is of another domain controller (invocationId {dc}, this "
                f"one is {current}: another DC answers, or this one was restored from a "
                "backup); USNs are per DC: reading everything again"
            )
        if since > highest:
            raise WatermarkExpired(
                f"the usn watermark ({since}) is ahead of the DC's highestCommittedUSN "
                f"({highest}): its database was rolled back; reading everything again"
            )
        self._check_scan_due(scanned)
        changed, tombstones = self._changed(self._naming_context(kind), since)
        tail = ":*" if tombstones or scanned == "*" else (f":{scanned}" if scanned else "")
        state = ReadState()
        index = 0
        while index < len(changed):
            end = min(index + page_size, len(changed))
            while end < len(changed) and changed[end][0] == changed[end - 1][0]:
                end += 1  # one USN is never split between pages
            chunk = changed[index:end]
            index = end
            changes = self._resolve(kind, [anchor for _, anchor in chunk], state)
            done = highest if index >= len(changed) else min(chunk[-1][0], highest)
            yield Page(changes, f"u:{dc}:{max(done, since)}{tail}")
        if not changed:
            yield Page((), f"u:{dc}:{highest}{tail}")

    def _check_scan_due(self, scanned: str) -> None:
        """WatermarkExpired when no tombstone was ever shown and the last full read is older
        than ``delete_scan_interval`` (DC time): deletes may have gone unseen. Nothing for a
        watermark that saw tombstones ("*") or was made before scans were kept ("")."""
        if scan_overdue(scanned, server_time(self._channel), self.delete_scan_interval):
            raise WatermarkExpired(
                f"delete scan due: the last full read was at {scanned}Z (DC time) and "
                f"{self.bind_dn or 'the bind account'} has not been shown a deleted object "
                "(tombstone) since, so deletes may have gone unseen; reading everything"
            )

    def _changed(self, context: str, since: int) -> tuple[list[tuple[int, str]], bool]:
        """(uSNChanged, objectGUID) of the objects changed after ``since``, tombstones too,
        oldest first; and whether a tombstone was among them."""
        newest: dict[str, int] = {}
        tombstones = False
        for entries in self._channel.pages(
            context, f"(uSNChanged>={since + 1})", ["objectGUID", "uSNChanged", "isDeleted"],
            self.scan_page_size, controls=[show_deleted_control(criticality=True)],
        ):  # fmt: skip
            for entry in entries:
                raw = entry["raw_attributes"]
                anchor = guid_of(entry)
                usn = first_value(raw, "uSNChanged") or ""
                if anchor is not None and usn.isascii() and usn.isdigit():
                    newest[anchor] = max(newest.get(anchor, 0), int(usn))
                tombstones = tombstones or (first_value(raw, "isDeleted") or "").upper() == "TRUE"
        return sorted((usn, anchor) for anchor, usn in newest.items()), tombstones

    def _dc(self, channel: Channel) -> tuple[str, int]:
        """The DC's identity (its invocationId; its NTDS Settings' DN where that cannot be
        read) and its highestCommittedUSN."""
        raw = root_dse(channel, ["highestCommittedUSN", "dsServiceName"])
        highest = first_value(raw, "highestCommittedUSN") or ""
        service = first_value(raw, "dsServiceName") or ""
        if not highest.isdigit() or not service:
            raise ConnectorError(
                f"{self._who()}the root DSE has no highestCommittedUSN or dsServiceName: the "
                "usn delta mode needs Active Directory"
            )
        try:
            found = channel.search(service, "(objectClass=*)", ["invocationId"], scope=ldap3.BASE)
        except ObjectError:
            found = []
        values = found[0]["raw_attributes"].get("invocationId") if found else None
        if values and len(values[0]) == 16:
            return str(uuid.UUID(bytes_le=bytes(values[0]))), int(highest)
        return service.replace(":", "_"), int(highest)

    def _who(self) -> str:
        return f"{self.where}: " if self.where else ""


def parse(mark: str) -> tuple[str, int, str]:
    """(the DC's invocationId, the USN, the last full read's DC time or ``*`` or "") of a
    watermark without its ``u:``; WatermarkExpired for anything else (ASCII digits only:
    ``str.isdigit`` takes "²", which int() refuses)."""
    dc, _, rest = mark.partition(":")
    text, _, scanned = rest.partition(":")
    valid_scan = scanned in ("", "*") or parse_time(scanned) is not None
    if not dc or not text.isascii() or not text.isdigit() or not valid_scan:
        raise WatermarkExpired(f"not a usn watermark: {mark[:60]!r}")
    return dc, int(text), scanned
