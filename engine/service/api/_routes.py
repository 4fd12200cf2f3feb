"""The routes of Graph's synchronization API, each a thin call into :class:`SyncEngine`.

Handlers parse and check the whole body before the engine is called, and the engine checks
everything before it stores anything, so a refused request changes nothing. The engine is
synchronous (SQLite, connectors), so its calls run in Starlette's thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import attrs
from anyio import to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from engine.errors import (
    ConfigurationError,
    ConnectorError,
    ModelError,
    NotFoundError,
    SyncJobError,
)
from engine.expressions.graph import filter_operators, functions, parse_expression
from engine.jobs import SyncEngine
from engine.masking import credential_values
from engine.model import (
    Application,
    RestartRequest,
    SecretPair,
    SynchronizationJob,
    SynchronizationSchema,
    from_graph,
    to_graph,
)
from engine.model.plan import SyncPlan
from engine.service.api import _audit
from engine.service.api._access_log import AccessLog
from engine.service.api._bodies import (
    BodyLimit,
    answer_off_loop,
    load_json,
    new_limiter,
    off_loop,
)
from engine.service.api._errors import (
    BearerAuth,
    GraphError,
    connector_error,
    digest,
    on_connector_error,
    on_engine_error,
    on_graph_error,
    on_http_error,
    on_unexpected,
)
from engine.store.base import LogRecord

T = TypeVar("T")
Endpoint = Callable[[Request], Awaitable[Response]]
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


@attrs.frozen(kw_only=True)
class _ValidateCredentials:
    """POST …/validateCredentials: ``{"useSavedCredentials", "credentials": [{"key","value"}]}``."""

    use_saved_credentials: bool = False
    credentials: tuple[SecretPair, ...] = ()
    template_id: str | None = None


@attrs.frozen(kw_only=True)
class _Subject:
    """synchronizationJobSubject; ``links`` (a group's chosen members) is not supported."""

    object_id: str
    object_type_name: str
    links: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class _Parameters:
    """synchronizationJobApplicationParameters."""

    rule_id: str
    subjects: tuple[_Subject, ...] = ()


@attrs.frozen(kw_only=True)
class _ProvisionOnDemand:
    parameters: tuple[_Parameters, ...] = ()
    dry_run: bool = False  # ours: answer what would be written (a plan), write nothing


@attrs.frozen(kw_only=True)
class _Restore:
    """POST …/jobs/{jobId}/restore (ours): ``{"objectId"}``, the source anchor, target ref or
    a matching value of the object whose staged delete is taken back."""

    object_id: str


async def _body(request: Request, cls: type[T], *, optional: bool = False) -> T | None:
    """The request's JSON as ``cls``; malformed JSON or a wrong field is a 400 naming it."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return None
        raise GraphError(400, "invalidRequest", "the request needs a JSON body")
    return await _parsed(request, raw, lambda: from_graph(load_json(raw), cls))


async def _parsed(request: Request, raw: bytes, work: Callable[[], T]) -> T:
    """``work()``, parsing ``raw``, off the event loop when the body is large (_bodies)."""
    return await off_loop(raw, request.app.state.large_bodies, work)


_APP, _JOB, _TEMPLATE = "servicePrincipal", "synchronizationJob", "synchronizationTemplate"


def _engine(request: Request) -> SyncEngine:
    engine: SyncEngine = request.app.state.engine
    return engine


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def _version(request: Request) -> str:
    return "/" + request.url.path.split("/")[1]


def _base(request: Request) -> str:
    """Where the API is reached, for links it answers (``Location``, ``@odata.*``): the
    configured public URL, else the address the connection came in on, never the request's
    Host header, which the client chooses (a link naming a host of its choice is an open
    redirect, and poisons any cache that keeps the answer)."""
    public: str | None = request.app.state.public_url
    if public:
        return public
    scope = request.scope
    root = scope.get("app_root_path", scope.get("root_path", ""))
    headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
    return str(URL(scope={**scope, "headers": headers, "path": root, "query_string": b""}))


def _here(request: Request) -> str:
    """The request's own URL, without its query, under :func:`_base`."""
    scope = request.scope
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return _base(request).rstrip("/") + request.url.path[len(root) :].rstrip("/")


def _context(request: Request, context: str) -> str:
    return f"{_base(request).rstrip('/')}{_version(request)}/$metadata#{context}"


def _typed(graph_type: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with the ``@odata.type`` annotation Graph gives a resource of that type."""
    return {"@odata.type": f"#microsoft.graph.{graph_type}", **value}


def _collection(
    request: Request, context: str, values: Sequence[Any], graph_type: str | None = None
) -> JSONResponse:
    items = [_typed(graph_type, v) for v in values] if graph_type else list(values)
    return JSONResponse({"@odata.context": _context(request, context), "value": items})


def _entity(
    request: Request,
    context: str,
    graph_type: str,
    value: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """One resource as Graph writes it: its ``@odata.context`` (``…/$entity``) and type."""
    body = {"@odata.context": _context(request, f"{context}/$entity"), **_typed(graph_type, value)}
    return JSONResponse(body, status, headers=headers)


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
    return _collection(request, "servicePrincipals", [to_graph(a) for a in apps], _APP)


async def create_application(request: Request) -> Response:
    new = await _body(request, _NewApplication, optional=True) or _NewApplication()
    app: Application = await _call(_engine(request).create_application, new.display_name)
    location = f"{_here(request)}/{app.id}"
    return _entity(
        request, "servicePrincipals", _APP, to_graph(app), 201, headers={"Location": location}
    )


async def get_application(request: Request) -> Response:
    app = await _call(_engine(request).get_application, _app_id(request))
    return _entity(request, "servicePrincipals", _APP, to_graph(app))


async def delete_application(request: Request) -> Response:
    await _call(_engine(request).delete_application, _app_id(request))
    return Response(status_code=204)


# --------------------------------------------------------------------------------- jobs
async def list_jobs(request: Request) -> Response:
    engine = _engine(request)
    app = await _call(engine.get_application, _app_id(request))
    jobs = await _call(engine.list_jobs, app.id)
    context = _context(request, f"servicePrincipals('{app.id}')/synchronization/jobs")
    return await answer_off_loop(  # each job's schema may be MiBs
        request.app.state.large_bodies,
        lambda: {"@odata.context": context, "value": [_typed(_JOB, to_graph(j)) for j in jobs]},
    )


async def create_job(request: Request) -> Response:
    job = await _body(request, SynchronizationJob)
    assert job is not None
    sent = to_graph(job)
    extra = sorted(k for k in sent if k not in _JOB_FIELDS and sent[k] not in (None, []))
    if extra:
        raise ModelError(
            f"field(s) set by the engine, not the caller: {', '.join(extra)}", extra[0]
        )
    if not job.template_id:
        raise ModelError("required field is missing @ $.templateId", "$.templateId")
    settings = {p.name: p.value or "" for p in job.synchronization_job_settings}
    created = await _call(
        _engine(request).create_job,
        job.template_id,
        schedule=job.schedule,
        settings=settings or None,
        application_id=_app_id(request),
    )
    location = f"{_here(request)}/{created.id}"
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/jobs"
    return _entity(request, context, _JOB, to_graph(created), 201, headers={"Location": location})


async def get_job(request: Request) -> Response:
    job_id = str(request.path_params["jobId"])
    job = await _call(_engine(request).get_job, job_id, application_id=_app_id(request))
    context = _context(
        request, f"servicePrincipals('{_app_id(request)}')/synchronization/jobs/$entity"
    )
    return await answer_off_loop(  # its schema may be MiBs
        request.app.state.large_bodies,
        lambda: {"@odata.context": context, **_typed(_JOB, to_graph(job))},
    )


async def patch_job(request: Request) -> Response:
    """Graph's update of a synchronizationJob, for its settings only: the sent
    ``synchronizationJobSettings`` list replaces the stored one (a PATCH replaces a collection
    property whole). Other fields are the engine's or have their own commands: 400."""
    job_id = await _job_id(request)
    raw = await request.body()
    settings = await _parsed(request, raw, lambda: _job_settings(raw))
    await _call(_engine(request).update_settings, job_id, settings)
    return Response(status_code=204)


def _job_settings(raw: bytes) -> dict[str, str]:
    data = load_json(raw) if raw.strip() else None
    if not isinstance(data, dict):
        raise ModelError("the body must be a JSON object (a synchronizationJob) @ $", "$")
    sent = {k: v for k, v in data.items() if not k.startswith("@odata")}
    extra = sorted(k for k in sent if k != "synchronizationJobSettings")
    if extra or "synchronizationJobSettings" not in sent:
        where = f"$.{extra[0]}" if extra else "$.synchronizationJobSettings"
        raise ModelError(f"only synchronizationJobSettings can be updated @ {where}", where)
    job = from_graph({"synchronizationJobSettings": sent["synchronizationJobSettings"]},
                     SynchronizationJob)  # fmt: skip
    return {p.name: p.value or "" for p in job.synchronization_job_settings}


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
    job_id = await _job_id(request)
    schema = await _call(_engine(request).get_schema, job_id)
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/jobs('{job_id}')/schema"
    link = _context(request, f"{context}/$entity")
    return await answer_off_loop(  # a schema may be MiBs
        request.app.state.large_bodies,
        lambda: {"@odata.context": link, **_typed("synchronizationSchema", to_graph(schema))},
    )


async def put_schema(request: Request) -> Response:
    job_id = await _job_id(request)
    schema = await _body(request, SynchronizationSchema)
    assert schema is not None
    await _call(_engine(request).update_schema, job_id, schema)
    return Response(status_code=204)


async def patch_schema(request: Request) -> Response:
    """Graph's SDKs update the schema with PATCH (its OpenAPI description has no PUT): the
    body's top-level properties replace the stored schema's, the rest are kept."""
    job_id = await _job_id(request)
    raw = await request.body()
    engine = _engine(request)
    current = await _call(engine.get_schema, job_id)
    # the merge converts the whole stored schema, however small the body: never on the loop
    limiter = request.app.state.large_bodies
    schema = await to_thread.run_sync(lambda: _patched_schema(raw, current), limiter=limiter)
    await _call(engine.update_schema, job_id, schema)
    return Response(status_code=204)


def _patched_schema(raw: bytes, current: SynchronizationSchema) -> SynchronizationSchema:
    data = load_json(raw) if raw.strip() else None
    if not isinstance(data, dict):
        raise ModelError("the body must be a JSON object (a synchronizationSchema) @ $", "$")
    sent = {k: v for k, v in data.items() if not k.startswith("@odata")}
    return from_graph({**to_graph(current), **sent}, SynchronizationSchema)


async def validate_credentials(request: Request) -> Response:
    """204 when both connectors accept; a connector's refusal is its Graph error (the table in
    _errors), with any sent or saved secret masked in the message. Credentials that change an
    address without the credentials used there: 400 before any connection is made."""
    job_id = await _job_id(request)
    body = await _body(request, _ValidateCredentials)
    assert body is not None
    engine = _engine(request)
    sent = {p.key: p.value or "" for p in body.credentials}
    secrets = None if body.use_saved_credentials or not sent else sent
    saved = await _call(engine.store.get_secrets, _app_id(request))
    try:
        await _call(engine.validate_credentials, job_id, secrets)
    except ConnectorError as exc:
        hidden = [*credential_values(saved), *credential_values(sent)]
        raise await _call(connector_error, exc, hidden) from None  # masking: off the loop
    return Response(status_code=204)


async def provision_on_demand(request: Request) -> Response:
    """One subject now; answers Graph's stringKeyStringValuePair: ``key`` the result as JSON,
    ``value`` the provisioning record (steps, one per log record) as JSON."""
    job_id = await _job_id(request)
    body = await _body(request, _ProvisionOnDemand)
    assert body is not None
    subjects = [(p, s) for p in body.parameters for s in p.subjects]
    if len(subjects) != 1:
        raise ModelError(
            f"provisionOnDemand takes one subject, not {len(subjects)} @ $.parameters",
            "$.parameters",
        )
    parameters, subject = subjects[0]
    if subject.links:
        raise ModelError("subjects[].links is not supported @ $.parameters[0].subjects[0].links")
    engine = _engine(request)
    schema = await _call(engine.get_schema, job_id)
    rule_id = parameters.rule_id.partition("#")[0]
    rule = next((r for r in schema.synchronization_rules if r.id == rule_id), None)
    if rule is None:
        raise GraphError(404, "itemNotFound", f"the job's schema has no rule {rule_id!r}")
    sources = {m.source_object_name or "" for m in rule.object_mappings}
    if subject.object_type_name.lower() not in {s.lower() for s in sources}:
        raise ModelError(
            f"rule {rule_id!r} maps no {subject.object_type_name!r} objects "
            f"(it maps {', '.join(sorted(sources))}) @ $.parameters[0].subjects[0].objectTypeName"
        )
    if body.dry_run:
        plan = await _call(
            engine.preview_on_demand, job_id, subject.object_type_name, subject.object_id
        )
        return JSONResponse(_dry_run_result(plan))
    records = await _call(
        engine.provision_on_demand, job_id, subject.object_type_name, subject.object_id
    )
    key, value = _on_demand_result(records)
    return JSONResponse({"key": json.dumps(key), "value": json.dumps(value)})


def _dry_run_result(plan: SyncPlan) -> dict[str, str]:
    """A dry run's answer in provisionOnDemand's shape: ``key`` the result (``DryRun``, or
    ``Skipped`` with the reason), ``value`` the one-object plan (README "Preview and apply")."""
    reason = "; ".join(s.reason for s in plan.skipped) or None
    result = "Skipped" if not plan.changes and not plan.escrows else "DryRun"
    key = {"result": result, "details": {"errorCode": None, "errorMessage": reason}}
    return {"key": json.dumps(key), "value": json.dumps(to_graph(plan))}


async def plan_job(request: Request) -> Response:
    """Ours: what the job's next cycle would write (a SyncPlan); nothing is written."""
    job_id = await _job_id(request)
    plan = await _call(_engine(request).plan, job_id)
    return JSONResponse(to_graph(plan))


async def apply_plan(request: Request) -> Response:
    """Ours: the job's cycle now, if it writes exactly the plan sent back (else 409
    PlanOutdated naming what moved); answers the cycle's synchronizationTaskExecution."""
    job_id = await _job_id(request)
    plan = await _body(request, SyncPlan)
    assert plan is not None
    execution = await _call(_engine(request).apply, job_id, plan)
    return JSONResponse(to_graph(execution))


async def restore(request: Request) -> Response:
    """Our extension: take back a staged delete (DeleteGracePeriod) before it is applied."""
    job_id = await _job_id(request)
    body = await _body(request, _Restore)
    assert body is not None
    if not body.object_id.strip():
        raise ModelError("objectId must name an object @ $.objectId")
    done = await _call(_engine(request).restore, job_id, body.object_id)
    return JSONResponse(
        {
            "objectId": done.anchor,
            "targetObjectId": done.target_ref,
            "objectMapping": done.mapping,
            "deleteDue": None if done.due is None else done.due.isoformat(),
            "enabled": done.enabled,
            "linked": done.linked,
        }
    )


def _on_demand_result(records: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    failed = [r for r in records if r.status == "failure"]
    done = [r for r in records if r.status == "success" and r.action != "Other"]
    main = (failed or done or list(records) or [None])[0]
    result = "Failure" if failed else "Success" if done else "Skipped"
    details: dict[str, Any] = {}
    if main is not None and not done:
        error = _audit.summary(main)["provisioningStatusInfo"]["errorInformation"] or {}
        details = {"errorCode": error.get("errorCode"), "errorMessage": error.get("reason")}
    if main is None:
        return {"result": result, "details": details}, {}
    summary = _audit.summary(main)
    value = {
        "action": main.action,
        "changeId": main.change_id,
        "cycleId": main.cycle_id,
        "startTime": summary["activityDateTime"],
        "endTime": _audit.summary(records[-1])["activityDateTime"],
        "modifiedProperties": summary["modifiedProperties"],
        "provisioningSteps": [
            {
                "name": f"Entry{r.action}",
                "type": "Export",
                "status": r.status,
                "description": f"{r.action} {r.mapping}",
                "timestamp": _audit.summary(r)["activityDateTime"],
                "details": {},
            }
            for r in records
        ],
        "statusInfo": {
            "status": main.status,
            **(summary["provisioningStatusInfo"]["errorInformation"] or {}),
        },
        "sourceIdentity": {
            "id": main.anchor,
            "type": summary["sourceIdentity"]["identityType"],
            "displayName": main.source_name,
            "details": summary["sourceIdentity"].get("details") or {},
        },
        "targetIdentity": {
            "id": main.target_ref,
            "type": summary["targetIdentity"]["identityType"],
            "displayName": main.target_name,
        },
    }
    return {"result": result, "details": details}, value


async def get_directories(request: Request) -> Response:
    job_id = await _job_id(request)
    schema = await _call(_engine(request).get_schema, job_id)
    context = (
        f"servicePrincipals('{_app_id(request)}')/synchronization/jobs('{job_id}')"
        "/schema/directories"
    )
    link = _context(request, context)
    return await answer_off_loop(  # a schema's directories may be MiBs
        request.app.state.large_bodies,
        lambda: {
            "@odata.context": link,
            "value": [_typed("directoryDefinition", to_graph(d)) for d in schema.directories],
        },
    )


async def discover_directory(request: Request) -> Response:
    """Graph's directoryDefinition discover (no body): 200 with the refreshed directory. A
    directory's refusal is its Graph error, as for validateCredentials, with the saved
    secrets masked in the message."""
    job_id = await _job_id(request)
    engine = _engine(request)
    saved = await _call(engine.store.get_secrets, _app_id(request))
    try:
        directory = await _call(engine.discover, job_id, str(request.path_params["directoryId"]))
    except ConnectorError as exc:
        raise await _call(connector_error, exc, credential_values(saved)) from None
    context = (
        f"servicePrincipals('{_app_id(request)}')/synchronization/jobs('{job_id}')"
        "/schema/directories"
    )
    return _entity(request, context, "directoryDefinition", to_graph(directory))


async def post_parse_expression(request: Request) -> Response:
    """parseExpressionResponse; ``testInputObject.properties`` are ``{key, value}`` pairs whose
    value is a string, a list of strings or null."""
    await _job_id(request)
    raw = await request.body()
    expression, inputs = await _parsed(request, raw, lambda: _expression_request(raw))
    result = await _call(parse_expression, expression, inputs, clock=_engine(request).clock)
    return JSONResponse(result.to_graph())


def _expression_request(raw: bytes) -> tuple[str, dict[str, str | list[str] | None]]:
    data = load_json(raw) if raw.strip() else None
    if not isinstance(data, dict):
        raise ModelError("the body must be a JSON object with an expression @ $", "$")
    extra = sorted(k for k in data if k not in _PARSE_FIELDS and "@odata" not in k)
    if extra:
        raise ModelError(f"extra field(s): {', '.join(extra)} @ $.{extra[0]}", extra[0])
    expression = data.get("expression")
    if not isinstance(expression, str):
        raise ModelError("expression must be a string @ $.expression", "$.expression")
    return expression, _test_inputs(data.get("testInputObject"))


_PARSE_FIELDS = frozenset({"expression", "testInputObject", "targetAttributeDefinition"})


def _test_inputs(value: Any) -> dict[str, str | list[str] | None]:
    if value is None:
        return {}
    where = "$.testInputObject"
    if not isinstance(value, dict) or not isinstance(value.get("properties", []), list):
        raise ModelError(f"testInputObject must be {{definition, properties: []}} @ {where}")
    inputs: dict[str, str | list[str] | None] = {}
    for i, pair in enumerate(value.get("properties", [])):
        at = f"{where}.properties[{i}]"
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise ModelError(f"a property is {{key, value}} with a string key @ {at}.key")
        item = pair.get("value")
        if isinstance(item, list) and all(isinstance(x, str) for x in item):
            inputs[pair["key"]] = list(item)
        elif item is None or isinstance(item, str):
            inputs[pair["key"]] = item
        elif isinstance(item, bool | int | float):
            inputs[pair["key"]] = json.dumps(item)
        else:
            raise ModelError(f"a value is a string, a list of strings or null @ {at}.value")
    return inputs


async def get_functions(request: Request) -> Response:
    job_id = await _job_id(request)
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/jobs('{job_id}')/schema"
    return _collection(
        request, f"{context}/functions", to_graph(functions()), "attributeMappingFunctionSchema"
    )


async def get_filter_operators(request: Request) -> Response:
    job_id = await _job_id(request)
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/jobs('{job_id}')/schema"
    return _collection(
        request, f"{context}/filterOperators", to_graph(filter_operators()), "filterOperatorSchema"
    )


# ----------------------------------------------------------------------------- auditLogs
async def provisioning_audit(request: Request) -> Response:
    """provisioningObjectSummary records of every job (or the one ``jobId eq`` names)."""
    query = query_options(request, _AUDIT_OPTIONS)
    predicates, job_id = _audit.parse_filter(query.get("$filter"))
    top = _audit.parse_top(query.get("$top"))
    token = query.get("$skiptoken")
    after = _audit.decode_token(token) if token is not None else None
    chosen, last = await _call(_audit_page, _engine(request), job_id, predicates, top, after)
    body: dict[str, Any] = {
        "@odata.context": _context(request, "auditLogs/provisioning"),
        "value": [_typed("provisioningObjectSummary", _audit.summary(r)) for r in chosen],
    }
    if last is not None:
        params = {**query, "$skiptoken": _audit.encode_token(last)}
        body["@odata.nextLink"] = f"{_here(request)}?{urlencode(params)}"
    return JSONResponse(body)


_AUDIT_OPTIONS = frozenset({"$filter", "$top", "$skiptoken"})
#: OData options that choose which items an answer holds: a route that takes none of them
#: refuses them, since answering every item to a ``$filter`` it ignored would be wrong
_SELECTING = frozenset({"$filter", "$top", "$skip", "$skiptoken", "$search", "$orderby", "$count"})


def query_options(request: Request, taken: frozenset[str] = frozenset()) -> dict[str, str]:
    """The query's options by lower-case name: OData 4.01 reads system query option names
    in any case, so ``$FILTER`` is ``$filter``, honoured or refused, never ignored. A route
    that takes options (``taken``) refuses any other parameter; one that takes none refuses
    only the options in _SELECTING, with or without their ``$`` (OData 4.01 and Graph's beta
    read ``top=1`` as ``$top=1``). An option given twice, in any case, is a 400."""
    options: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        key = name.lower()
        if key in options:
            raise GraphError(400, "invalidRequest", f"query option {key!r} is given twice")
        if key not in taken and (taken or key in _SELECTING or f"${key}" in _SELECTING):
            raise GraphError(400, "invalidRequest", f"unsupported query option {name!r}")
        options[key] = value
    return options


def _audit_page(
    engine: SyncEngine,
    job_id: str | None,
    predicates: Sequence[_audit.Predicate],
    top: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[LogRecord], LogRecord | None]:
    """One page of every job's records (or those of the job ``jobId eq`` names), read newest
    first and no further than the page needs; a job deleted meanwhile has none. The job id
    is matched case-insensitively, as the jobId predicate and every string clause compare:
    looking it up by the exact text would answer [] for the same filter in another case."""
    jobs = [j.id for j in engine.list_jobs() if j.id]
    if job_id is not None:
        jobs = [one for one in jobs if one.lower() == job_id.lower()]
    logs = []
    for one in jobs:
        try:
            logs.append(engine.log_batches(one))
        except NotFoundError:
            continue
    return _audit.page(logs, predicates, top, after)


# ------------------------------------------------------------------ secrets, templates
async def put_secrets(request: Request) -> Response:
    """Graph's PUT (replaces every secret). A value equal to the mask GET answers with means
    "unchanged": the stored value is kept, so a client PUTting back what GET returned does
    not overwrite every secret with ``*****``. The mask for a key that is not stored has no
    value to keep, nor has the mask for a credential used at an address the PUT changes
    (engine.secret_bindings): 400 naming the keys, nothing changed."""
    body = await _body(request, _Secrets)
    assert body is not None
    engine = _engine(request)
    secrets = {p.key: p.value or "" for p in body.value}
    masked = [k for k, v in secrets.items() if v == _MASK]
    await _call(engine.set_secrets, _app_id(request), secrets, keep=masked)
    return Response(status_code=204)


async def patch_secrets(request: Request) -> Response:
    """Our extension (Graph has only PUT, which replaces every secret): the sent keys are
    merged into the stored ones, the others kept. Answers which keys were added, changed and
    left unchanged, so a client can say what it did without any value leaving the engine (a
    value equal to the mask keeps the stored one, as in PUT). A merge that changes nothing
    writes nothing, so the application's jobs are not reconfigured."""
    body = await _body(request, _Secrets)
    assert body is not None
    engine = _engine(request)
    sent = {p.key: p.value or "" for p in body.value}
    masked = [k for k, v in sent.items() if v == _MASK]
    changes = await _call(engine.merge_secrets, _app_id(request), sent, keep=masked)
    return JSONResponse(
        {
            "added": list(changes.added),
            "changed": list(changes.changed),
            "unchanged": list(changes.unchanged),
        }
    )


async def get_secrets(request: Request) -> Response:
    """Keys only: a secret's value never leaves the engine, so every value reads as a mask."""
    keys = await _call(_engine(request).masked_secrets, _app_id(request))
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/secrets"
    masked = [{"key": k, "value": _MASK} for k in keys]
    return _collection(request, context, masked, "synchronizationSecretKeyStringValuePair")


async def list_templates(request: Request) -> Response:
    engine = _engine(request)
    app = await _call(engine.get_application, _app_id(request))
    graphs = [to_graph(t.graph) for _, t in sorted(engine.templates.items())]
    context = f"servicePrincipals('{app.id}')/synchronization/templates"
    return _collection(request, context, graphs, _TEMPLATE)


async def get_template(request: Request) -> Response:
    engine = _engine(request)
    await _call(engine.get_application, _app_id(request))
    template = engine.templates.get(str(request.path_params["templateId"]))
    if template is None:
        raise GraphError(404, "itemNotFound", f"no template {request.path_params['templateId']!r}")
    context = f"servicePrincipals('{_app_id(request)}')/synchronization/templates"
    return _entity(request, context, _TEMPLATE, to_graph(template.graph))


def _table() -> list[tuple[str, str, Endpoint]]:
    """(path, method, handler): each method of a path its own handler."""
    sp = "/servicePrincipals/{id}"
    sync = sp + "/synchronization"
    job = sync + "/jobs/{jobId}"
    return [
        ("/servicePrincipals", "GET", list_applications),
        ("/servicePrincipals", "POST", create_application),
        (sp, "GET", get_application),
        (sp, "DELETE", delete_application),
        (sync + "/jobs", "GET", list_jobs),
        (sync + "/jobs", "POST", create_job),
        (job, "GET", get_job),
        (job, "DELETE", delete_job),
        (job, "PATCH", patch_job),
        (job + "/start", "POST", start),
        (job + "/pause", "POST", pause),
        (job + "/restart", "POST", restart),
        (job + "/schema", "GET", get_schema),
        (job + "/schema", "PUT", put_schema),
        (job + "/schema", "PATCH", patch_schema),
        (job + "/validateCredentials", "POST", validate_credentials),
        (job + "/provisionOnDemand", "POST", provision_on_demand),
        (job + "/plan", "POST", plan_job),  # ours
        (job + "/apply", "POST", apply_plan),  # ours
        (job + "/restore", "POST", restore),
        (job + "/schema/directories", "GET", get_directories),
        (job + "/schema/directories/{directoryId}/discover", "POST", discover_directory),
        (job + "/schema/parseExpression", "POST", post_parse_expression),
        (job + "/schema/functions", "GET", get_functions),
        (job + "/schema/filterOperators", "GET", get_filter_operators),
        ("/auditLogs/provisioning", "GET", provisioning_audit),
        (sync + "/secrets", "GET", get_secrets),
        (sync + "/secrets", "PUT", put_secrets),
        (sync + "/secrets", "PATCH", patch_secrets),
        (sync + "/templates", "GET", list_templates),
        (sync + "/templates/{templateId}", "GET", get_template),
    ]


def _routes() -> list[BaseRoute]:
    """One route a path, whatever its methods: a wrong method's 405 then lists (``Allow``)
    every method the path has, not only those of the first route that matched the path."""
    paths: dict[str, dict[str, Endpoint]] = {}
    for path, method, handler in _table():
        paths.setdefault(path, {})[method] = handler
    return [
        Route(path, _by_method(handlers), methods=list(handlers))
        for path, handlers in paths.items()
    ]


def _by_method(handlers: dict[str, Endpoint]) -> Endpoint:
    """The handler of the request's method (HEAD is GET's, as Starlette answers it), once
    the query's options are checked (query_options)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers[method]
        if handler is not provisioning_audit:  # which reads its own options
            query_options(request)
        return await handler(request)

    return dispatch


def public_base(url: str | None) -> str | None:
    """A configured public URL (``https://sync.example.org`` or with a path prefix) as the
    links' base; anything but an http(s) URL with a host and nothing after its path is refused."""
    if url is None:
        return None
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ConfigurationError(
            f"public_url must be an http(s) URL such as https://sync.example.org, not {url!r}"
        )
    return url.rstrip("/")


def create_app(
    engine: SyncEngine,
    tokens: Sequence[str],
    *,
    token_digests: Sequence[bytes] = (),
    public_url: str | None = None,
) -> Starlette:
    """The API over ``engine``; a request needs ``Authorization: Bearer <one of tokens>``, or a
    token whose sha256 digest is one of ``token_digests`` (a token kept only as its digest).
    Links it answers start with ``public_url``, else the address a request came in on."""
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
            ConnectorError: on_connector_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.engine = engine
    app.state.public_url = public_base(public_url)
    app.state.large_bodies = new_limiter()
    app.add_middleware(BodyLimit, clock=engine.clock)
    digests = [digest(t) for t in tokens] + list(token_digests)
    app.add_middleware(BearerAuth, tokens=digests, clock=engine.clock)
    app.add_middleware(AccessLog)  # the outermost: every answer is logged, refusals too
    return app
