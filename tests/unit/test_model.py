"""The Graph model and its converter: round trips on Graph's own examples, clear errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ModelError
from engine.model import (
    AttributeMappingSource,
    QuarantineReason,
    RestartRequest,
    RestartScope,
    ScheduleState,
    StatusCode,
    SynchronizationJob,
    SynchronizationSchema,
    from_graph,
    to_graph,
)
from engine.model.converter import parse_datetime

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graph"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def same(original: Any, rendered: Any, path: str = "$") -> None:
    """Every field of Graph's example survives the round trip (dates and enum case normalised)."""
    if isinstance(original, dict):
        assert isinstance(rendered, dict), path
        for key, value in original.items():
            assert key in rendered, f"{path}.{key} lost"
            same(value, rendered[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(rendered, list) and len(original) == len(rendered), path
        for i, (a, b) in enumerate(zip(original, rendered, strict=True)):
            same(a, b, f"{path}[{i}]")
    elif original == "" and rendered is None:
        pass  # Graph prints "" for unset dates and reasons
    elif isinstance(original, str) and isinstance(rendered, str) and original != rendered:
        if original.startswith(("0", "1", "2")) and "T" in original:
            assert parse_datetime(original) == parse_datetime(rendered), path
        elif original.startswith("P"):
            assert abs(
                from_graph({"interval": original}, _Sched).interval
                - from_graph({"interval": rendered}, _Sched).interval
            ) < timedelta(microseconds=1), path
        else:
            assert original.lower() == rendered.lower(), path
    else:
        assert original == rendered, path


from engine.model import SynchronizationSchedule as _Sched  # noqa: E402


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("create-job-request.json", SynchronizationJob),
        ("create-job-response.json", SynchronizationJob),
        ("get-job-response.json", SynchronizationJob),
        ("update-schema-request.json", SynchronizationSchema),
        ("get-schema-response.json", SynchronizationSchema),
        ("restart-request.json", RestartRequest),
        ("attribute-mapping-source.json", AttributeMappingSource),
    ],
)
def test_round_trip_of_graph_examples(name: str, cls: type) -> None:
    """Graph's documented bodies parse, render back with every field, and re-parse equal."""
    original = load(name)
    model = from_graph(original, cls)
    rendered = to_graph(model)
    same(original, rendered)
    assert model == from_graph(json.loads(json.dumps(rendered)), cls)


def test_list_jobs_response_round_trips() -> None:
    """Each job of the documented list response round-trips."""
    for job in load("list-jobs-response.json")["value"]:
        same(job, to_graph(from_graph(job, SynchronizationJob)))


def test_parsed_values_are_typed() -> None:
    """Enums, durations and settings come out typed, not as strings."""
    job = from_graph(load("get-job-response.json"), SynchronizationJob)
    assert job.schedule is not None and job.status is not None
    assert ScheduleState.DISABLED == job.schedule.state
    assert StatusCode.PAUSED == job.status.code
    assert timedelta(days=10675199) < job.schedule.interval
    assert "500" == job.synchronization_job_settings[0].value
    assert job.status.quarantine is not None
    assert 2 == job.status.quarantine.series_count
    restart = from_graph(load("restart-request.json"), RestartRequest)
    assert restart.criteria is not None
    assert {
        RestartScope.WATERMARK,
        RestartScope.ESCROWS,
        RestartScope.QUARANTINE_STATE,
    } == restart.criteria.reset_scope


def test_enums_accept_any_case_and_render_graph_spelling() -> None:
    """ "string" and "String" are the same attribute type; output uses Graph's spelling."""
    schema = from_graph(load("get-schema-response.json"), SynchronizationSchema)
    attribute = schema.directories[0].objects[0].attributes[0]
    assert "String" == to_graph(attribute)["type"]
    q = from_graph({"status": {"quarantine": {"reason": "toomanydeletes"}}}, SynchronizationJob)
    assert q.status and q.status.quarantine
    assert QuarantineReason.TOO_MANY_DELETES == q.status.quarantine.reason


def test_odata_annotations_are_ignored() -> None:
    """@odata.type and friends, which Graph clients send, are not unknown fields."""
    job = from_graph(
        {"@odata.type": "#microsoft.graph.synchronizationJob", "templateId": "x"},
        SynchronizationJob,
    )
    assert "x" == job.template_id


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"templateId": "x", "bogus": 1}, "$.bogus", "unknown field"),
        ({"templateId": 3}, "$.templateId", "expected a string"),
        ({"templateId": "x", "schedule": {"interval": "forty"}}, "$.schedule.interval", "ISO-8601"),
        ({"templateId": "x", "schedule": {"interval": "P1M"}}, "$.schedule.interval", "months"),
        ({"templateId": "x", "status": {"code": "Weird"}}, "$.status.code", "not one of"),
        (
            {"templateId": "x", "status": {"countSuccessiveCompleteFailures": "3"}},
            "$.status.countSuccessiveCompleteFailures",
            "integer",
        ),
        (
            {"templateId": "x", "status": {"escrowsPruned": "yes"}},
            "$.status.escrowsPruned",
            "true or false",
        ),
        (
            {"synchronizationJobSettings": [{"value": "1"}]},
            "$.synchronizationJobSettings[0].name",
            "required",
        ),
        (
            {
                "schema": {
                    "synchronizationRules": [
                        {"objectMappings": [{"attributeMappings": [{"flowType": "Sometimes"}]}]}
                    ]
                }
            },
            "$.schema.synchronizationRules[0].objectMappings[0].attributeMappings[0].flowType",
            "not one of",
        ),
    ],
)
def test_bad_input_names_the_field(body: dict[str, Any], field: str, words: str) -> None:
    """Unknown or ill-typed fields raise ModelError naming the JSON path."""
    with pytest.raises(ModelError, match=words) as caught:
        from_graph(body, SynchronizationJob)
    assert field == caught.value.field
    assert field.rsplit(".", maxsplit=1)[-1].split("[", maxsplit=1)[0] in str(caught.value)


def test_non_object_input_is_refused() -> None:
    """A JSON array where an object belongs is a clear error, not a crash."""
    with pytest.raises(ModelError, match="expected a JSON object"):
        from_graph([1, 2], SynchronizationJob)  # type: ignore[arg-type]
