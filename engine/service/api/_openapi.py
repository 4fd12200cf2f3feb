"""The OpenAPI 3.0 document of the API, served at ``GET /openapi.json`` (no token needed).

Hand-written: every route of :mod:`engine.service.api._routes` under both ``/beta`` and
``/v1.0``, its request body (with the fields the handler requires), its statuses, and
Graph's error body.
Model objects (a job, a schema, a template) are described as far as a client relies on them;
their other properties are open (``additionalProperties`` is allowed).
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.service.api._routes import VERSIONS

JSON = "application/json"
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _collection(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["@odata.context", "value"],
        "properties": {
            "@odata.context": {"type": "string"},
            "@odata.nextLink": {"type": "string"},
            "value": {"type": "array", "items": item},
        },
    }


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


_NO_CONTENT = {"204": {"description": "Done; no body"}}
_E400 = {"400": _error("The body, a field or a query option is not valid (names it)")}
_E401 = {"401": _error("No bearer token, or not a known one")}
_E404 = {"404": _error("No such application, job, template or rule")}
_E404_DIRECTORY = {"404": _error("No such application, job, or directory in the job's schema")}
_E409 = {"409": _error("The job's state refuses the command, or another runner holds it")}
_E502 = {"502": _error("A directory did not answer, or answered with an error")}


def _op(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {**responses, **_E401},
    }
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _ours(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation that is our extension, not Graph's: marked so for clients and readers."""
    return {**operation, "x-syncjob-extension": True}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


_CHANGE = {
    "type": "object",
    "required": ["action", "objectType", "changes"],
    "properties": {
        "action": {"type": "string", "enum": ["create", "update", "delete", "disable"]},
        "objectType": {"type": "string"},
        "sourceObjectType": {"type": "string", "nullable": True},
        "anchor": {"type": "string", "nullable": True},
        "displayName": {"type": "string", "nullable": True},
        "targetId": {"type": "string", "nullable": True},
        "changes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "added": {"type": "array", "items": {}},
                    "removed": {"type": "array", "items": {}},
                },
            },
        },
        "sourceDigest": {"type": "string", "nullable": True},
        "targetDigest": {"type": "string", "nullable": True},
    },
}
#: ours: what a job's next cycle would write (engine.model.plan.SyncPlan)
_PLAN = {
    "type": "object",
    "required": ["id", "jobId", "changes", "escrows", "deleteGuard"],
    "properties": {
        "id": {"type": "string"},
        "jobId": {"type": "string"},
        "createdDateTime": {"type": "string", "nullable": True},
        "watermarks": {"type": "array", "items": {"type": "object"}},
        "stateDigest": {"type": "string"},
        "changes": {"type": "array", "items": _CHANGE},
        "escrows": {"type": "array", "items": {"type": "object"}},
        "deleteGuard": {
            "type": "object",
            "properties": {
                "held": {"type": "boolean"},
                "deletes": {"type": "integer"},
                "reason": {"type": "string", "nullable": True},
            },
        },
        "skipped": {"type": "array", "items": {"type": "object"}},
    },
}


