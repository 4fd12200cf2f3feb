"""Built-in templates: which connectors a job uses, what secrets it needs, its default schema.

Templates are data (JSON beside this file) plus optional factories that build connectors from
the application's secrets. A template without factories (``memoryToMemory``) takes connector
objects from the caller. More templates can be registered from Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources

import attrs

from connectors.base import Source, Target
from engine.model import SynchronizationSchema, SynchronizationTemplate, from_graph

SourceFactory = Callable[[Mapping[str, str]], Source]
TargetFactory = Callable[[Mapping[str, str]], Target]


@attrs.frozen(kw_only=True)
class Template:
    """A template as Graph shows it, plus what the engine needs to build a job from it."""

    graph: SynchronizationTemplate
    required_secrets: tuple[str, ...] = ()
    build_source: SourceFactory | None = None
    build_target: TargetFactory | None = None

    @property
    def id(self) -> str:
        return self.graph.id

    @property
    def schema(self) -> SynchronizationSchema:
        return self.graph.schema or SynchronizationSchema()


def load_builtin(template_id: str) -> SynchronizationTemplate:
    text = resources.files(__package__).joinpath(f"{template_id}.json").read_text("utf-8")
    return from_graph(json.loads(text), SynchronizationTemplate)


def builtin_templates() -> dict[str, Template]:
    return {"memoryToMemory": Template(graph=load_builtin("memoryToMemory"))}
