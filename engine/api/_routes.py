"""The routes of Graph's synchronization API, each a thin call into :class:`SyncEngine`.

Handlers parse and check the whole body before the engine is called, and the engine checks
everything before it stores anything, so a refused request changes nothing. The engine is
synchronous (SQLite, connectors), so its calls run in Starlette's thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from engine._engine import SyncEngine
from engine.api._errors import (
    BearerAuth,
    GraphError,
    digest,
    on_engine_error,
    on_graph_error,
    on_http_error,
    on_unexpected,
)
from engine.errors import ConfigurationError, ModelError, SyncJobError
from engine.model import (
    Application,
    RestartRequest,
    SecretPair,
    SynchronizationJob,
    SynchronizationSchema,
    from_graph,
    to_graph,
)

T = TypeVar("T")
VERSIONS = ("/beta", "/v1.0")
#: what a client may send to create a job; the engine fills in everything else
_JOB_FIELDS = frozenset({"templateId", "schedule", "synchronizationJobSettings"})
_MASK = "*****"


@attrs.frozen(kw_only=True)
class _NewApplication:
    """POST /servicePrincipals: only the display name is the caller's to choose."""

    display_name: str | None = None


@attrs.frozen(kw_only=True)
class _Secrets:
    """PUT …/synchronization/secrets: ``{"value": [{"key", "value"}]}``."""

    value: tuple[SecretPair, ...] = ()


async def _body(request: Request, cls: type[T], *, optional: bool = False) -> T | None:
    """The request's JSON as ``cls``; malformed JSON or a wrong field is a 400 naming it."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return None
        raise GraphError(400, "invalidRequest", "the request needs a JSON body")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise GraphError(400, "invalidRequest", "the body is not valid JSON") from None
    return from_graph(data, cls)


def _engine(request: Request) -> SyncEngine:
    engine: SyncEngine = request.app.state.engine
    return engine


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def _version(request: Request) -> str:
    return "/" + request.url.path.split("/")[1]


def _collection(request: Request, context: str, values: Sequence[Any]) -> JSONResponse:
    metadata = f"{request.base_url}{_version(request).lstrip('/')}/$metadata#{context}"
    return JSONResponse({"@odata.context": metadata, "value": list(values)})


def _app_id(request: Request) -> str:
    return str(request.path_params["id"])


async def _job_id(request: Request) -> str:
    """The path's job, which must belong to the path's application (else 404)."""
    job_id = str(request.path_params["jobId"])
    await _call(_engine(request).get_job, job_id, application_id=_app_id(request))
    return job_id


# ------------------------------------------------------------------------- applications
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_applications(request: Request) -> Response:
    apps = await _call(_engine(request).list_applications)
    return _collection(request, "servicePrincipals", [to_graph(a) for a in apps])


async def create_application(request: Request) -> Response:
    new = await _body(request, _NewApplication, optional=True) or _NewApplication()
    app: Application = await _call(_engine(request).create_application, new.display_name)
    location = f"{str(request.url).rstrip('/')}/{app.id}"
    return JSONResponse(to_graph(app), 201, headers={"Location": location})


async def get_application(request: Request) -> Response:
    app = await _call(_engine(request).get_application, _app_id(request))
    return JSONResponse(to_graph(app))


async def delete_application(request: Request) -> Response:
    await _call(_engine(request).delete_application, _app_id(request))
    return Response(status_code=204)


# --------------------------------------------------------------------------------- jobs
async def list_jobs(request: Request) -> Response:
    engine = _engine(request)
    app = await _call(engine.get_application, _app_id(request))
    jobs = await _call(engine.list_jobs, app.id)
    context = f"servicePrincipals('{app.id}')/synchronization/jobs"
    return _collection(request, context, [to_graph(j) for j in jobs])


async def create_job(request: Request) -> Response:
    job = await _body(request, SynchronizationJob)
    assert job is not None
    sent = to_graph(job)
    extra = sorted(k for k in sent if k not in _JOB_FIELDS and sent[k] not in (None, []))
    if extra:
        raise ModelError(
            f"field(s) set by the engine, not the caller: {', '.join(extra)}", extra[0]
        )
    if job.template_id is None:
        raise ModelError("required field is missing @ $.templateId", "$.templateId")
    settings = {p.name: p.value or "" for p in job.synchronization_job_settings}
    created = await _call(
        _engine(request).create_job,
        job.template_id,
        schedule=job.schedule,
        settings=settings or None,
        application_id=_app_id(request),
    )
    location = f"{str(request.url).rstrip('/')}/{created.id}"
    return JSONResponse(to_graph(created), 201, headers={"Location": location})


async def get_job(request: Request) -> Response:
    job_id = str(request.path_params["jobId"])
    job = await _call(_engine(request).get_job, job_id, application_id=_app_id(request))
    return JSONResponse(to_graph(job))


async def delete_job(request: Request) -> Response:
    await _call(_engine(request).delete_job, await _job_id(request))
    return Response(status_code=204)


async def start(request: Request) -> Response:
    await _call(_engine(request).start, await _job_id(request))
    return Response(status_code=204)


async def pause(request: Request) -> Response:
    await _call(_engine(request).pause, await _job_id(request))
    return Response(status_code=204)


async def restart(request: Request) -> Response:
    job_id = await _job_id(request)
    body = await _body(request, RestartRequest, optional=True)
    criteria = body.criteria if body else None
    await _call(_engine(request).restart, job_id, criteria)
    return Response(status_code=204)


async def get_schema(request: Request) -> Response:
    schema = await _call(_engine(request).get_schema, await _job_id(request))
    return JSONResponse(to_graph(schema))


async def put_schema(request: Request) -> Response:
    job_id = await _job_id(request)
    schema = await _body(request, SynchronizationSchema)
    assert schema is not None
    await _call(_engine(request).update_schema, job_id, schema)
    return Response(status_code=204)


# ------------------------------------------------------------------ secrets, templates
async def put_secrets(request: Request) -> Response:
    body = await _body(request, _Secrets)
    assert body is not None
    secrets = {p.key: p.value or "" for p in body.value}
    await _call(_engine(request).set_secrets, _app_id(request), secrets)
    return Response(status_code=204)


async def get_secrets(request: Request) -> Response:
    """Keys only: a secret's value never leaves the engine, so every value reads as a mask."""
    keys = await _call(_engine(request).masked_secrets, _app_id(request))
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/secrets"
    return _collection(request, context, [{"key": k, "value": _MASK} for k in keys])


