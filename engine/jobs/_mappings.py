"""Compiled object mappings, cached per job while its schema is unchanged (rule 10: compile
once, when a schema is saved; cycles only run the compiled closures)."""

from __future__ import annotations

from engine.mapping import CompiledMapping, compile_schema
from engine.model import SynchronizationSchema
from engine.settings import JobSettings
from engine.store import JobRow


def regex_seconds(row: JobRow) -> float:
    """The job's RegexTimeout, which compiled scoping filters carry (a job setting, never a
    secret, so the settings alone decide it)."""
    return JobSettings.parse(row.job.synchronization_job_settings).regex_timeout.total_seconds()


class CompiledMappings:
    """Per job: the schema last compiled and its mappings."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[SynchronizationSchema, list[CompiledMapping]]] = {}

    def remember(
        self, job_id: str, schema: SynchronizationSchema, compiled: list[CompiledMapping]
    ) -> None:
        self._cache[job_id] = (schema, compiled)

    def forget(self, job_id: str) -> None:
        self._cache.pop(job_id, None)

    def of(self, row: JobRow, settings: JobSettings | None = None) -> list[CompiledMapping]:
        """The row's mappings, compiled again only when its schema changed; ``settings``
        are the cycle's (parsed once per cycle), else the row's are parsed."""
        job_id = row.job.id
        schema = row.job.schema or SynchronizationSchema()
        cached = self._cache.get(job_id)
        if cached is None or cached[0] != schema:
            seconds = settings.regex_timeout.total_seconds() if settings else regex_seconds(row)
            cached = (schema, compile_schema(schema, seconds))
            self._cache[job_id] = cached
        return cached[1]
