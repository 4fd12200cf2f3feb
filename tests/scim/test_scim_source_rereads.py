"""A SCIM source read again from one watermark, as plans do between two cycles: the ids it
remembers for that watermark (how its deltas find deletes) are kept while they are read, so
the job's own next delta still sees a delete (a ScimSource keeps two generations)."""

from __future__ import annotations

from collections.abc import Callable

from connectors.scim import ScimSource
from tests.scim.server import ScimServer


def test_reads_again_from_one_watermark_keep_its_deletes_found(
    make_scim_server: Callable[[str], ScimServer],
) -> None:
    server = make_scim_server("rereads")
    ids = [server.create("Users", {"userName": f"u{n}"})["id"] for n in range(4)]
    source = ScimSource(server.url, server.token.reveal())
    mark = list(source.read("User", None, 10))[-1].watermark
    for _ in range(3):  # three plans between two cycles
        list(source.read("User", mark, 10))
    server.request("DELETE", f"/Users/{ids[1]}")
    changes = [c for p in source.read("User", mark, 10) for c in p.changes]
    assert [(c.kind, c.anchor) for c in changes if c.kind == "delete"] == [("delete", ids[1])]
