"""Public entry points answer bad input with the engine's own errors and store nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.memory import MemoryDirectory
from engine import (
    ConfigurationError,
    MappingError,
    ModelError,
    NotFoundError,
    SyncEngine,
    SynchronizationJob,
    SynchronizationSchema,
    SyncJobError,
    from_graph,
    parse_expression,
    to_graph,
)
from engine.limits import MAX_EXPRESSION_DEPTH
from engine.templates import builtin_templates

TEMPLATE = to_graph(builtin_templates()["memoryToMemory"].schema)
DEFAULT_APP = "00000000-0000-0000-0000-000000000000"


def nothing_stored(engine: SyncEngine) -> bool:
    return not engine.list_jobs() and engine.store.get_application(DEFAULT_APP) is None


def nested_source(depth: int) -> dict[str, Any]:
    """An attributeMappingSource parameter tree: ToLower(ToLower(...[mail]...)), ``depth`` calls."""
    source: dict[str, Any] = {"type": "Attribute", "name": "mail"}
    for _ in range(depth):
        source = {
            "type": "Function",
            "name": "ToLower",
            "parameters": [{"key": "source", "value": source}],
        }
    return source


def with_mail_source(source: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(TEMPLATE)
    mappings = body["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    next(m for m in mappings if m["targetAttributeName"] == "mail")["source"] = source
    return body


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"source": object(), "target": MemoryDirectory()}, ConfigurationError, "source protocol"),
        ({"source": MemoryDirectory()}, ConfigurationError, "both a source and a target"),
        ({"schema": "{}"}, ModelError, "not str"),
        ({"schema": {"synchronizationRules": 5}}, ModelError, "synchronizationRules"),
        ({"settings": "PageSize=5"}, ConfigurationError, "settings must map"),
        ({"settings": {"PageSize": "0"}}, ConfigurationError, "PageSize"),
        ({"schedule": "P100000000D"}, ConfigurationError, "schedule"),
        ({"application_id": ["x"]}, NotFoundError, "no application"),
    ],
)
def test_create_job_refuses_and_stores_nothing(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """A refused create_job raises the engine's error and leaves no job (nor application)."""
    engine = SyncEngine()
    with pytest.raises(error, match=words):
        engine.create_job("memoryToMemory", **kwargs)
    assert nothing_stored(engine)


def test_unknown_template_of_any_type_is_not_found() -> None:
    """A template id that is not a string is NotFoundError, not TypeError."""
    with pytest.raises(NotFoundError):
        SyncEngine().create_job(["memoryToMemory"])  # type: ignore[arg-type]


def test_set_secrets_refuses_non_mappings_first() -> None:
    """set_secrets with a str is a ConfigurationError, and nothing is stored."""
    engine = SyncEngine()
    with pytest.raises(ConfigurationError, match="secrets must map"):
        engine.set_secrets(None, "HardDeletesEnabled=False")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="SyncNotificationSettings"):
        engine.set_secrets(None, {"SyncNotificationSettings": "[" * 10_000})
    assert nothing_stored(engine)


def test_parse_expression_refuses_wrong_types() -> None:
    """parse_expression(5) or non-mapping inputs raise MappingError, not AttributeError."""
    with pytest.raises(MappingError, match="must be a string"):
        parse_expression(5)  # type: ignore[arg-type]
    with pytest.raises(MappingError, match="inputs must map"):
        parse_expression("[x]", ["x"])  # type: ignore[arg-type]


def test_deep_expression_text_is_refused_clearly() -> None:
    """ToLower nested 247 times (under the length limit) is a parse error, not RecursionError."""
    text = "ToLower(" * 247 + "[x]" + ")" * 247
    result = parse_expression(text, {"x": "A"})
    assert not result.parsing_succeeded and "deeper than 64" in (result.error or "")
    at_limit = "ToLower(" * MAX_EXPRESSION_DEPTH + "[x]" + ")" * MAX_EXPRESSION_DEPTH
    result = parse_expression(at_limit, {"x": "A"})
    assert ["a"] == result.evaluation_result and result.to_graph()["parsingSucceeded"]


def test_deep_parameter_tree_is_refused_clearly() -> None:
    """A parameter tree 166 deep is a ModelError from create_job, not RecursionError."""
    engine = SyncEngine()
    with pytest.raises(ModelError, match="nests deeper than"):
        engine.create_job("memoryToMemory", schema=with_mail_source(nested_source(166)))
    with pytest.raises(MappingError, match="deeper than 64"):
        engine.create_job("memoryToMemory", schema=with_mail_source(nested_source(65)))
    assert nothing_stored(engine)


def test_parameter_tree_at_the_limit_works_end_to_end() -> None:
    """A 64-deep parameter tree is read, validated, compiled, stored and written back."""
    engine = SyncEngine()
    job = engine.create_job(
        "memoryToMemory",
        MemoryDirectory(),
        MemoryDirectory(),
        schema=with_mail_source(nested_source(MAX_EXPRESSION_DEPTH)),
    )
    assert job.id is not None
    to_graph(engine.get_job(job.id))


def test_deeply_nested_json_is_a_model_error() -> None:
    """Deeply nested directories (lists in lists) are refused by depth, never RecursionError."""
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ModelError, match="nests deeper than"):
        from_graph({"directories": deep}, SynchronizationSchema)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "directories",
                    "objects",
                    "name",
                    "synchronizationRules",
                    "objectMappings",
                    "id",
                    "attributeMappings",
                    "targetAttributeName",
                    "source",
                    "type",
                    "expression",
                    "scope",
                    "groups",
                    "clauses",
                    "operatorName",
                    "matchingPriority",
                    "schedule",
                    "interval",
                    "discoveryDateTime",
                    "parameters",
                    "key",
                    "value",
                    "status",
                    "code",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_from_graph_raises_only_model_errors(data: Any) -> None:
    """For any JSON, from_graph returns a model or raises ModelError."""
    for cls in (SynchronizationSchema, SynchronizationJob):
        try:
            from_graph(data, cls)
        except ModelError:
            pass


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(JSON)
def test_create_job_raises_only_engine_errors(data: Any) -> None:
    """For any schema JSON, create_job makes a job or raises a SyncJobError and stores nothing."""
    engine = SyncEngine()
    try:
        engine.create_job("memoryToMemory", schema=data)
    except SyncJobError:
        assert nothing_stored(engine)