async def list_templates(request: Request) -> Response:
    engine = _engine(request)
    app = await _call(engine.get_application, _app_id(request))
    graphs = [to_graph(t.graph) for _, t in sorted(engine.templates.items())]
    return _collection(request, f"servicePrincipals('{app.id}')/synchronization/templates", graphs)


async def get_template(request: Request) -> Response:
    engine = _engine(request)
    await _call(engine.get_application, _app_id(request))
    template = engine.templates.get(str(request.path_params["templateId"]))
    if template is None:
        raise GraphError(404, "itemNotFound", f"no template {request.path_params['templateId']!r}")
    return JSONResponse(to_graph(template.graph))


def _routes() -> list[BaseRoute]:
    sp = "/servicePrincipals/{id}"
    sync = sp + "/synchronization"
    job = sync + "/jobs/{jobId}"
    return [
        Route("/servicePrincipals", list_applications, methods=["GET"]),
        Route("/servicePrincipals", create_application, methods=["POST"]),
        Route(sp, get_application, methods=["GET"]),
        Route(sp, delete_application, methods=["DELETE"]),
        Route(sync + "/jobs", list_jobs, methods=["GET"]),
        Route(sync + "/jobs", create_job, methods=["POST"]),
        Route(job, get_job, methods=["GET"]),
        Route(job, delete_job, methods=["DELETE"]),
        Route(job + "/start", start, methods=["POST"]),
        Route(job + "/pause", pause, methods=["POST"]),
        Route(job + "/restart", restart, methods=["POST"]),
        Route(job + "/schema", get_schema, methods=["GET"]),
        Route(job + "/schema", put_schema, methods=["PUT"]),
        Route(sync + "/secrets", get_secrets, methods=["GET"]),
        Route(sync + "/secrets", put_secrets, methods=["PUT"]),
        Route(sync + "/templates", list_templates, methods=["GET"]),
        Route(sync + "/templates/{templateId}", get_template, methods=["GET"]),
    ]


def create_app(
    engine: SyncEngine, tokens: Sequence[str], *, token_digests: Sequence[bytes] = ()
) -> Starlette:
    """The API over ``engine``; a request needs ``Authorization: Bearer <one of tokens>``, or a
    token whose sha256 digest is one of ``token_digests`` (a token kept only as its digest)."""
    if isinstance(tokens, str) or not all(isinstance(t, str) and t for t in tokens):
        raise ConfigurationError("the API's bearer tokens must be non-empty strings")
    if not all(isinstance(d, bytes) and len(d) == 32 for d in token_digests):
        raise ConfigurationError("a token digest is the 32 bytes of a sha256 digest")
    if not tokens and not token_digests:
        raise ConfigurationError("the API needs at least one bearer token (a non-empty string)")
    routes = _routes()
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *(Mount(version, routes=routes) for version in VERSIONS),
        ],
        exception_handlers={
            GraphError: on_graph_error,
            SyncJobError: on_engine_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.engine = engine
    digests = [digest(t) for t in tokens] + list(token_digests)
    app.add_middleware(BearerAuth, tokens=digests, clock=engine.clock)
    return app
