"""``PATCH …/synchronization/secrets`` (our extension) and ``SyncEngine.merge_secrets``: the
sent keys merged into the stored ones, reported by key only, one step under the secrets lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engine import ConfigurationError, ManualClock, SyncEngine
from engine.service.api import create_app

TOKEN = "merge-token"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SyncEngine]:
    with SyncEngine(tmp_path / "s.db", ManualClock()) as made:
        yield made


def test_merges_report_keys_and_never_values(engine: SyncEngine) -> None:
    app = engine.create_application("merge").id
    path = f"/v1.0/servicePrincipals/{app}/synchronization/secrets"
    with TestClient(create_app(engine, [TOKEN]), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        first = c.patch(path, json={"value": [{"key": "A", "value": "alpha-1"}]})
        assert first.status_code == 200, first.text
        assert first.json() == {"added": ["A"], "changed": [], "unchanged": []}
        sent = [{"key": "A", "value": "*****"}, {"key": "B", "value": "beta-2"}]
        second = c.patch(path, json={"value": sent})
        assert second.json() == {"added": ["B"], "changed": [], "unchanged": ["A"]}
        third = c.patch(path, json={"value": [{"key": "B", "value": "beta-3"}]})
        assert third.json() == {"added": [], "changed": ["B"], "unchanged": []}
        for answer in (first, second, third):
            assert "alpha" not in answer.text and "beta" not in answer.text
        refused = c.patch(path, json={"value": [{"key": "Z", "value": "*****"}]})
        assert refused.status_code == 400
        missing = c.patch(
            "/v1.0/servicePrincipals/nope/synchronization/secrets", json={"value": []}
        )
        assert missing.status_code == 404
    assert engine.store.get_secrets(app) == {"A": "alpha-1", "B": "beta-3"}


def test_a_merge_that_changes_nothing_writes_nothing(engine: SyncEngine) -> None:
    app = engine.create_application("same").id
    engine.set_secrets(app, {"A": "1"})
    saved: list[str] = []
    original = engine.store.save_secrets
    engine.store.save_secrets = lambda *args: saved.append("x") or original(*args)  # type: ignore[method-assign]
    changes = engine.merge_secrets(app, {"A": "1"})
    assert (changes.added, changes.changed, changes.unchanged) == ((), (), ("A",))
    assert saved == []
    with pytest.raises(ConfigurationError):
        engine.merge_secrets(app, {"HardDeletesEnabled": "perhaps"})
    assert engine.store.get_secrets(app) == {"A": "1"}


def test_concurrent_merges_lose_no_key(engine: SyncEngine) -> None:
    """Each merge reads, compares and writes under one lock: merges of different keys from
    many threads at once all land (a read-then-write from outside would drop some)."""
    app = engine.create_application("race").id
    barrier = threading.Barrier(8)

    def merge(n: int) -> None:
        barrier.wait()
        for round_ in range(5):
            engine.merge_secrets(app, {f"K{n}-{round_}": str(n)})

    threads = [threading.Thread(target=merge, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(engine.store.get_secrets(app)) == 40