def _versioned_paths() -> dict[str, dict[str, Any]]:
    """The paths below a version prefix (the prefix not included)."""
    sp = "/servicePrincipals/{id}"
    sync = sp + "/synchronization"
    job = sync + "/jobs/{jobId}"
    app_404 = {**_E404}
    job_errors = {**_E404}
    return {
        "/servicePrincipals": {
            "get": _op(
                "listServicePrincipals",
                "The applications",
                {"200": _ok(_collection(_ref("ServicePrincipal")))},
            ),
            "post": _op(
                "createServicePrincipal",
                "Create an application",
                {"201": _ok(_ref("ServicePrincipal"), "Created"), **_E400},
                body=_body(_ref("NewServicePrincipal"), required=False),
            ),
        },
        sp: {
            "get": _op(
                "getServicePrincipal",
                "One application",
                {"200": _ok(_ref("ServicePrincipal")), **app_404},
            ),
            "delete": _op(
                "deleteServicePrincipal",
                "Delete an application and its jobs",
                {**_NO_CONTENT, **app_404, **_E409},
            ),
        },
        sync + "/jobs": {
            "get": _op(
                "listJobs",
                "The application's jobs",
                {"200": _ok(_collection(_ref("Job"))), **app_404},
            ),
            "post": _op(
                "createJob",
                "Create a job from a template",
                {"201": _ok(_ref("Job"), "Created"), **_E400, **app_404},
                body=_body(_ref("NewJob")),
            ),
        },
        job: {
            "get": _op("getJob", "One job", {"200": _ok(_ref("Job")), **job_errors}),
            "delete": _op("deleteJob", "Delete a job", {**_NO_CONTENT, **job_errors, **_E409}),
            "patch": _op(
                "updateJob",
                "Replace the job's settings (synchronizationJobSettings; no other field)",
                {**_NO_CONTENT, **_E400, **job_errors},
                body=_body(_ref("JobSettingsUpdate")),
            ),
        },
        job + "/start": {
            "post": _op("startJob", "Start the job", {**_NO_CONTENT, **job_errors, **_E409}),
        },
        job + "/pause": {
            "post": _op("pauseJob", "Pause the job", {**_NO_CONTENT, **job_errors, **_E409}),
        },
        job + "/restart": {
            "post": _op(
                "restartJob",
                "Restart the job, resetting what the criteria name",
                {**_NO_CONTENT, **_E400, **job_errors, **_E409},
                body=_body(_ref("RestartRequest"), required=False),
            ),
        },
        job + "/validateCredentials": {
            "post": _op(
                "validateCredentials",
                "Check both connectors accept the (sent or saved) credentials",
                {**_NO_CONTENT, **_E400, **job_errors, **_E409, **_E502},
                body=_body(_ref("ValidateCredentials")),
            ),
        },
        job + "/provisionOnDemand": {
            "post": _op(
                "provisionOnDemand",
                "Provision one subject now",
                {
                    "200": _ok(_ref("StringKeyStringValuePair")),
                    **_E400,
                    **job_errors,
                    **_E409,
                    **_E502,
                },
                body=_body(_ref("ProvisionOnDemand")),
            ),
        },
        # ours, not Graph's: preview the next cycle's writes, then apply exactly those
        job + "/plan": {
            "post": _ours(
                _op(
                    "planJob",
                    "What the job's next cycle would write (ours, not Graph's); writes nothing",
                    {"200": _ok(_ref("SyncPlan")), **_E400, **job_errors, **_E409, **_E502},
                )
            ),
        },
        job + "/apply": {
            "post": _ours(
                _op(
                    "applyPlan",
                    "Run the job's cycle if it writes exactly the plan sent (ours, not "
                    "Graph's); 409 PlanOutdated names what moved",
                    {
                        "200": _ok(_ref("TaskExecution")),
                        **_E400,
                        **job_errors,
                        **_E409,
                        **_E502,
                    },
                    body=_body(_ref("SyncPlan")),
                )
            ),
        },
        job + "/restore": {
            "post": _ours(
                _op(
                    "restoreObject",
                    "Ours: take back an object's staged delete (DeleteGracePeriod) before it is "
                    "applied, enabling the object if it was disabled",
                    {"200": _ok(_ref("Restored")), **_E400, **job_errors, **_E409, **_E502},
                    body=_body(_ref("RestoreRequest")),
                )
            ),
        },
        job + "/schema": {
            "get": _op("getSchema", "The job's schema", {"200": _ok(_ref("Schema")), **job_errors}),
            "put": _op(
                "putSchema",
                "Replace the job's schema",
                {**_NO_CONTENT, **_E400, **job_errors, **_E409},
                body=_body(_ref("Schema")),
            ),
            "patch": _op(
                "patchSchema",
                "Update the job's schema: the body's top-level properties replace the stored ones",
                {**_NO_CONTENT, **_E400, **job_errors, **_E409},
                body=_body(_ref("Schema")),
            ),
        },
        job + "/schema/directories": {
            "get": _op(
                "getDirectories",
                "The schema's directory definitions",
                {"200": _ok(_collection({"type": "object"})), **job_errors},
            ),
        },
        job + "/schema/directories/{directoryId}/discover": {
            "post": _op(
                "discoverDirectory",
                "Read the directory's live schema and add what the job's schema lacks",
                {
                    "200": _ok(_ref("DirectoryDefinition")),
                    **_E400,
                    **_E404_DIRECTORY,
                    **_E502,
                },
            ),
        },
        job + "/schema/parseExpression": {
            "post": _op(
                "parseExpression",
                "Parse (and evaluate) an attribute-mapping expression",
                {"200": _ok({"type": "object"}), **_E400, **job_errors},
                body=_body(_ref("ParseExpression")),
            ),
        },
        job + "/schema/functions": {
            "get": _op(
                "getFunctions",
                "The expression functions",
                {"200": _ok(_collection({"type": "object"})), **job_errors},
            ),
        },
        job + "/schema/filterOperators": {
            "get": _op(
                "getFilterOperators",
                "The scoping filter operators",
                {"200": _ok(_collection({"type": "object"})), **job_errors},
            ),
        },
        sync + "/secrets": {
            "get": _op(
                "getSecrets",
                "The saved secrets' keys (every value masked)",
                {"200": _ok(_collection(_ref("KeyValue"))), **app_404},
            ),
            "put": _op(
                "putSecrets",
                "Save the application's secrets (the mask ***** as a value keeps the stored one)",
                {**_NO_CONTENT, **_E400, **app_404},
                body=_body(_ref("Secrets")),
            ),
            "patch": _op(
                "mergeSecrets",
                "syncjob's extension: merge the sent secrets into the saved ones (the others "
                "are kept); answers the keys added, changed and unchanged, never a value",
                {"200": _ok(_ref("SecretsMerged")), **_E400, **app_404},
                body=_body(_ref("Secrets")),
            ),
        },
        sync + "/templates": {
            "get": _op(
                "listTemplates",
                "The job templates",
                {"200": _ok(_collection({"type": "object"})), **app_404},
            ),
        },
        sync + "/templates/{templateId}": {
            "get": _op(
                "getTemplate", "One job template", {"200": _ok({"type": "object"}), **app_404}
            ),
        },
        "/auditLogs/provisioning": {
            "get": _op(
                "listProvisioningLogs",
                "provisioningObjectSummary records, newest first",
                {"200": _ok(_collection(_ref("ProvisioningObjectSummary"))), **_E400},
                parameters=[
                    _query("$filter", "OData subset: jobId, cycleId, action, status, …"),
                    _query("$top", "page size, 1 to 1000 (default 100)"),
                    _query("$skiptoken", "the opaque token of an @odata.nextLink"),
                ],
            ),
        },
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [_path_param(name) for name in names]


_KEY_VALUE = {
    "type": "object",
    "required": ["key"],
    "properties": {"key": {"type": "string"}, "value": {"type": "string", "nullable": True}},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "innerError"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "innerError": {
                        "type": "object",
                        "required": ["request-id", "date"],
                        "properties": {
                            "request-id": {"type": "string"},
                            "date": {"type": "string", "format": "date-time"},
                        },
                    },
                },
            }
        },
    },
    "ServicePrincipal": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "displayName": {"type": "string", "nullable": True},
        },
    },
    "NewServicePrincipal": {
        "type": "object",
        "properties": {"displayName": {"type": "string", "nullable": True}},
    },
    "KeyValue": _KEY_VALUE,
    "Job": {
        "type": "object",
        "required": ["id", "templateId"],
        "properties": {
            "id": {"type": "string"},
            "templateId": {"type": "string"},
            "schedule": {"type": "object", "nullable": True},
            "status": {"type": "object", "nullable": True},
            "synchronizationJobSettings": {"type": "array", "items": {"type": "object"}},
        },
    },
    "JobSettingsUpdate": {
        "type": "object",
        "required": ["synchronizationJobSettings"],
        "properties": {
            "synchronizationJobSettings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "example": "PageSize"},
                        "value": {"type": "string", "nullable": True, "example": "200"},
                    },
                },
            },
        },
    },
    "NewJob": {
        "type": "object",
        "required": ["templateId"],
        "properties": {
            "templateId": {"type": "string", "example": "memoryToMemory"},
            "schedule": {
                "type": "object",
                "properties": {
                    "interval": {"type": "string", "example": "PT40M"},
                    "state": {"type": "string", "enum": ["Active", "Disabled", "Paused"]},
                },
            },
            "synchronizationJobSettings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "value": {"type": "string", "nullable": True},
                    },
                },
            },
        },
    },
    "RestartRequest": {
        "type": "object",
        "properties": {
            "criteria": {
                "type": "object",
                "properties": {"resetScope": {"type": "string", "example": "Watermark, Escrows"}},
            }
        },
    },
    "ValidateCredentials": {
        "type": "object",
        "properties": {
            "useSavedCredentials": {"type": "boolean"},
            "credentials": {"type": "array", "items": _KEY_VALUE},
            "templateId": {"type": "string", "nullable": True},
        },
    },
    "RestoreRequest": {
        "type": "object",
        "required": ["objectId"],
        "properties": {
            "objectId": {
                "type": "string",
                "description": "The source anchor, target object id or a matching value",
            },
        },
    },
    "Restored": {
        "type": "object",
        "properties": {
            "objectId": {"type": "string"},
            "targetObjectId": {"type": "string"},
            "objectMapping": {"type": "string"},
            "deleteDue": {"type": "string", "format": "date-time", "nullable": True},
            "enabled": {"type": "boolean"},
            "linked": {"type": "boolean"},
        },
    },
    "ProvisionOnDemand": {
        "type": "object",
        "required": ["parameters"],
        "properties": {
            "parameters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["ruleId", "subjects"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "subjects": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["objectId", "objectTypeName"],
                                "properties": {
                                    "objectId": {"type": "string"},
                                    "objectTypeName": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
            "dryRun": {
                "type": "boolean",
                "description": "Ours, not Graph's: answer the one-object plan (a SyncPlan, "
                "as JSON in value) and write nothing",
            },
        },
    },
    "SyncPlan": _PLAN,
    "TaskExecution": {
        "type": "object",
        "description": "synchronizationTaskExecution: the cycle's counts and outcome",
        "properties": {"state": {"type": "string", "nullable": True}},
    },
    "StringKeyStringValuePair": {
        "type": "object",
        "required": ["key", "value"],
        "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
    },
    "Schema": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "nullable": True},
            "version": {"type": "string", "nullable": True},
            "directories": {"type": "array", "items": {"type": "object"}},
            "synchronizationRules": {"type": "array", "items": {"type": "object"}},
        },
    },
    "DirectoryDefinition": {
        "type": "object",
        "required": ["id", "objects"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string", "nullable": True},
            "discoverabilities": {"type": "string", "nullable": True},
            "discoveryDateTime": {"type": "string", "format": "date-time", "nullable": True},
            "version": {"type": "string", "nullable": True},
            "objects": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ParseExpression": {
        "type": "object",
        "required": ["expression"],
        "properties": {
            "expression": {"type": "string", "example": 'Join(" ", [givenName], [surname])'},
            "testInputObject": {
                "type": "object",
                "properties": {
                    "definition": {"type": "object", "nullable": True},
                    "properties": {"type": "array", "items": _KEY_VALUE},
                },
            },
            "targetAttributeDefinition": {"type": "object", "nullable": True},
        },
    },
    "Secrets": {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "array", "items": _KEY_VALUE}},
    },
    "SecretsMerged": {
        "type": "object",
        "required": ["added", "changed", "unchanged"],
        "properties": {
            name: {"type": "array", "items": {"type": "string"}}
            for name in ("added", "changed", "unchanged")
        },
    },
    "ProvisioningObjectSummary": {
        "type": "object",
        "required": ["id", "activityDateTime", "jobId", "provisioningAction"],
        "properties": {
            "id": {"type": "string"},
            "activityDateTime": {"type": "string", "format": "date-time"},
            "jobId": {"type": "string"},
            "cycleId": {"type": "string"},
            "changeId": {"type": "string"},
            "provisioningAction": {"type": "string"},
            "provisioningStatusInfo": {"type": "object"},
            "sourceIdentity": {"type": "object"},
            "targetIdentity": {"type": "object"},
            "modifiedProperties": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def _build() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness; no token needed",
                "security": [],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"type": "string", "enum": ["ok"]}},
                        }
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "The jobs' statuses as Prometheus text",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_E401,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document; no token needed",
                "security": [],
                "responses": {"200": _ok({"type": "object"})},
            }
        },
    }
    for version in VERSIONS:
        tag = version.strip("/").replace(".", "_")
        for path, operations in _versioned_paths().items():
            item: dict[str, Any] = {}
            params = _path_parameters(path)
            if params:
                item["parameters"] = params
            for method, operation in operations.items():
                op = copy.deepcopy(operation)
                op["operationId"] = f"{op['operationId']}_{tag}"
                op["tags"] = [version]
                item[method] = op
            paths[version + path] = item
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "syncjob: Graph's synchronization API",
            "version": "0.1.0",
            "description": "Every path exists under /beta and /v1.0, as Graph serves them.",
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return _build()


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
