"""The curated public surface of the engine package."""

from __future__ import annotations

import engine


def test_all_is_sorted_and_importable() -> None:
    """engine.__all__ is sorted and every name in it exists."""
    assert sorted(engine.__all__) == engine.__all__
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_embedding_entry_points_are_public() -> None:
    """What the README's embedding section uses is in __all__."""
    for name in (
        "SyncEngine",
        "ManualClock",
        "SqliteStateStore",
        "MemoryStateStore",
        "StatusCode",
        "QuarantineReason",
        "TransitionError",
        "NotFoundError",
    ):
        assert name in engine.__all__
    methods = (
        "create_job",
        "get_job",
        "list_jobs",
        "start",
        "pause",
        "restart",
        "delete_job",
        "run_cycle",
        "run_pending",
        "provision_on_demand",
        "provisioning_logs",
    )
    for method in methods:
        assert callable(getattr(engine.SyncEngine, method))
