"""A SCIM 2.0 service provider as a source: exact initial reads, ``meta.lastModified`` deltas.

Initial read
    ``startIndex``/``count`` is the only paging every SCIM service has, and it is not stable:
    a resource deleted before the current position moves every later one back by one, so
    the next page silently starts one resource late (and an insert repeats one). A watermark
    holding a startIndex alone would skip resources, and a full read that skips one makes
    the engine deprovision it. So the read sorts by ``id`` when the service can sort
    (``sortBy=id``: an order of survivors no write can change; without sort support the
    service's own order is assumed stable, as a primary key order is), and every request
    after the first asks for a window ``back`` positions wider on both sides of where the
    last page ended and keeps only what follows the newest of the last ``lookback`` ids
    already read. Finding one of them proves the answer is contiguous with what was read;
    finding none means more than ``back`` resources were deleted or created before the
    position, so ``back`` doubles and the request is repeated. A page's watermark holds the
    delta start, the next position and the last ``lookback`` ids; resuming asks the same
    question, so it is exact whatever was written meanwhile. A resource created during the
    read before the position is not read, but it is newer than the delta start, so the
    delta brings it. The price is ``2 * lookback`` extra resources per request and, only
    while many resources are written under the read, a repeated request.
    (``filter=id gt "last"`` would need no overlap, but ``gt`` on ``id`` is rarely supported
    and makes the in-memory server test every resource per page: quadratic.)
    The delta start is the newest ``meta.lastModified`` on the service *before* the scan
    (``sortBy=meta.lastModified&sortOrder=descending&count=1``): server time, never the local
    clock, and every write after that instant is stamped later.

Delta (needs filter and sort support and ``meta.lastModified``)
    ``filter=meta.lastModified gt "W - overlap"`` sorted by ``meta.lastModified``, paged as
    above; W becomes the newest lastModified read. Resources in the overlap that were read
    with that same lastModified are remembered in the watermark and not returned again, so
    an idle service yields an empty delta. A lastModified may be when a write started, and
    a slow write becomes visible later with an older stamp: one found inside the overlap
    that the last read did not see came late by that much, and the window then keeps twice
    the longest such lateness in view (``reach``, in the watermark and remembered by the
    source for its next full read's deltas). A write slower than the window before any such
    sign is still missed until it changes again. Deletes leave no timestamp. Two mechanisms:

    * Within one process the source remembers the ids of its last read of each type (a few
      dozen bytes each). A delta compares the service's ``totalResults`` with what it expects
      (remembered ids plus new ones); when some are missing it scans ids only
      (``attributes=id``, exact as above) and returns the missing ones as deletes.
    * Otherwise (a restarted engine, or a watermark not from the last read) deletes are
      found by a delete scan: once per ``delete_scan_interval`` of server time (the newest
      lastModified, so the clock moves only with writes) a delta raises
      ``WatermarkExpired("delete scan due")`` and the engine reads everything again and
      deprovisions what it did not see, as the LDAP source's timestamp mode does.

    A service without filtering, sorting or lastModified raises WatermarkExpired on every
    delta: each cycle is a reconciling full read.

References
    ``manager`` and ``members`` hold resource ids, which are the anchors, so nothing needs
    translating (``capabilities`` says REFERENCES).
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote as url_quote

import attrs

from connectors.base import (
    Attributes,
    Capability,
    Change,
    ConnectorError,
    CredentialsError,
    ObjectError,
    Page,
    TransientError,
    UnreachableError,
    WatermarkExpired,
)
from connectors.discovery import DiscoveredSchema
from connectors.scim import discovery
from connectors.scim.client import ScimClient, ScimEndpointMissing, ScimNotFound
from connectors.scim.paths import GROUP_ATTRIBUTES, USER_ATTRIBUTES, flatten, parse, quote

ENDPOINTS = {"User": "/Users", "Group": "/Groups"}
DEFAULT_ATTRIBUTES = {"User": USER_ATTRIBUTES, "Group": GROUP_ATTRIBUTES}
_VERSION = "scim1:"
_MAX_RETRIES_PER_PAGE = 30
_MAX_OVERLAP_IDS = 200
_REMEMBERED_GENERATIONS = 2


@attrs.frozen
class _Features:
    """What the service says it supports (ServiceProviderConfig), read once."""

    filter: bool
    sort: bool


@attrs.define
class _Mark:
    """A watermark's content. ``mode`` f: initial read at ``position`` after ``tail``;
    d: delta after ``since``. ``since`` None: the service was empty when the read started."""

    mode: str
    since: str | None
    scanned: str | None  # server time of the last full read (the last delete scan)
    position: int = 1
    tail: list[str] = attrs.Factory(list)
    overlap: list[list[str]] = attrs.Factory(list)  # [id, lastModified] read at the edge
    token: str | None = None  # names the remembered ids this watermark goes with
    #: seconds the delta window has been widened to (0: the configured overlap), learned from
    #: resources that showed up late
    reach: float = 0.0
    #: ``overlap`` is everything the last read saw inside the window: a resource found there
    #: now with an older stamp than ``since`` became visible after that read (it came late)
    measured: bool = False

    def dump(self) -> str:
        return _VERSION + json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> _Mark:
        if not text.startswith(_VERSION):
            raise WatermarkExpired(f"not a SCIM source watermark: {text[:40]!r}")
        try:
            mark = cls(**json.loads(text[len(_VERSION) :]))
        except (ValueError, TypeError) as error:
            raise WatermarkExpired(f"unreadable SCIM source watermark: {error}") from None
        if mark.mode not in ("f", "d"):
            raise WatermarkExpired(f"unknown SCIM source watermark mode {mark.mode!r}")
        reach = mark.reach
        if not (isinstance(reach, int | float) and math.isfinite(reach) and 0 <= reach <= 86400):
            raise WatermarkExpired(f"unreadable SCIM source watermark: reach {reach!r}")
        if not isinstance(mark.measured, bool):
            raise WatermarkExpired("unreadable SCIM source watermark: measured")
        return mark


def _lateness(fresh: Sequence[Mapping[str, Any]], since: str, known: timedelta) -> float:
    """Seconds by which the oldest stamp among resources not read before falls behind the
    last read's newest, within ``known`` of it (where that read remembered everything it
    saw): they became visible after that read, this long after their write was stamped."""
    edge = _when(since)
    stamps = [_when(m) for m in map(_modified, fresh) if m is not None]
    return max(
        [(edge - when).total_seconds() for when in stamps if edge - known < when < edge],
        default=0.0,
    )


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _modified(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("lastModified") if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else None


class ScimSource:
    """Users and Groups of a SCIM service (see the module docstring for how it reads)."""

    capabilities = frozenset({Capability.DELTA, Capability.REFERENCES})

    def __init__(
        self,
        base_address: str,
        token: str,
        *,
        ca_file: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        extra_attributes: Mapping[str, Sequence[str]] | None = None,
        delete_scan_interval: float = 3600.0,
        overlap: float = 1.0,
        lookback: int = 5,
    ) -> None:
        self.client = ScimClient(
            base_address, token, ca_file=ca_file, verify=verify, timeout=timeout, role="source"
        )
        extra = extra_attributes or {}
        self.attributes = {
            kind: tuple(dict.fromkeys([*names, *extra.get(kind, ())]))
            for kind, names in DEFAULT_ATTRIBUTES.items()
        }
        for names in self.attributes.values():
            for name in names:
                parse(name)  # a typo fails here, not in the middle of a read
        self.delete_scan_interval = delete_scan_interval
        self.overlap = timedelta(seconds=overlap)
        self.lookback = max(lookback, 1)
        self._features: _Features | None = None
        self._known: dict[str, dict[str, frozenset[str]]] = {}
        #: the widest reach a delta of each type learned in this process (a full read's
        #: watermark starts without one)
        self._reach: dict[str, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScimSource({self.client.shown_address!r})"

    # ------------------------------------------------------------------ Source protocol
    def object_types(self) -> Sequence[str]:
        return list(ENDPOINTS)

    def read(self, object_type: str, watermark: str | None, page_size: int) -> Iterator[Page]:
        endpoint = self._endpoint(object_type)
        if watermark is None:
            return self._full(object_type, endpoint, None, page_size)
        mark = _Mark.load(watermark)
        if mark.mode == "f":
            return self._full(object_type, endpoint, mark, page_size)
        return self._delta(object_type, endpoint, mark, page_size)

    def get(self, object_type: str, anchor: str) -> Attributes | None:
        endpoint = self._endpoint(object_type)
        if anchor in ("", ".", ".."):  # the endpoint itself (a list), or the one above it
            return None
        try:  # one path segment: "../Groups/x", "x?y" or "x#y" must not name another resource
            resource = self.client.get(f"{endpoint}/{url_quote(anchor, safe='')}")
        except ScimNotFound:
            return None
        if str(resource.get("id")) != anchor:  # what answered is not that resource (a list)
            return None
        return flatten(resource, self.attributes[object_type])

    def lookup(self, object_type: str, attribute: str, value: str) -> list[str]:
        """The ids of the resources whose ``attribute`` equals ``value`` (a filter ``eq``),
        for provision on demand's subject given by userName rather than id. An attribute
        the service refuses to filter on (or one no SCIM name, a DN's ``dn``) finds none."""
        endpoint = self._endpoint(object_type)
        if not attribute.replace(".", "").isalnum():
            return []
        query: dict[str, str | int] = {"filter": f"{attribute} eq {quote(value)}", "count": 10}
        try:
            answer = self.client.get(endpoint, query)
        except ObjectError:  # 400 invalidFilter: not an attribute this service filters on
            return []
        found = answer.get("Resources") or []
        return sorted({str(r["id"]) for r in found if isinstance(r, dict) and r.get("id")})

    def validate(self) -> None:
        """The base address answers (ServiceProviderConfig, or a Users query when the service
        has none) and accepts the token; the error says which of the two failed."""
        address = f"{self.client.role} BaseAddress {self.client.shown_address}".lstrip()
        try:
            self._features = None
            self.features()
        except UnreachableError as error:
            reason = str(error).removeprefix(f"{self.client.role} ")  # said once, in address
            raise UnreachableError(f"{address} does not answer: {reason}") from None
        try:
            self.client.get("/Users", {"count": 1})
        except CredentialsError:
            raise CredentialsError(
                f"{address} answers, but refused the SecretToken (HTTP 401/403)"
            ) from None
        except (ScimNotFound, ScimEndpointMissing):
            raise UnreachableError(f"{address} has no /Users endpoint") from None

    def discover(self) -> DiscoveredSchema:
        """User and Group as the service's /Schemas and /ResourceTypes describe them."""
        return discovery.discover(self.client)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ initial read
    def _full(
        self, object_type: str, endpoint: str, mark: _Mark | None, page_size: int
    ) -> Iterator[Page]:
        features = self.features()
        if mark is None:
            since = self._newest_modified(endpoint) if self._delta_ready(features) else None
            mark = _Mark("f", since, since)
            seen: set[str] | None = set()  # ids of this read, when it started here
        else:
            seen = None
        params = {"sortBy": "id"} if features.sort else {}
        edge: list[list[str]] = []
        window = self._window_start(mark.since)
        for resources, position, tail, remaining in self._scan(
            endpoint, params, mark.position, mark.tail, page_size
        ):
            if seen is not None:
                seen.update(r["id"] for r in resources)
            if window is not None:
                edge += self._at_edge(resources, window, mark.since)
            mark = attrs.evolve(mark, position=position, tail=tail)
            yield Page(self._upserts(object_type, resources), mark.dump(), remaining)
        token = self._remember(object_type, frozenset(seen)) if seen is not None else None
        final = _Mark(
            "d", mark.since, mark.scanned, overlap=edge[-_MAX_OVERLAP_IDS:], token=token,
            measured=seen is not None and len(edge) < _MAX_OVERLAP_IDS,
        )  # fmt: skip
        yield Page([], final.dump())

    def _scan(
        self,
        endpoint: str,
        params: Mapping[str, str],
        position: int,
        tail: Sequence[str],
        page_size: int,
    ) -> Iterator[tuple[list[dict[str, Any]], int, list[str], int | None]]:
        """Non-empty pages of ``endpoint`` from ``position`` on, each continuing exactly after
        ``tail`` (the ids read last): (resources, the next position, the new tail, how many
        resources the server says are left from this page on)."""
        tail = list(tail)
        back = self.lookback if tail else 0
        retries = 0
        while True:
            start = max(1, position - back)
            want = page_size + (position - start) + back  # the tail may have moved either way
            answer = self.client.get(endpoint, {**params, "startIndex": start, "count": want})
            resources = [r for r in answer.get("Resources") or [] if isinstance(r, dict)]
            total = answer.get("totalResults")
            more = isinstance(total, int) and start + len(resources) - 1 < total
            more = more and bool(resources)
            fresh_from = 0
            if tail:
                known = set(tail)
                hits = [i for i, r in enumerate(resources) if r.get("id") in known]
                if hits:
                    fresh_from = hits[-1] + 1
                elif more or start > 1:  # the tail moved further than ``back``: look wider
                    retries += 1
                    if retries > _MAX_RETRIES_PER_PAGE:
                        raise TransientError(f"{endpoint}: the result set kept shifting")
                    back = max(back * 2, self.lookback)
                    continue
                # start == 1 and no tail id left: every id of the tail was deleted, so the
                # position is unknown; what follows is read again (repeats, nothing skipped)
            fresh = resources[fresh_from : fresh_from + page_size]
            position = start + fresh_from + len(fresh)
            if not fresh:
                if not more:
                    return
                retries += 1
                if retries > _MAX_RETRIES_PER_PAGE:
                    raise TransientError(f"{endpoint}: the result set kept shifting")
                back = self.lookback
                continue
            tail = [*tail, *(r["id"] for r in fresh)][-self.lookback :]
            back = self.lookback
            retries = 0
            left = None  # the server's count can shift under a running read: at least this page
            if isinstance(total, int):
                left = max(total - (position - len(fresh)) + 1, len(fresh))
            yield fresh, position, tail, left
            if not more and fresh_from + len(fresh) >= len(resources):
                return

    # ------------------------------------------------------------------ delta
    def _delta(
        self, object_type: str, endpoint: str, mark: _Mark, page_size: int
    ) -> Iterator[Page]:
        features = self.features()
        if not self._delta_ready(features):
            raise WatermarkExpired(
                f"{self.client.shown_address} cannot filter and sort on meta.lastModified: "
                "every cycle is a full read"
            )
        now = self._newest_modified(endpoint)
        scanned = mark.scanned or now
        if (
            now is not None
            and scanned is not None
            and (_when(now) - _when(scanned)).total_seconds() >= self.delete_scan_interval
        ):
            raise WatermarkExpired(f"delete scan due (last full read {scanned}, now {now})")
        reach = max(mark.reach, self._reach.get(object_type, 0.0))
        overlap = max(self.overlap, timedelta(seconds=reach))
        known = max(self.overlap, timedelta(seconds=mark.reach))  # where mark.overlap is whole
        params: dict[str, str] = {"sortBy": "meta.lastModified"}
        if mark.since is not None:
            after = _stamp(_when(mark.since) - overlap)
            params["filter"] = f"meta.lastModified gt {quote(after)}"
        repeated = {(i, m) for i, m in mark.overlap}
        newest = mark.since
        changed: set[str] = set()
        read: list[dict[str, Any]] = []
        late = 0.0
        for resources in self._delta_pages(endpoint, params, page_size):
            fresh = [r for r in resources if (r.get("id"), _modified(r)) not in repeated]
            stamps = [m for m in map(_modified, resources) if m is not None]
            if stamps:
                newest = max([newest, *stamps] if newest else stamps, key=_when)
            if mark.measured and mark.since is not None:
                late = max(late, _lateness(fresh, mark.since, known))
            changed.update(r["id"] for r in fresh)
            read += [{"id": r["id"], "meta": {"lastModified": _modified(r)}} for r in resources]
            if fresh:
                # replaying from here repeats what shares the newest stamp: harmless upserts
                page_mark = _Mark("d", newest, scanned, reach=reach)
                yield Page(self._upserts(object_type, fresh), page_mark.dump())
        if late:  # a write became visible this long after its stamp: keep twice that in view
            reach = min(max(reach, 2 * late), 86400.0)
            with self._lock:
                self._reach[object_type] = max(self._reach.get(object_type, 0.0), reach)
        deletes, token = self._deletes(object_type, endpoint, mark.token, changed, page_size)
        # only what was read (now or by the last read) is left out of the next overlap: a
        # write that shows up late with an older stamp must still come
        window = self._window_start(newest, reach)
        edge: list[list[str]] = []
        if window is not None:
            earlier = [{"id": i, "meta": {"lastModified": m}} for i, m in mark.overlap]
            edge = self._at_edge([*earlier, *read], window, newest)
            edge = [list(pair) for pair in dict.fromkeys(tuple(p) for p in edge)]
        # a window widened past what this read asked for holds resources it did not read:
        # the next read must not take them for late writes (that would widen it again)
        whole = len(edge) < _MAX_OVERLAP_IDS and reach <= overlap.total_seconds()
        final = _Mark(
            "d", newest, scanned, overlap=edge[-_MAX_OVERLAP_IDS:], token=token, reach=reach,
            measured=whole,
        )  # fmt: skip
        yield Page(deletes, final.dump(), inferred_deletes=bool(deletes))

    def _delta_pages(
        self, endpoint: str, params: Mapping[str, str], page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        for resources, *_ in self._scan(endpoint, params, 1, [], page_size):
            yield resources

    def _deletes(
        self,
        object_type: str,
        endpoint: str,
        token: str | None,
        changed: set[str],
        page_size: int,
    ) -> tuple[list[Change], str | None]:
        """Deletes of remembered ids, found by a count and confirmed by an id scan."""
        with self._lock:  # least recently used goes first: a plan's read keeps the job's
            generations = self._known.get(object_type, {})
            known = generations.pop(token or "", None)
            if known is not None:
                generations[token or ""] = known
        if known is None:
            return [], None
        total = self.client.get(endpoint, {"count": 0}).get("totalResults")
        expected = len(known | changed)
        if isinstance(total, int) and total >= expected:
            return [], self._remember(object_type, known | changed)
        params = {"attributes": "id", **({"sortBy": "id"} if self.features().sort else {})}
        present = {
            r["id"]
            for resources, *_ in self._scan(endpoint, params, 1, [], max(page_size, 500))
            for r in resources
        }
        gone = sorted(known - present - changed)
        token = self._remember(object_type, frozenset((known | changed) - set(gone)))
        return [Change("delete", anchor) for anchor in gone], token

    # ------------------------------------------------------------------ helpers
    def features(self) -> _Features:
        """ServiceProviderConfig's filter and sort support (none if it has no such endpoint)."""
        if self._features is None:
            try:
                config = self.client.get("/ServiceProviderConfig")
            except ScimNotFound:
                config = {}
            except ConnectorError as error:
                if isinstance(error, UnreachableError | TransientError):
                    raise
                config = {}
            self._features = _Features(
                filter=bool((config.get("filter") or {}).get("supported")),
                sort=bool((config.get("sort") or {}).get("supported")),
            )
        return self._features

    @staticmethod
    def _delta_ready(features: _Features) -> bool:
        return features.filter and features.sort

    def _newest_modified(self, endpoint: str) -> str | None:
        answer = self.client.get(
            endpoint,
            {
                "sortBy": "meta.lastModified",
                "sortOrder": "descending",
                "count": 1,
                "attributes": "meta.lastModified",
            },
        )
        resources = answer.get("Resources") or []
        return _modified(resources[0]) if resources else None

    def _window_start(self, since: str | None, reach: float = 0.0) -> datetime | None:
        overlap = max(self.overlap, timedelta(seconds=reach))
        return None if since is None else _when(since) - overlap

    @staticmethod
    def _at_edge(
        resources: Sequence[Mapping[str, Any]], window: datetime, since: str | None
    ) -> list[list[str]]:
        """[id, lastModified] of resources read unchanged inside the overlap window."""
        limit = None if since is None else _when(since)
        edge = []
        for resource in resources:
            modified = _modified(resource)
            if modified is None or limit is None:
                continue
            if window < _when(modified) <= limit:
                edge.append([resource["id"], modified])
        return edge

    def _remember(self, object_type: str, ids: frozenset[str]) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            generations = self._known.setdefault(object_type, {})
            generations[token] = ids
            while len(generations) > _REMEMBERED_GENERATIONS:
                generations.pop(next(iter(generations)))
        return token

    def _upserts(self, object_type: str, resources: Sequence[Mapping[str, Any]]) -> list[Change]:
        names = self.attributes[object_type]
        return [Change("upsert", r["id"], flatten(r, names)) for r in resources]

    def _endpoint(self, object_type: str) -> str:
        try:
            return ENDPOINTS[object_type]
        except KeyError:
            raise ValueError(
                f"unknown object type {object_type!r} (known: {', '.join(ENDPOINTS)})"
            ) from None
