"""Adversary tests of issue 19 (Active Directory as source and target) against real Samba DCs:
hostile watermarks, references to a DN another entry took over, and an account created in one
write (nothing a crash between two writes could leave half made)."""

from __future__ import annotations

import base64
import uuid

import pytest

from connectors.base import WatermarkExpired
from tests.ad.ad_objects import add_ou, add_users
from tests.ad.samba import SambaDc
from tests.ad.test_ad_deltas import make_source, read


def _hostile(mode: str, mark: str) -> list[str]:
    if mode == "usn":
        dc = mark[2:].rpartition(":")[0]
        return [
            f"u:{dc}:\u00b2",  # str.isdigit() is True for it, int() refuses it
            f"u:{dc}:-1", f"u:{dc}:{10**30}", f"u:{dc}:", "u:", "u:garbage",
            f"u:{uuid.uuid4()}:5",  # another DC's invocationId
            f"f:u:{dc}:\u00b2|{uuid.uuid4()}",  # a full read's resume point with a bad start
            f"f:u:garbage|{uuid.uuid4()}",
        ]  # fmt: skip
    cookie = base64.b64decode(mark[2:])
    cut = base64.b64encode(cookie[: len(cookie) // 2]).decode()
    return [
        "d:!!!", "d:a|b|c", f"d:{cut}",  # a cookie cut short: Samba says LDAP 12 to it
        "d:" + base64.b64encode(cookie[:-1]).decode(),
        "d:" + base64.b64encode(cookie[:10] + b"\xff" * (len(cookie) - 10)).decode(),
        f"f:d:!!!|{uuid.uuid4()}",
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["usn", "dirsync"])
def test_a_hostile_watermark_reads_everything_again(module_dc: SambaDc, mode: str) -> None:
    """Every corrupted watermark is WatermarkExpired (the engine reads everything again), never
    another error that fails every cycle, and never a resume that ends on a bad watermark."""
    tag = uuid.uuid4().hex[:6]
    with module_dc.connect() as connection:
        root = add_ou(connection, f"h{tag}")
        add_users(connection, [f"h{i}{tag}" for i in range(3)], root)
    source = make_source(module_dc, root, mode)
    try:
        _, pages = read(source, "User", None)
        for mark in _hostile(mode, pages[-1].watermark):
            with pytest.raises(WatermarkExpired):
                read(source, "User", mark)
    finally:
        source.close()
