"""A log that spans days (loaded with slapadd, as a server writes one over weeks): a full read
starts its delta at the log's newest record however far behind (or ahead of) this machine's
clock it is, and a delta after it reads the next write, nothing older (issue #21, point 1:
the newest record is searched from now backwards, and a delta asks by reqEnd alone, so what a
read costs slapd does not grow with the log)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import Change
from connectors.ldap import LdapEndpoint, LdapSource, people
from engine import SystemClock
from tests.ldap.slapd import BASE_DN, ROOT_DN, Slapd, spread_accesslog

NOW = SystemClock().now()


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (NOW - timedelta(days=6), NOW - timedelta(days=2)),  # an idle log: its newest is old
        (NOW - timedelta(days=3), NOW + timedelta(hours=2)),  # a server clock ahead of ours
    ],
)
def test_a_log_of_days_is_read_from_its_newest_record(
    make_slapd: Callable[..., Slapd], first: datetime, last: datetime
) -> None:
    log = spread_accesslog(3000, first, last, f"ou=people,{BASE_DN}")
    server = make_slapd("days", accesslog_ldif=log)
    endpoint = LdapEndpoint(url=server.url, bind_dn=ROOT_DN, password=server.password.reveal())
    # ou=people of the seed: there already, so reading it writes no record of its own
    source = LdapSource(endpoint, [people(BASE_DN)], directory_base=BASE_DN)
    try:
        watermark = None
        for page in source.read("User", None, 500):
            watermark = page.watermark
        assert watermark is not None
        newest = (last.astimezone(UTC)).strftime("%Y%m%d%H%M%S")
        assert watermark.startswith(f"a:{newest}"), watermark  # the last of the 3,000
        if last > NOW:  # this server's own next write is stamped behind its log: not a case
            return
        connection = server.connect()
        connection.add(
            f"uid=after-the-log,ou=people,{BASE_DN}",
            ["inetOrgPerson"],
            {"cn": "After", "sn": "After", "employeeNumber": "after-the-log"},
        )
        connection.unbind()
        changes: list[Change] = []
        for page in source.read("User", watermark, 500):
            changes += page.changes
        names = [c.attributes.get("employeeNumber") for c in changes if c.attributes]
        assert names == ["after-the-log"], (changes, watermark)
    finally:
        source.close()
